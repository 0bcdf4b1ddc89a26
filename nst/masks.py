"""Masks for spatial control (Gatys et al., 2017, §4): one greyscale image per style, white where that style paints.

A mask is read as float32 (height_px, width_px) in [0, 1]: white 1, black 0, grey a share (a soft edge); a colour
counts by its luminance and a transparent pixel as black. It is resized to the image being optimised (an area
average: each pixel holds the share of it inside the region) and, at each layer of the network, average-pooled 2×2
once per pooling layer, as VGG-19 pools. A mask that cannot be used is refused in one line naming the file and the
fix. No TensorFlow here: the guided style cost that uses the masks lives in the first notebook.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps

from nst.errors import ImageFileError, one_line
from nst.images import (
    DECODE_ERRORS,
    HIGH_DEPTH_FULL_SCALE,
    MAX_DECODE_BYTES,
    MIN_NATIVE_SIDE_PX,
    existing_file,
    open_image_file,
)

# A mask whose brightest pixel is darker than this paints nowhere: black, or black with JPEG noise (1/255 or 2/255).
BLACK_LEVEL = 3 / 255
_DECODED_BYTES_PER_PX = 16  # Pillow's decoded pixels (up to 4 bytes), the grey and alpha as float32, their product


def load_mask(path: str | os.PathLike[str], height_px: int, width_px: int) -> np.ndarray:
    """The mask in `path` as float32 (height_px, width_px) in [0, 1], for a content image of that size.

    ImageFileError in one line naming the file and the fix when it is not a readable image of at least 8 px, when
    its aspect ratio differs from height_px × width_px by more than rounding to whole pixels can, or when it is all
    black."""
    path = existing_file(path, what="Mask file", samples="*mask*.png")
    grey01, native_size_px = _read_grey01(path, max(height_px, width_px))
    _check_aspect(path, native_size_px, (height_px, width_px))
    _check_not_black(path, grey01)
    return resize_mask(grey01, height_px, width_px)


def check_mask_file(path: str | os.PathLike[str], max_side_px: int) -> None:
    """ImageFileError in one line unless `path` is a mask that load_mask can use, at `max_side_px`, for a content
    of its own shape."""
    path = existing_file(path, what="Mask file", samples="*mask*.png")
    _check_not_black(path, _read_grey01(path, max_side_px)[0])


def load_style_masks(settings, height_px: int, width_px: int) -> list[np.ndarray | None]:
    """One mask per style of `settings` (nst.settings.Settings), float32 (height_px, width_px) in [0, 1], checked
    against the content's size; None for a style without one (it paints everywhere), and for each without masks."""
    paths = settings.style_masks or [None] * len(settings.styles)
    return [None if path is None else load_mask(path, height_px, width_px) for path in paths]


def resize_mask(mask: np.ndarray, height_px: int, width_px: int) -> np.ndarray:
    """A float32 (H, W) mask in [0, 1] resized to (height_px, width_px): an area average when it shrinks (each pixel
    the share of it inside), bilinear when it grows; never outside [0, 1], never a new edge."""
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape == (height_px, width_px):
        return mask
    shrinks = height_px <= mask.shape[0] and width_px <= mask.shape[1]
    resample = Image.Resampling.BOX if shrinks else Image.Resampling.BILINEAR
    resized = Image.fromarray(np.ascontiguousarray(mask)).resize((width_px, height_px), resample)  # mode "F"
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def masks_at(masks, height_px: int, width_px: int) -> list[np.ndarray | None]:
    """Each (H, W) mask of `masks` (or None) at height_px × width_px, shaped (1, height_px, width_px, 1) like an
    image batch of one channel: what the guided style cost takes for an image of that size."""
    return [None if m is None else resize_mask(m, height_px, width_px)[np.newaxis, :, :, np.newaxis] for m in masks]


