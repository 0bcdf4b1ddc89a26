"""Images: load, save and resize, as float32 RGB in [0, 1] of shape (H, W, 3), sizes as (height_px, width_px).

The batch axis exists only at the model's boundary (the notebook adds it with image[np.newaxis]); every function here
refuses a batch in one line. Pillow's own (width, height) order stays inside the private helpers named `_wh`.
"""

from __future__ import annotations

import errno
import io
import math
import os
import secrets
import stat
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from nst.errors import ImageFileError, ImageSizeError, one_line
from nst.paths import IMAGES_DIR
from nst.vgg19 import MIN_SHORT_SIDE_PX

MIN_NATIVE_SIDE_PX = 8  # a file smaller than this on its shorter side holds no picture worth upscaling
MAX_DECODE_BYTES = 1 << 30  # refuse files whose decoding would need more memory than this (1 GiB)
_LARGEST_SENSIBLE_MAX_SIDE_PX = 4096  # a fix that needs a bigger max_side is no fix: the file must be cropped
HIGH_DEPTH_FULL_SCALE = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 1.0}
_RESIZE_OPTIONS = {"resample": Image.Resampling.LANCZOS, "reducing_gap": 3.0}  # box-reduce, then Lanczos: fast, sharp
_JPEG_SIGNATURE = b"\xff\xd8\xff"
_EXIF_ORIENTATION_TAG = 0x0112
_SAVE_FORMATS = {".png": ("PNG", {}), ".jpg": ("JPEG", {"quality": 95}), ".jpeg": ("JPEG", {"quality": 95})}
# Pillow raises these while decoding a truncated or corrupt file; caught only around Pillow calls.
DECODE_ERRORS = (OSError, EOFError, SyntaxError, ValueError)


def fit_to_max_side(height_px: int, width_px: int, max_side_px: int | None) -> tuple[int, int]:
    """(height_px, width_px) with the longer side scaled to `max_side_px`, aspect kept; None keeps the size.

    The shorter side is rounded half up, and is at least 1 px.
    """
    if max_side_px is None:
        return height_px, width_px
    max_side_px = checked_max_side(max_side_px)
    long_px, short_px = max(width_px, height_px), min(width_px, height_px)
    scaled_short_px = max(1, (2 * max_side_px * short_px + long_px) // (2 * long_px))  # exact integer rounding
    return (scaled_short_px, max_side_px) if width_px >= height_px else (max_side_px, scaled_short_px)


def resize_image(image_rgb01, height_px: int, width_px: int) -> np.ndarray:
    """An (H, W, 3) image in [0, 1] resized to exactly height_px × width_px (box-reduce, then Lanczos), in [0, 1].

    The one resizer: loading, style scale, coarse to fine (both ways) and thumbnails all use it.
    """
    pixels = as_rgb_image(image_rgb01, "image_rgb01")
    if any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in (height_px, width_px)):
        raise ValueError(
            f"resize_image: height_px={height_px!r} and width_px={width_px!r} must be whole numbers of pixels ≥ 1"
        )
    return _resized_rgb01(pixels, (int(width_px), int(height_px)))


def shrink_to_max_side(image_rgb01, max_side_px: int | None) -> np.ndarray:
    """An (H, W, 3) image in [0, 1] with its longer side at most `max_side_px`: resized down (aspect kept) if
    larger, else returned as it is (None: no limit). What a picture on screen needs, whatever the size of the run."""
    pixels = as_rgb_image(image_rgb01, "image_rgb01")
    limit_px = checked_max_side(max_side_px)
    if limit_px is None or max(pixels.shape[:2]) <= limit_px:
        return pixels
    return resize_image(pixels, *fit_to_max_side(*pixels.shape[:2], limit_px))


def as_rgb_image(image, name: str = "image") -> np.ndarray:
    """`image` (numpy or TensorFlow) as a float32 (H, W, 3) array; ValueError naming `name` and its shape otherwise."""
    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        batch = "; drop the batch axis with image[0]" if pixels.ndim == 4 and pixels.shape[0] == 1 else ""
        raise ValueError(f"{name} must be an (H, W, 3) RGB array, got shape {pixels.shape}{batch}")
    return pixels


