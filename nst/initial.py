"""The images an optimisation starts from: the course's noisy content, the content, the style, or noise."""

from __future__ import annotations

import numpy as np

from nst.images import as_rgb_image, resize_image
from nst.vgg19 import VGG_MEAN_RGB_255

INITIAL_IMAGE_KINDS = ("noisy_content", "content", "style", "noise")
# Noise of the original course, uniform(-20, 20) on the 0-255 scale, in [0, 1] units.
NOISE_HALF_RANGE_01 = 20 / 255


def generate_noise_image(content_rgb01, noise_ratio: float = 0.6, seed: int | None = 0) -> np.ndarray:
    """The starting image: `content_rgb01` faded towards the VGG mean pixel plus uniform noise, float32 in [0, 1].

    As in the original course, which worked on 0-255 pixels minus the VGG mean:
        result = (1 - noise_ratio) * (content - mean) + noise_ratio * noise + mean,  noise ~ U(-20/255, 20/255),
    then clipped to [0, 1]. Takes and returns (H, W, 3); the same seed gives the same noise.
    """
    if not 0.0 <= noise_ratio <= 1.0:
        raise ValueError(
            f"noise_ratio must be between 0 and 1 (0: the content image, 1: pure noise), got {noise_ratio!r}"
        )
    content = as_rgb_image(content_rgb01, "content")
    mean_rgb01 = np.asarray(VGG_MEAN_RGB_255, dtype=np.float32) / 255
    noise = np.random.default_rng(seed).uniform(-NOISE_HALF_RANGE_01, NOISE_HALF_RANGE_01, content.shape)
    mixed = (1 - noise_ratio) * (content - mean_rgb01) + noise_ratio * noise + mean_rgb01
    return np.clip(mixed, 0.0, 1.0).astype(np.float32)


def initial_image(
    kind: str, content_rgb01, style_rgb01=None, noise_ratio: float = 0.6, seed: int | None = 0
) -> np.ndarray:
    """The image the optimisation starts from, float32 (H, W, 3) in [0, 1] with the content's size.

    kind: "noisy_content" (generate_noise_image with `noise_ratio`), "content" (a copy), "style" (the style image
    resized to the content's height and width, aspect not kept) or "noise" (generate_noise_image with noise_ratio=1:
    the VGG mean grey ± 20/255 uniform noise, the same noise field as "noisy_content" with that seed).
    `noise_ratio` is used by "noisy_content" only. The same seed gives the same image.
    """
    if kind not in INITIAL_IMAGE_KINDS:
        raise ValueError(f"initial image kind {kind!r} is unknown; choose one of: {', '.join(INITIAL_IMAGE_KINDS)}")
    content = as_rgb_image(content_rgb01, "content_rgb01")
    if kind == "noisy_content":
        return generate_noise_image(content, noise_ratio, seed)
    if kind == "noise":
        return generate_noise_image(content, 1.0, seed)
    if kind == "content":
        return content.copy()
    if style_rgb01 is None:
        raise ValueError("initial image kind 'style' needs the style image: pass style_rgb01=style_image")
    return resize_image(as_rgb_image(style_rgb01, "style_rgb01"), *content.shape[:2])