def mask_at_layer(mask, n_H: int, n_W: int) -> np.ndarray:
    """`mask` at an image's size ((1, H, W, 1) or (H, W)) brought to a layer of n_H × n_W positions, (1, n_H, n_W, 1).

    One 2×2 average pool per pooling layer between the image and the layer, the odd last row or column dropped, as
    VGG-19's pooling drops it: each value is the share of the pixels pooled into that position that are inside."""
    pooled = np.asarray(mask, dtype=np.float32)
    pooled = pooled.reshape(pooled.shape[1:3]) if pooled.ndim == 4 else pooled
    while pooled.shape != (n_H, n_W):
        if pooled.shape[0] // 2 < n_H or pooled.shape[1] // 2 < n_W:
            raise ValueError(
                f"a mask of {pooled.shape[0]}×{pooled.shape[1]} positions does not pool to a layer of {n_H}×{n_W}: "
                "pass the mask at the size of the image whose activations these are"
            )
        even_h, even_w = pooled.shape[0] // 2 * 2, pooled.shape[1] // 2 * 2
        pooled = pooled[:even_h, :even_w].reshape(even_h // 2, 2, even_w // 2, 2).mean(axis=(1, 3))
    return pooled[np.newaxis, :, :, np.newaxis]


def _read_grey01(path, side_px: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    """The upright mask as float32 grey in [0, 1] (a JPEG decoded at reduced scale, no smaller than `side_px` on
    either side), and the file's own upright size (height_px, width_px)."""
    with open_image_file(path) as image:
        stored_w, stored_h = image.size
        if min(stored_w, stored_h) < MIN_NATIVE_SIDE_PX:
            raise ImageFileError(
                f"{path} is only {stored_w}x{stored_h} px, too small to be a mask; make the mask the size of the "
                "content image, white where the style paints"
            )
        if side_px is not None:
            image.draft("L", (side_px, side_px))  # JPEG only: libjpeg decodes at 1/2 to 1/8 scale, never below
        decoded_w, decoded_h = image.size
        needed_bytes = decoded_w * decoded_h * _DECODED_BYTES_PER_PX
        if needed_bytes > MAX_DECODE_BYTES:
            raise ImageFileError(
                f"{path} is {stored_w}x{stored_h} px, too large to read as a mask (about {needed_bytes // 2**20} MB; "
                f"limit {MAX_DECODE_BYTES // 2**20} MB); save it at the content image's size"
            )
        try:
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
        except DECODE_ERRORS as error:
            raise ImageFileError(
                f"{path} could not be decoded ({one_line(error)}): the file is truncated or corrupt; save it again"
            ) from error
        turned = image.size != (decoded_w, decoded_h)  # the EXIF orientation swapped width and height
        try:
            grey01 = _grey01(image)
        except ValueError as error:  # Pillow has no conversion to grey for a few rare modes (LAB)
            raise ImageFileError(
                f"{path} has colour mode {image.mode!r}, which cannot be read as grey ({one_line(error)}); "
                "save the mask as an 8-bit greyscale PNG"
            ) from error
    return grey01, ((stored_w, stored_h) if turned else (stored_h, stored_w))


def _grey01(image: Image.Image) -> np.ndarray:
    """A decoded Pillow image as float32 grey in [0, 1]: luminance, 16-bit kept, transparency as black."""
    if image.mode in HIGH_DEPTH_FULL_SCALE:
        grey = np.asarray(image.convert("F"), dtype=np.float32) / HIGH_DEPTH_FULL_SCALE[image.mode]
    elif image.has_transparency_data:  # transparent pixels paint no style: the grey over black
        grey_alpha = np.asarray(image.convert("LA"), dtype=np.float32) / 255
        grey = grey_alpha[:, :, 0] * grey_alpha[:, :, 1]
    else:  # bilevel, palette, RGB, CMYK, YCbCr, HSV: the luminance
        grey = np.asarray(image.convert("L"), dtype=np.float32) / 255
    return np.clip(np.nan_to_num(grey), 0.0, 1.0)


def _check_aspect(path, mask_size_px: tuple[int, int], content_size_px: tuple[int, int]) -> None:
    """ImageFileError saying by how much, if the mask's aspect ratio differs from the content's by more than
    rounding both sizes to whole pixels can make it differ."""
    (mask_h, mask_w), (content_h, content_w) = mask_size_px, content_size_px
    difference = (mask_w / mask_h) / (content_w / content_h) - 1
    rounding = 0.5 / mask_w + 0.5 / mask_h + 0.5 / content_w + 0.5 / content_h  # each side off by up to 0.5 px
    if abs(difference) <= rounding * (1 + 1e-9):
        return
    fitting_h = max(1, round(mask_w * content_h / content_w))
    raise ImageFileError(
        f"{path} is {mask_w}x{mask_h} px but the content image is {content_w}x{content_h} px as loaded: the mask's "
        f"width-to-height ratio is {abs(difference):.1%} {'larger' if difference > 0 else 'smaller'}; crop or pad "
        f"the mask to the content's shape (e.g. {mask_w}x{fitting_h} px), or draw it on a copy of the content image"
    )


def _check_not_black(path, grey01: np.ndarray) -> None:
    brightest = float(grey01.max())
    if brightest < BLACK_LEVEL:
        raise ImageFileError(
            f"{path} is all black (its brightest pixel is {round(brightest * 255)} of 255; transparent counts as "
            "black), so its style would paint nowhere; paint white where the style should paint, or leave it out"
        )
