"""Plumbing for the neural-style-transfer notebook: VGG-19 weights, the model, images, runs and display.

The costs (content, Gram, style, total) are *not* here: they live in the notebook, where they are taught.
Importing this module has no side effects: no downloads, no seeds, no plotting settings.

Command line:
    python nst_utils.py download [keras|matconvnet]   # fetch real VGG-19 weights into pretrained-model/
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import secrets
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

# ============================================================================ Paths, constants, errors

PROJECT_DIR = Path(__file__).resolve().parent
PRETRAINED_DIR = PROJECT_DIR / "pretrained-model"
IMAGES_DIR = PROJECT_DIR / "images"
OUTPUT_DIR = PROJECT_DIR / "output"

# ImageNet mean pixel, RGB order, 0-255 scale. Only a fallback: the .mat file carries its own.
VGG_MEAN_RGB_255 = (123.68, 116.779, 103.939)

# VGG-19 "E" configuration: (output channels, number of 3x3 convs) per block; each block ends in a 2x2 pool.
VGG19_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))


def vgg19_layer_names() -> tuple[str, ...]:
    """The layer names the model can return, in network order: conv1_1, conv1_2, pool1, ..., conv5_4, pool5."""
    names: list[str] = []
    for block, (_, n_convs) in enumerate(VGG19_BLOCKS, start=1):
        names += [f"conv{block}_{i}" for i in range(1, n_convs + 1)]
        names.append(f"pool{block}")
    return tuple(names)


@dataclasses.dataclass(frozen=True)
class WeightsSource:
    """A published VGG-19 weights file: where it is served and how to recognise a genuine copy."""

    key: str  # name on the command line: "keras" or "matconvnet"
    filename: str  # the exact name the loader looks for in pretrained-model/
    url: str
    md5s: tuple[str, ...]  # md5 of every genuine release; the first is the file served at `url`
    sha256: str | None  # sha256 of the file served at `url`, where published
    size_bytes: int | None  # expected size: a progress hint only, the checksum is the authority


WEIGHTS_SOURCES = {
    "keras": WeightsSource(
        key="keras",
        filename="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        url="https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        md5s=("253f8cb515780f3b799900260a226db6",),
        sha256=None,
        size_bytes=80_134_624,
    ),
    "matconvnet": WeightsSource(
        key="matconvnet",
        filename="imagenet-vgg-verydeep-19.mat",
        url="https://www.vlfeat.org/matconvnet/models/imagenet-vgg-verydeep-19.mat",
        # current release first, then the old "beta16" release (same network, other struct layout)
        md5s=("106118b7cf60435e6d8e04f6a6dc3657", "8ee3263992981a1d26e73b3ca028a123"),
        sha256="abdb57167f82a2a1fbab1e1c16ad9373411883f262a1a37ee5db2e6fb0044695",
        size_bytes=534_904_783,
    ),
}


class NSTError(Exception):
    """A problem the user can fix; its message is one line that names the file or value and the fix."""


class WeightsFileError(NSTError, ValueError):
    """A weights file that is missing, corrupt, or not VGG-19."""


class DownloadError(NSTError):
    """A weights download that failed or fetched the wrong bytes."""


class ImageFileError(NSTError, ValueError):
    """An image file that cannot be used as content or style."""


# ============================================================================ Weights: download


# ============================================================================ Weights: reading files


# ============================================================================ Model


# ============================================================================ Images

MIN_SHORT_SIDE_PX = 32  # VGG-19 halves the image in 5 pools: a shorter side leaves pool5 with no pixels
MAX_DECODE_BYTES = 1 << 30  # refuse files whose decoding would need more memory than this (1 GiB)
_LARGEST_SENSIBLE_MAX_SIDE_PX = 4096  # a fix that needs a bigger max_side is no fix: the file must be cropped
_HIGH_DEPTH_FULL_SCALE = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 1.0}
_RESIZE_OPTIONS = {"resample": Image.Resampling.LANCZOS, "reducing_gap": 3.0}  # box-reduce, then Lanczos: fast, sharp
_JPEG_SIGNATURE = b"\xff\xd8\xff"
_EXIF_ORIENTATION_TAG = 0x0112
_SAVE_FORMATS = {".png": ("PNG", {}), ".jpg": ("JPEG", {"quality": 95}), ".jpeg": ("JPEG", {"quality": 95})}
# Pillow raises these while decoding a truncated or corrupt file; caught only around Pillow calls.
_DECODE_ERRORS = (OSError, EOFError, SyntaxError, ValueError)
# Noise of the original course, uniform(-20, 20) on the 0-255 scale, in [0, 1] units.
NOISE_HALF_RANGE_01 = 20 / 255


def fit_to_max_side(width_px: int, height_px: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) in pixels with the longer side scaled to `max_side` px, aspect kept; None keeps the size.

    The shorter side is rounded half up, and is at least 1 px.
    """
    if max_side is None:
        return width_px, height_px
    long_px, short_px = max(width_px, height_px), min(width_px, height_px)
    scaled_short_px = max(1, (2 * max_side * short_px + long_px) // (2 * long_px))  # exact integer rounding
    return (max_side, scaled_short_px) if width_px >= height_px else (scaled_short_px, max_side)


def resize_to_max_side(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Resize a float (H, W, C) or (1, H, W, C) image in [0, 1] so its longer side is `max_side` px (Lanczos)."""
    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim == 4 and pixels.shape[0] == 1:
        return resize_to_max_side(pixels[0], max_side)[np.newaxis]
    if pixels.ndim != 3:
        raise ValueError(f"resize_to_max_side expects an (H, W, C) or (1, H, W, C) array, got shape {pixels.shape}")
    height_px, width_px = pixels.shape[:2]
    size_wh = fit_to_max_side(width_px, height_px, _checked_max_side(max_side))
    if size_wh == (width_px, height_px):
        return pixels.copy()
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(pixels[:, :, c])).resize(size_wh, **_RESIZE_OPTIONS))
        for c in range(pixels.shape[2])
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)  # Lanczos overshoots a little at edges


def image_size_for(path: str | os.PathLike[str], max_side: int | None = 400) -> tuple[int, int]:
    """(height, width) in pixels that `load_image(path, max_side)` returns, read from the header without decoding."""
    path = _existing_file(path)
    with _open_image_file(path) as image:
        return _planned_size_wh(path, image, _checked_max_side(max_side))[::-1]


def load_image(path: str | os.PathLike[str], max_side: int | None = 400) -> np.ndarray:
    """Read an image file as float32 RGB in [0, 1], shape (H, W, 3), its longer side `max_side` px (None: native).

    Any format Pillow reads; the first frame of an animation; EXIF orientation applied; transparency on white;
    16-bit greyscale kept at full precision. Raises ImageFileError with the fix when the file cannot be used.
    """
    path = _existing_file(path)
    max_side = _checked_max_side(max_side)
    with _open_image_file(path) as image:
        size_wh = _planned_size_wh(path, image, max_side)
        stored_size_wh = image.size
        planned_swap = _orientation_swaps_axes(image)
        if max_side is not None:
            # JPEG only: libjpeg decodes at 1/2, 1/4 or 1/8 scale, never below the requested size.
            image.draft("RGB", size_wh[::-1] if planned_swap else size_wh)
        _check_decode_memory(path, image, stored_size_wh, size_wh, max_side)
        try:
            image.load()
            if _orientation_swaps_axes(image) != planned_swap:  # a PNG's EXIF stored after its pixels
                size_wh = size_wh[::-1]
            ImageOps.exif_transpose(image, in_place=True)
        except _DECODE_ERRORS as error:
            raise ImageFileError(
                f"{path} could not be decoded ({_one_line(error)}): the file is truncated or corrupt; "
                "re-export it or download it again"
            ) from error
        try:
            return _pixels_rgb01(image, size_wh)
        except ValueError as error:  # Pillow has no conversion to RGB for a few rare modes
            raise ImageFileError(
                f"{path} has colour mode {image.mode!r}, which cannot be converted to RGB ({_one_line(error)}); "
                "re-export it as an 8-bit RGB JPEG or PNG"
            ) from error


def save_image(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write a float RGB image in [0, 1], (H, W, 3) or (1, H, W, 3), as 8-bit PNG or JPEG by extension; atomic.

    Values are clipped to [0, 1] and rounded to 0-255. The file appears complete or not at all: it is written
    to a temporary file beside `path` and then renamed over it. Missing parent folders are created.
    """
    path = Path(path)
    if path.suffix.lower() not in _SAVE_FORMATS:
        raise ImageFileError(f"Cannot save {path}: unknown extension {path.suffix!r}; use .png (lossless) or .jpg")
    image_format, options = _SAVE_FORMATS[path.suffix.lower()]
    pixels = _rgb01_to_uint8(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_path = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # os.open applies the user's umask, as creating `path` directly would (mkstemp would make it private).
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            Image.fromarray(pixels).save(file, format=image_format, **options)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    return path


def generate_noise_image(content: np.ndarray, noise_ratio: float = 0.6, seed: int | None = 0) -> np.ndarray:
    """The starting image: `content` faded towards the VGG mean pixel plus uniform noise, float32 in [0, 1].

    As in the original course, which worked on 0-255 pixels minus the VGG mean:
        result = (1 - noise_ratio) * (content - mean) + noise_ratio * noise + mean,  noise ~ U(-20/255, 20/255),
    then clipped to [0, 1]. Takes and returns (H, W, 3) or (1, H, W, 3); the same seed gives the same noise.
    """
    if not 0.0 <= noise_ratio <= 1.0:
        raise ValueError(
            f"noise_ratio must be between 0 and 1 (0: the content image, 1: pure noise), got {noise_ratio!r}"
        )
    content_rgb01 = np.asarray(content, dtype=np.float32)
    if content_rgb01.shape[-1:] != (3,) or content_rgb01.ndim not in (3, 4):
        raise ValueError(f"content must be an (H, W, 3) or (1, H, W, 3) RGB array, got shape {content_rgb01.shape}")
    mean_rgb01 = np.asarray(VGG_MEAN_RGB_255, dtype=np.float32) / 255
    noise = np.random.default_rng(seed).uniform(-NOISE_HALF_RANGE_01, NOISE_HALF_RANGE_01, content_rgb01.shape)
    mixed = (1 - noise_ratio) * (content_rgb01 - mean_rgb01) + noise_ratio * noise + mean_rgb01
    return np.clip(mixed, 0.0, 1.0).astype(np.float32)


def _one_line(error: BaseException) -> str:
    """The error's message on one line."""
    return " ".join(str(error).split()) or type(error).__name__


def _checked_max_side(max_side: int | None) -> int | None:
    """`max_side` as an int of at least 1 pixel, or None; ValueError naming the value otherwise."""
    if max_side is None:
        return None
    if isinstance(max_side, bool) or not isinstance(max_side, (int, np.integer)) or max_side < 1:
        raise ValueError(
            f"max_side must be a whole number of pixels such as 400, or None for the native size, got {max_side!r}"
        )
    return int(max_side)


def _existing_file(path: str | os.PathLike[str]) -> Path:
    """`path` as an absolute Path to an existing file; ImageFileError saying where it looked otherwise."""
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        raise ImageFileError(f"{path} is a folder, not an image file; pass the path of a .jpg or .png file inside it")
    if not path.exists():
        where = "that folder does not exist" if not path.parent.is_dir() else f"looked in {path.parent}"
        sample = IMAGES_DIR / path.name
        samples = ", ".join(p.name for p in sorted(IMAGES_DIR.glob("*.jpg")))
        if sample.is_file():
            hint = f"did you mean {sample}?"
        elif samples:
            hint = f"check the name, or use a sample from {IMAGES_DIR}: {samples}"
        else:
            hint = "check the name"
        raise ImageFileError(f"Image file not found: {path} ({where}); {hint}")
    return path


def _open_image_file(path: Path) -> Image.Image:
    """The file opened lazily by Pillow (header only); ImageFileError if it is not an image Pillow can read."""
    with warnings.catch_warnings():
        # Pillow's decompression-bomb guard: we estimate the memory ourselves, after JPEG draft mode.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except Image.DecompressionBombError as error:
            with open(path, "rb") as file:
                is_jpeg = file.read(len(_JPEG_SIGNATURE)) == _JPEG_SIGNATURE
            if is_jpeg:  # safe: draft() decodes it at 1/8 scale or less, and the memory check still applies
                return JpegImagePlugin.JpegImageFile(path)
            raise ImageFileError(
                f"{path} is too large to decode safely (Pillow: {_one_line(error)}); "
                "downscale the file first, e.g. to 4000 px on its longer side"
            ) from None
        except UnidentifiedImageError:
            empty = " (the file is empty)" if path.stat().st_size == 0 else ""
            raise ImageFileError(
                f"{path} is not an image Pillow can read{empty}; pass a JPEG or PNG file, or re-export it as one"
            ) from None
        except OSError as error:
            raise ImageFileError(
                f"{path} cannot be read ({_one_line(error)}); check that the file is readable"
            ) from None


def _orientation_swaps_axes(image: Image.Image) -> bool:
    """Whether the EXIF orientation turns the picture by 90 degrees (tags 5 to 8), swapping width and height."""
    if image.format == "PNG" and "exif" not in image.info:
        return False  # Pillow would decode the whole PNG to look for EXIF after the pixels; seen once loaded
    return image.getexif().get(_EXIF_ORIENTATION_TAG, 1) in (5, 6, 7, 8)


def _planned_size_wh(path: Path, image: Image.Image, max_side: int | None) -> tuple[int, int]:
    """(width, height) in pixels that the opened image will have upright after resizing; checks it is big enough."""
    stored_w, stored_h = image.size
    upright_w, upright_h = (stored_h, stored_w) if _orientation_swaps_axes(image) else (stored_w, stored_h)
    width_px, height_px = fit_to_max_side(upright_w, upright_h, max_side)
    if min(width_px, height_px) >= MIN_SHORT_SIDE_PX:
        return width_px, height_px
    long_px, short_px = max(upright_w, upright_h), min(upright_w, upright_h)
    # Smallest max_side whose rounded short side reaches the minimum: 2 * m * short >= (2 * MIN - 1) * long.
    needed_max_side = -(-(2 * MIN_SHORT_SIDE_PX - 1) * long_px // (2 * short_px))
    found = f"{path} is {upright_w}x{upright_h} px"
    if (width_px, height_px) != (upright_w, upright_h):
        found += f", {width_px}x{height_px} px at max_side={max_side}"
    if needed_max_side > _LARGEST_SENSIBLE_MAX_SIDE_PX:
        fix = f"its aspect ratio ({long_px / short_px:.0f}:1) is too extreme; crop it closer to square"
    else:
        fix = f"use max_side={needed_max_side} or more"
    raise ImageFileError(f"{found}, but VGG-19 needs a shorter side of at least {MIN_SHORT_SIDE_PX} px; {fix}")


def _check_decode_memory(
    path: Path, image: Image.Image, stored_size_wh: tuple[int, int], size_wh: tuple[int, int], max_side: int | None
) -> None:
    """ImageFileError if decoding the image (at its draft size) would need more than MAX_DECODE_BYTES."""
    width_px, height_px = image.size  # after draft(): the size libjpeg will decode at
    bytes_per_px = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    # the decoded image, one converted copy (4 bytes/px at most), the float32 RGB result
    needed_bytes = width_px * height_px * (bytes_per_px + 4) + size_wh[0] * size_wh[1] * 3 * 4
    if image.format == "JPEG" and image.info.get("progressive"):
        # libjpeg keeps every DCT coefficient of a progressive file (2 bytes/px/band) whatever the draft scale
        needed_bytes += stored_size_wh[0] * stored_size_wh[1] * len(image.getbands()) * 2
    if needed_bytes <= MAX_DECODE_BYTES:
        return
    fix = "pass a max_side such as 400, or downscale the file first" if max_side is None else "downscale the file first"
    raise ImageFileError(
        f"{path} would need about {needed_bytes // 2**20} MB of memory to decode at {width_px}x{height_px} px "
        f"(limit {MAX_DECODE_BYTES // 2**20} MB); {fix}, e.g. to 4000 px on its longer side"
    )


def _pixels_rgb01(image: Image.Image, size_wh: tuple[int, int]) -> np.ndarray:
    """The decoded, upright image resized to `size_wh` as float32 RGB in [0, 1]; transparency composited on white."""
    if image.mode in _HIGH_DEPTH_FULL_SCALE:  # 16-bit greyscale: resize in float, never through 8 bits
        grey = image if image.mode == "F" else image.convert("F")
        if grey.size != size_wh:
            grey = grey.resize(size_wh, **_RESIZE_OPTIONS)
        grey01 = np.asarray(grey, dtype=np.float32) / _HIGH_DEPTH_FULL_SCALE[image.mode]
        return np.repeat(np.clip(grey01, 0.0, 1.0)[:, :, np.newaxis], 3, axis=2)
    if image.has_transparency_data:
        work_mode = "LA" if image.mode in ("LA", "La") else "RGBA"
    else:
        work_mode = "L" if image.mode in ("1", "L") else "RGB"  # palette, CMYK, YCbCr... become RGB
    work = image if image.mode == work_mode else image.convert(work_mode)
    if work.size != size_wh:
        work = work.resize(size_wh, **_RESIZE_OPTIONS)  # Pillow resizes LA/RGBA with premultiplied alpha
    pixels = np.asarray(work, dtype=np.float32).reshape(size_wh[1], size_wh[0], -1) / 255
    if work_mode in ("LA", "RGBA"):
        colour, alpha = pixels[:, :, :-1], pixels[:, :, -1:]
        pixels = colour * alpha + (1.0 - alpha)  # over a white background
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(np.clip(pixels, 0.0, 1.0), dtype=np.float32)


def _rgb01_to_uint8(image: np.ndarray) -> np.ndarray:
    """A float RGB image in [0, 1], (H, W, 3) or (1, H, W, 3) (numpy or TensorFlow), as (H, W, 3) uint8."""
    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim == 4 and pixels.shape[0] == 1:
        pixels = pixels[0]
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(
            f"save_image expects an (H, W, 3) or (1, H, W, 3) RGB array in [0, 1], got shape {pixels.shape}"
        )
    n_bad = int(np.size(pixels) - np.count_nonzero(np.isfinite(pixels)))
    if n_bad:
        raise ValueError(f"the image to save has {n_bad} NaN or infinite values; the optimisation probably diverged")
    return np.rint(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8)


# ============================================================================ Runs: optimisation, saving, display


# ============================================================================ Command line


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python nst_utils.py ...`; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python nst_utils.py", description=__doc__.splitlines()[0])
    parser.add_subparsers(dest="command", required=True)
    args = parser.parse_args(argv)
    del args
    return 0


if __name__ == "__main__":
    sys.exit(main())