def image_size_for(path: str | os.PathLike[str], max_side_px: int | None = 400) -> tuple[int, int]:
    """(height_px, width_px) that `load_image(path, max_side_px)` returns, read from the header without decoding."""
    path = existing_file(path)
    with open_image_file(path) as image:
        return _planned_size_wh(path, image, checked_max_side(max_side_px))[::-1]


def load_image(path: str | os.PathLike[str], max_side_px: int | None = 400) -> np.ndarray:
    """Read an image file as float32 RGB in [0, 1], shape (H, W, 3), its longer side `max_side_px` (None: native).

    Any format Pillow reads; the first frame of an animation; EXIF orientation applied; transparency on white;
    16-bit greyscale kept at full precision. Raises ImageFileError with the fix when the file cannot be used.
    """
    path = existing_file(path)
    max_side = checked_max_side(max_side_px)
    with open_image_file(path) as image:
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
        except DECODE_ERRORS as error:
            raise ImageFileError(
                f"{path} could not be decoded ({one_line(error)}): the file is truncated or corrupt; "
                "re-export it or download it again"
            ) from error
        try:
            return _pixels_rgb01(image, size_wh)
        except ValueError as error:  # Pillow has no conversion to RGB for a few rare modes
            raise ImageFileError(
                f"{path} has colour mode {image.mode!r}, which cannot be converted to RGB ({one_line(error)}); "
                "re-export it as an 8-bit RGB JPEG or PNG"
            ) from error


