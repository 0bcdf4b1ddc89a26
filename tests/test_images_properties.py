"""Property tests for nst.images: any size, mode and format loads as float32 RGB (H, W, 3) in [0, 1] at max_side_px;
fit_to_max_side and resize_image keep to (height_px, width_px) for any size."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nst.errors import ImageFileError
from nst.images import MIN_NATIVE_SIDE_PX, fit_to_max_side, image_size_for, load_image, resize_image
from nst.vgg19 import MIN_SHORT_SIDE_PX

# Which formats can store which Pillow mode (JPEG has no alpha, palette or 16-bit).
FORMATS_FOR_MODE = {
    "RGB": ("PNG", "JPEG"),
    "L": ("PNG", "JPEG"),
    "RGBA": ("PNG",),
    "LA": ("PNG",),
    "P": ("PNG",),
    "I;16": ("PNG",),
}
SUFFIX = {"PNG": ".png", "JPEG": ".jpg"}


@st.composite
def image_files(draw):
    """(encoded bytes, format, width, height) of a random picture in a random mode and format."""
    mode = draw(st.sampled_from(sorted(FORMATS_FOR_MODE)))
    image_format = draw(st.sampled_from(FORMATS_FOR_MODE[mode]))
    width = draw(st.integers(1, 300))
    height = draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    else:
        bands = {"RGB": 3, "L": 1, "RGBA": 4, "LA": 2, "P": 1}[mode]
        pixels = rng.integers(0, 256, (height, width, bands), dtype=np.uint8)
        image = Image.fromarray(pixels[:, :, 0] if bands == 1 else pixels).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue(), image_format, width, height


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image_file=image_files(), max_side_px=st.integers(16, 400))
def test_load_image_gives_rgb01_at_max_side(image_file, max_side_px):
    data, image_format, width, height = image_file
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"random{SUFFIX[image_format]}"
        path.write_bytes(data)
        long_px, short_px = max(width, height), min(width, height)
        exact_short = max_side_px * short_px / long_px
        if short_px < MIN_NATIVE_SIDE_PX:
            with pytest.raises(ImageFileError, match="too small to hold a picture"):
                load_image(path, max_side_px=max_side_px)
            return
        if 2 * max_side_px * short_px < (2 * MIN_SHORT_SIDE_PX - 1) * long_px:  # rounds (half up) to under 32 px
            with pytest.raises(ImageFileError, match="at least 32 px"):
                load_image(path, max_side_px=max_side_px)
            return
        pixels = load_image(path, max_side_px=max_side_px)
        assert image_size_for(path, max_side_px=max_side_px) == pixels.shape[:2]
    assert pixels.dtype == np.float32
    assert pixels.ndim == 3 and pixels.shape[2] == 3
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0
    out_height, out_width = pixels.shape[:2]
    assert max(out_width, out_height) == max_side_px
    assert (out_height if height > width else out_width) == max_side_px  # the same side is the long one
    assert abs(min(out_width, out_height) - exact_short) <= 0.5 + 1e-9  # aspect kept to rounding
    assert min(out_width, out_height) >= MIN_SHORT_SIDE_PX


@settings(max_examples=200, deadline=None)
@given(height_px=st.integers(1, 5000), width_px=st.integers(1, 5000), max_side_px=st.integers(1, 2000))
def test_fit_to_max_side_keeps_orientation_and_aspect(height_px, width_px, max_side_px):
    fitted_h, fitted_w = fit_to_max_side(height_px, width_px, max_side_px)
    assert max(fitted_h, fitted_w) == max_side_px and min(fitted_h, fitted_w) >= 1
    if height_px > width_px:  # (height_px, width_px) in, (height_px, width_px) out: a portrait stays a portrait
        assert fitted_h == max_side_px
    elif width_px > height_px:
        assert fitted_w == max_side_px
    else:
        assert fitted_h == fitted_w == max_side_px
    long_px, short_px = max(height_px, width_px), min(height_px, width_px)
    exact_short = max_side_px * short_px / long_px
    assert abs(min(fitted_h, fitted_w) - max(1.0, exact_short)) <= 0.5 + 1e-9
    assert fit_to_max_side(height_px, width_px, None) == (height_px, width_px)


@settings(max_examples=40, deadline=None)
@given(
    height_px=st.integers(1, 40),
    width_px=st.integers(1, 40),
    new_height_px=st.integers(1, 40),
    new_width_px=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_resize_image_gives_the_size_asked_for_in_range(height_px, width_px, new_height_px, new_width_px, seed):
    image = np.random.default_rng(seed).random((height_px, width_px, 3), dtype=np.float32)
    resized = resize_image(image, new_height_px, new_width_px)
    assert resized.shape == (new_height_px, new_width_px, 3) and resized.dtype == np.float32
    assert resized.min() >= 0.0 and resized.max() <= 1.0
