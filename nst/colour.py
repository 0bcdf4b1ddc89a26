"""Colour transfer (Gatys et al. 2017): keep the photo's colours by luminance-only transfer or histogram matching."""

from __future__ import annotations

import numpy as np

from nst.images import as_rgb_image, resize_image

# RGB -> YIQ, NTSC (FCC 1953) coefficients; rows give Y (luma), I (orange-blue) and Q (purple-green).
RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])
_YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)  # derived from the one constant, so the round trip is exact
# Floor for the style's colour-covariance eigenvalues, in (0-1 units)²: far below 8-bit quantisation noise
# (1 / (12 · 255²) ≈ 1.3e-6), so it only changes flat directions (a one-colour or greyscale style image).
COLOUR_COVARIANCE_FLOOR = 1e-8


def rgb_to_yiq(image_rgb01) -> np.ndarray:
    """RGB in [0, 1], shape (..., 3), as float64 YIQ: Y (luma) in [0, 1], I within ±0.60, Q within ±0.53."""
    return _colour_pixels(image_rgb01, "image_rgb01") @ RGB_TO_YIQ.T


def yiq_to_rgb(image_yiq) -> np.ndarray:
    """YIQ, shape (..., 3), back to float64 RGB (in [0, 1] for colours in the RGB gamut; not clipped)."""
    return _colour_pixels(image_yiq, "image_yiq") @ _YIQ_TO_RGB.T


def transfer_luminance_only(stylised_rgb01, content_rgb01) -> np.ndarray:
    """The stylised image's luma Y with the content's chroma I and Q, as float32 (H, W, 3) in [0, 1].

    A content image of another size is first resized to the stylised one's. The result is clipped to [0, 1], which
    changes I and Q (and Y) only where the recombined colour falls outside the RGB gamut.
    """
    stylised = as_rgb_image(stylised_rgb01, "stylised_rgb01")
    content = as_rgb_image(content_rgb01, "content_rgb01")
    if content.shape != stylised.shape:
        content = resize_image(content, *stylised.shape[:2])
    yiq = rgb_to_yiq(stylised)
    yiq[..., 1:] = rgb_to_yiq(content)[..., 1:]
    return np.clip(yiq_to_rgb(yiq), 0.0, 1.0).astype(np.float32)


def match_colour_histogram(style_rgb01, content_rgb01) -> np.ndarray:
    """The style image recoloured so its RGB mean and covariance are the content's, float32 (H, W, 3) in [0, 1].

    Gatys et al. 2017's linear colour transfer, x' = A (x - μ_S) + μ_C with A Σ_S Aᵀ = Σ_C, using the symmetric
    square roots A = Σ_C^½ Σ_S^-½ ("image analogies" variant; see _colour_matched_pixels). Clipping to [0, 1]
    afterwards perturbs the statistics where the mapped colours leave the gamut.
    """
    style = as_rgb_image(style_rgb01, "style_rgb01").astype(np.float64)
    content = as_rgb_image(content_rgb01, "content_rgb01").astype(np.float64)
    matched = _colour_matched_pixels(style.reshape(-1, 3), content.reshape(-1, 3)).reshape(style.shape)
    return np.clip(matched, 0.0, 1.0).astype(np.float32)


def _colour_pixels(image, name: str) -> np.ndarray:
    """`image` as a float64 array whose last axis holds 3 colour channels; ValueError naming `name` otherwise."""
    pixels = np.asarray(image, dtype=np.float64)
    if pixels.ndim == 0 or pixels.shape[-1] != 3:
        raise ValueError(f"{name} must have 3 colour channels on its last axis, got shape {pixels.shape}")
    return pixels


def _colour_matched_pixels(style_pixels: np.ndarray, content_pixels: np.ndarray) -> np.ndarray:
    """Style pixels (N, 3) mapped linearly to the content pixels' (M, 3) mean and covariance; float64, unclipped.

    A = Σ_C^½ Σ_S^-½ with symmetric square roots (eigendecomposition), so A Σ_S Aᵀ = Σ_C. Of the two choices in
    Gatys et al. 2017 it is the one that does not depend on the order of R, G, B: a Cholesky factor is triangular
    and maps R by R alone. Σ_S's eigenvalues are floored at COLOUR_COVARIANCE_FLOOR, so a flat style works.
    """
    mean_style, mean_content = style_pixels.mean(axis=0), content_pixels.mean(axis=0)
    covariance_style = np.cov(style_pixels, rowvar=False, bias=True)
    covariance_content = np.cov(content_pixels, rowvar=False, bias=True)
    transform = _symmetric_power(covariance_content, 0.5, 0.0) @ _symmetric_power(
        covariance_style, -0.5, COLOUR_COVARIANCE_FLOOR
    )
    return (style_pixels - mean_style) @ transform.T + mean_content


def _symmetric_power(matrix: np.ndarray, exponent: float, floor: float) -> np.ndarray:
    """`matrix` ** `exponent` for a symmetric positive semi-definite matrix, its eigenvalues floored at `floor`."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.maximum(eigenvalues, floor) ** exponent) @ eigenvectors.T