def save_image(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write a float RGB image in [0, 1], (H, W, 3), as 8-bit PNG or JPEG by extension; atomic.

    Values are clipped to [0, 1] and rounded to 0-255. The file appears complete or not at all: it is written
    to a temporary file beside `path` and then renamed over it. Missing parent folders are created.
    """
    path = Path(path)
    if path.suffix.lower() not in _SAVE_FORMATS:
        raise ImageFileError(f"Cannot save {path}: unknown extension {path.suffix!r}; use .png (lossless) or .jpg")
    image_format, options = _SAVE_FORMATS[path.suffix.lower()]
    pixels = rgb01_to_uint8(image)
    return write_atomically(path, lambda file: Image.fromarray(pixels).save(file, format=image_format, **options))


def checked_max_side(max_side_px: int | None) -> int | None:
    """`max_side_px` as an int of at least 1 pixel, or None; ValueError naming the value otherwise."""
    if max_side_px is None:
        return None
    if isinstance(max_side_px, bool) or not isinstance(max_side_px, (int, np.integer)) or max_side_px < 1:
        raise ValueError(
            "max_side_px must be a whole number of pixels such as 400, or None for the native size, "
            f"got {max_side_px!r}"
        )
    return int(max_side_px)


def existing_file(path: str | os.PathLike[str], what: str = "Image file", samples: str = "*.jpg") -> Path:
    """`path` as an absolute Path to an existing regular file; ImageFileError saying what is there otherwise.

    A missing file is called `what` ("Image file not found: …"), with the files of images/ matching `samples` as
    the hint."""
    path = Path(path).expanduser().absolute()
    try:
        info = path.stat()
    except OSError as error:
        raise ImageFileError(_unusable_path_message(path, error, what, samples)) from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageFileError(f"{path} is a folder, not an image file; pass the path of a .jpg or .png file inside it")
    if not stat.S_ISREG(info.st_mode):
        raise ImageFileError(f"{path} is not a regular file (a device, pipe or socket); pass a .jpg or .png file")
    return path


def _unusable_path_message(path: Path, error: OSError, what: str, samples_glob: str) -> str:
    """One line for a path whose file cannot even be looked at: missing, a link loop, a dangling link, no access."""
    if error.errno == errno.ELOOP:
        return f"{path} is a symbolic link loop (it points back to itself); pass the image file itself"
    if error.errno == errno.EACCES:
        return f"{path} cannot be reached (permission denied on a folder of its path); check the permissions"
    if error.errno == errno.ENAMETOOLONG:
        return f"{path.name[:40]}…: the file name is too long for this system; rename the file"
    if path.is_symlink():
        return f"{path} is a symbolic link to {os.readlink(path)}, which does not exist; fix or remove the link"
    if error.errno not in (errno.ENOENT, errno.ENOTDIR):
        return f"{path} cannot be read ({error.strerror or error}); check the path"
    where = "that folder does not exist" if not path.parent.is_dir() else f"looked in {path.parent}"
    sample = IMAGES_DIR / path.name
    samples = ", ".join(p.name for p in sorted(IMAGES_DIR.glob(samples_glob)))
    if sample.is_file():
        hint = f"did you mean {sample}?"
    elif samples:
        hint = f"check the name, or use a sample from {IMAGES_DIR}: {samples}"
    else:
        hint = "check the name"
    return f"{what} not found: {path} ({where}); {hint}"


def open_image_file(path: Path) -> Image.Image:
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
                f"{path} is too large to decode safely (Pillow: {one_line(error)}); "
                "downscale the file first, e.g. to 4000 px on its longer side"
            ) from None
        except UnidentifiedImageError:
            empty = " (the file is empty)" if path.stat().st_size == 0 else ""
            raise ImageFileError(
                f"{path} is not an image Pillow can read{empty}; pass a JPEG or PNG file, or re-export it as one"
            ) from None
        except OSError as error:
            raise ImageFileError(
                f"{path} cannot be read ({one_line(error)}); check that the file is readable"
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
    return vgg_size_px(path, upright_h, upright_w, max_side)[::-1]


def vgg_size_px(name, height_px: int, width_px: int, max_side_px: int | None) -> tuple[int, int]:
    """(height_px, width_px) of a picture of that size at `max_side_px`; ImageFileError naming `name` (a file or a
    clip) if VGG-19 could not see it: a short side under MIN_SHORT_SIDE_PX, with the max_side_px that fixes it."""
    if min(width_px, height_px) < MIN_NATIVE_SIDE_PX:
        raise ImageFileError(
            f"{name} is only {width_px}x{height_px} px, too small to hold a picture; use an image with at least "
            f"{MIN_SHORT_SIDE_PX} px on its shorter side"
        )
    fitted_h, fitted_w = fit_to_max_side(height_px, width_px, max_side_px)
    if min(fitted_w, fitted_h) >= MIN_SHORT_SIDE_PX:
        return fitted_h, fitted_w
    long_px, short_px = max(width_px, height_px), min(width_px, height_px)
    # Smallest max_side whose rounded short side reaches the minimum: 2 * m * short >= (2 * MIN - 1) * long.
    needed_max_side = -(-(2 * MIN_SHORT_SIDE_PX - 1) * long_px // (2 * short_px))
    found = f"{name} is {width_px}x{height_px} px"
    if (fitted_w, fitted_h) != (width_px, height_px):
        found += f", {fitted_w}x{fitted_h} px at max_side_px={max_side_px}"
    if needed_max_side > _LARGEST_SENSIBLE_MAX_SIDE_PX:
        fix = f"its aspect ratio ({long_px / short_px:.0f}:1) is too extreme; crop it closer to square"
    else:
        fix = f"use max_side_px={needed_max_side} or more"
    raise ImageFileError(f"{found}, but VGG-19 needs a shorter side of at least {MIN_SHORT_SIDE_PX} px; {fix}")


def _check_decode_memory(
    path: Path, image: Image.Image, stored_size_wh: tuple[int, int], size_wh: tuple[int, int], max_side: int | None
) -> None:
    """ImageFileError if decoding the image (at its draft size) would need more than MAX_DECODE_BYTES."""
    width_px, height_px = image.size  # after draft(): the size libjpeg will decode at
    bytes_per_px = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    # the decoded image, one converted copy (4 bytes/px at most), the float32 RGB result
    decode_bytes = width_px * height_px * (bytes_per_px + 4)
    if image.format == "JPEG" and image.info.get("progressive"):
        # libjpeg keeps every DCT coefficient of a progressive file (2 bytes/px/band) whatever the draft scale
        decode_bytes += stored_size_wh[0] * stored_size_wh[1] * len(image.getbands()) * 2
    result_bytes = size_wh[0] * size_wh[1] * 3 * 4
    needed_bytes = decode_bytes + result_bytes
    if needed_bytes <= MAX_DECODE_BYTES:
        return
    room_bytes = MAX_DECODE_BYTES - decode_bytes
    if max_side is not None and result_bytes > decode_bytes and room_bytes > 0:  # the size asked for is too large
        fitting_px = int(max_side * math.sqrt(room_bytes / result_bytes))
        raise ImageSizeError(
            f"max_side_px={max_side} would make {path} {size_wh[0]}x{size_wh[1]} px, about "
            f"{needed_bytes // 2**20} MB of memory (limit {MAX_DECODE_BYTES // 2**20} MB); "
            f"use max_side_px={fitting_px} or less",
            fitting_px,
        )
    fix = (
        "pass a max_side_px such as 400, or downscale the file first"
        if max_side is None
        else "downscale the file first"
    )
    raise ImageFileError(
        f"{path} would need about {needed_bytes // 2**20} MB of memory to decode at {width_px}x{height_px} px "
        f"(limit {MAX_DECODE_BYTES // 2**20} MB); {fix}, e.g. to 4000 px on its longer side"
    )


def _pixels_rgb01(image: Image.Image, size_wh: tuple[int, int]) -> np.ndarray:
    """The decoded, upright image resized to `size_wh` as float32 RGB in [0, 1]; transparency composited on white."""
    if image.mode in HIGH_DEPTH_FULL_SCALE:  # 16-bit greyscale: resize in float, never through 8 bits
        grey = image if image.mode == "F" else image.convert("F")
        if grey.size != size_wh:
            grey = grey.resize(size_wh, **_RESIZE_OPTIONS)
        grey01 = np.asarray(grey, dtype=np.float32) / HIGH_DEPTH_FULL_SCALE[image.mode]
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


def _resized_rgb01(pixels: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """A float32 (H, W, C) image in [0, 1] resized to exactly `size_wh` (width, height) px, Lanczos; a copy."""
    if size_wh == (pixels.shape[1], pixels.shape[0]):
        return pixels.copy()
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(pixels[:, :, c])).resize(size_wh, **_RESIZE_OPTIONS))
        for c in range(pixels.shape[2])
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)  # Lanczos overshoots a little at edges


def write_atomically(path: Path, write: Callable[[io.BufferedIOBase], object]) -> Path:
    """Call `write(file)` on a temporary file beside `path`, then rename it over `path`: complete or absent.

    Missing parent folders are created; on any failure the temporary file is removed and `path` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_path = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # os.open applies the user's umask, as creating `path` directly would (mkstemp would make it private).
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    return path


def rgb01_to_uint8(image: np.ndarray) -> np.ndarray:
    """A float RGB image in [0, 1], (H, W, 3) (numpy or TensorFlow), as (H, W, 3) uint8."""
    pixels = as_rgb_image(image, "the image to save")
    n_bad = int(np.size(pixels) - np.count_nonzero(np.isfinite(pixels)))
    if n_bad:
        raise ValueError(f"the image to save has {n_bad} NaN or infinite values; the optimisation probably diverged")
    scaled = np.clip(pixels, 0.0, 1.0)  # one float copy, worked in place: at 3840×2160 each copy is 100 MB
    scaled *= 255
    return np.rint(scaled, out=scaled).astype(np.uint8)


def png_bytes(image_rgb01) -> bytes:
    """Encode an RGB image in [0, 1], shape (H, W, 3), as PNG bytes (for the live view)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb01_to_uint8(image_rgb01)).save(buffer, format="PNG")
    return buffer.getvalue()


def style_max_side(max_side_px: int, style_scale: float, style_size_px: tuple[int, int] | None = None) -> int:
    """The longer side, in px, to load the style image at: `style_scale` times the content's.

    Never so small that VGG's shorter-side minimum (32 px) is lost: given the style's own (height_px, width_px),
    the long side is at least what keeps its short side at 32 px; without it, at least 32 px.
    The Grams see the style at this size: below 1 its brush strokes come out smaller in the result, above 1 larger.
    """
    if checked_max_side(max_side_px) is None:
        raise ValueError("style_max_side needs the content's longer side in px (such as 400), got None")
    if not is_real(style_scale) or not math.isfinite(style_scale) or style_scale <= 0:
        raise ValueError(
            f"style_scale must be a finite number above 0 (1: the content's size, 0.5: half of it), got {style_scale!r}"
        )
    minimum_px = MIN_SHORT_SIDE_PX
    if style_size_px is not None:
        minimum_px = math.ceil(MIN_SHORT_SIDE_PX * max(style_size_px) / min(style_size_px))
    return max(minimum_px, math.floor(max_side_px * style_scale + 0.5))


def style_size_for(path: str | os.PathLike[str], max_side_px: int, style_scale: float = 1.0) -> tuple[int, int]:
    """(height_px, width_px) that `load_style_image(path, max_side_px, style_scale)` returns, from the header."""
    return image_size_for(path, _style_side_px(path, max_side_px, style_scale))


def style_upsampling_note(path: str | os.PathLike[str], max_side_px: int, style_scale: float = 1.0) -> str | None:
    """The note to print once when a style image is smaller than VGG-19's minimum and is upsampled; else None.

    A style is a texture, so upsampling it is fair: its strokes come out larger and softer, and the note says so.
    """
    native_px = upright_size_px(path)
    if min(native_px) >= MIN_SHORT_SIDE_PX:
        return None
    height_px, width_px = style_size_for(path, max_side_px, style_scale)
    return (
        f"note: the style image {Path(path).name} is {native_px[1]}×{native_px[0]} px, below VGG-19's "
        f"{MIN_SHORT_SIDE_PX} px: it is upsampled to {width_px}×{height_px} px, so its texture comes out larger and "
        "softer (a larger style image gives finer strokes)"
    )


def upright_size_px(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(height_px, width_px) of the picture as shown (EXIF orientation applied), from its header; no minimum size."""
    path = existing_file(path)
    with open_image_file(path) as image:
        width_px, height_px = image.size
        return (width_px, height_px) if _orientation_swaps_axes(image) else (height_px, width_px)


def _style_side_px(path: str | os.PathLike[str], max_side_px: int, style_scale: float) -> int:
    """The long side to load the style at: style_max_side of its own size (which may be below VGG-19's minimum)."""
    return style_max_side(max_side_px, style_scale, upright_size_px(path))


def load_style_image(path: str | os.PathLike[str], max_side_px: int, style_scale: float = 1.0) -> np.ndarray:
    """The style image at `style_scale` times the content's long side `max_side_px` (see style_max_side)."""
    side_px = _style_side_px(path, max_side_px, style_scale)
    try:
        return load_image(path, max_side_px=side_px)
    except ImageSizeError as error:
        if style_scale <= 1:  # max_side_px itself is too large: the error says so
            raise
        fitting_scale = math.floor(100 * error.fitting_max_side_px / max_side_px) / 100
        raise ImageSizeError(
            f"style_scale={style_scale!r} would make {path} {side_px} px on its longer side ({style_scale!r} × "
            f"max_side_px={max_side_px}), more than fits in memory (limit {MAX_DECODE_BYTES // 2**20} MB); "
            f"use style_scale={fitting_scale} or less",
            error.fitting_max_side_px,
        ) from None


def is_real(value) -> bool:
    """Whether `value` is a real number (Python or NumPy int or float), not a bool or a string."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
