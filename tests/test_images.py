"""nst.images: load, save and resize (H, W, 3) float32 RGB images in [0, 1]; sizes as (height_px, width_px).

Every input file is made here, in tmp_path, with Pillow (or by hand where Pillow would need gigabytes).
The starting images (generate_noise_image, initial_image) are tested in test_initial.py.
"""

from __future__ import annotations

import errno
import io
import math
import os
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile

import nst.images
from nst.errors import ImageFileError
from nst.images import (
    checked_max_side,
    fit_to_max_side,
    image_size_for,
    load_image,
    load_style_image,
    png_bytes,
    resize_image,
    rgb01_to_uint8,
    save_image,
    shrink_to_max_side,
    style_max_side,
    style_size_for,
    style_upsampling_note,
    write_atomically,
)
from nst.paths import IMAGES_DIR, PROJECT_DIR
from nst.vgg19 import MIN_SHORT_SIDE_PX

PIXEL_TOLERANCE = 0.5 / 255 + 1e-6  # an 8-bit round trip is exact to half a grey level
JPEG_TOLERANCE = 6 / 255  # JPEG on flat colour areas is off by a few grey levels
SAMPLE_FILES = ("content_raccoon.jpg", "style_swirls.jpg")


def _opened(path: Path, attribute: str):
    """One attribute of the image file (mode, format, n_frames...), closing the file again."""
    with Image.open(path) as image:
        return getattr(image, attribute, 1)


def _save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def _assert_rgb01(pixels: np.ndarray, shape: tuple[int, int, int]) -> None:
    assert pixels.shape == shape
    assert pixels.dtype == np.float32
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0


def _assert_one_line_naming(error: pytest.ExceptionInfo, path: Path, *phrases: str) -> None:
    message = str(error.value)
    assert "\n" not in message, message
    assert path.name in message, message
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in: {message}"


def _assert_refuses_batch(error: pytest.ExceptionInfo, shape: tuple[int, ...]) -> None:
    """The one-line refusal of a batch (1, H, W, 3): it names the shape and says to drop the batch axis."""
    message = str(error.value)
    assert "\n" not in message, message
    assert str(shape) in message and "(H, W, 3)" in message and "drop the batch axis" in message, message


def _png_bytes(width: int, height: int, bit_depth: int, colour_type: int, rows) -> bytes:
    """A PNG file built chunk by chunk, compressing rows as they come: huge images without the memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(1)
    idat = b"".join(compressor.compress(b"\x00" + row) for row in rows) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _solid_grey_jpeg_bytes(width: int, height: int) -> bytes:
    """A baseline greyscale JPEG, mid-grey (128) everywhere, of any size in a few MB.

    Huffman tables with a single 1-bit code make every 8x8 block two 0 bits (DC difference 0, end of block),
    so the entropy-coded data is just zero bytes.
    """

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    single_code = bytes([1] + [0] * 15) + b"\x00"  # one code of length 1, for symbol 0
    n_blocks = ((width + 7) // 8) * ((height + 7) // 8)
    return (
        b"\xff\xd8"
        + segment(0xDB, b"\x00" + bytes([1] * 64))  # quantisation table: all ones
        + segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + bytes([1, 0x11, 0]))  # baseline, 1 component
        + segment(0xC4, b"\x00" + single_code + b"\x10" + single_code)  # DC table 0, AC table 0
        + segment(0xDA, bytes([1, 1, 0x00, 0, 63, 0]))
        + bytes((2 * n_blocks + 7) // 8)
        + b"\xff\xd9"
    )


@pytest.fixture
def two_colour_rgb() -> Image.Image:
    """120x60 px: red left half, blue right half."""
    image = Image.new("RGB", (120, 60), (255, 0, 0))
    ImageDraw.Draw(image).rectangle((60, 0, 119, 59), fill=(0, 0, 255))
    return image


# ---------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("size_hw", "max_side_px", "expected_hw"),
    [
        ((600, 800), 400, (300, 400)),  # landscape
        ((800, 600), 400, (400, 300)),  # portrait
        ((50, 100), 400, (200, 400)),  # small images are upscaled to the size asked for
        ((2, 3), 5, (3, 5)),  # 3.33 rounds to 3
        ((3, 4), 6, (5, 6)),  # 4.5 rounds half up to 5
        ((1, 20000), 400, (1, 400)),  # at least 1 px
        ((20000, 1), 400, (400, 1)),
        ((480, 640), None, (480, 640)),
    ],
)
def test_fit_to_max_side(size_hw, max_side_px, expected_hw):
    assert fit_to_max_side(*size_hw, max_side_px) == expected_hw
    assert fit_to_max_side(height_px=size_hw[0], width_px=size_hw[1], max_side_px=max_side_px) == expected_hw


@pytest.mark.parametrize("bad", [0, -5, 400.0, "400", True])
def test_bad_max_side_is_a_value_error_naming_it(tmp_path, two_colour_rgb, bad):
    path = _save(two_colour_rgb, tmp_path / "a.png")
    with pytest.raises(ValueError, match="max_side_px") as error:
        load_image(path, max_side_px=bad)
    assert repr(bad) in str(error.value)
    with pytest.raises(ValueError, match="max_side_px"):
        image_size_for(path, max_side_px=bad)


def test_resize_to_max_side_keeps_aspect_range_and_rank():
    # There is one resizer: a max side is fit_to_max_side, then resize_image.
    image = np.random.default_rng(0).random((30, 60, 3), dtype=np.float32)
    resized = resize_image(image, *fit_to_max_side(*image.shape[:2], 100))
    _assert_rgb01(resized, (50, 100, 3))
    with pytest.raises(ValueError) as error:  # one shape convention: a batch is refused, not resized
        resize_image(image[np.newaxis], *fit_to_max_side(30, 60, 40))
    _assert_refuses_batch(error, (1, 30, 60, 3))
    flat = np.full((30, 60, 3), 0.25, np.float32)
    np.testing.assert_allclose(resize_image(flat, *fit_to_max_side(30, 60, 17)), 0.25, atol=1e-5)


def test_shrink_to_max_side_only_ever_shrinks():
    # What the notebook's show() puts on screen: a large image at most that size, aspect kept; a small one as it is.
    tall = np.random.default_rng(1).random((90, 30, 3), dtype=np.float32)
    _assert_rgb01(shrink_to_max_side(tall, 45), (45, 15, 3))
    np.testing.assert_array_equal(shrink_to_max_side(tall, 90), tall)  # already that size
    np.testing.assert_array_equal(shrink_to_max_side(tall, 800), tall)  # never enlarged
    np.testing.assert_array_equal(shrink_to_max_side(tall, None), tall)
    np.testing.assert_allclose(shrink_to_max_side(np.full((40, 80, 3), 0.5, np.float32), 8), 0.5, atol=1e-5)
    with pytest.raises(ValueError, match="max_side_px"):
        shrink_to_max_side(tall, 0)
    with pytest.raises(ValueError) as error:  # the one shape convention: (H, W, 3)
        shrink_to_max_side(tall[np.newaxis], 45)
    _assert_refuses_batch(error, (1, 90, 30, 3))


def test_image_size_for_matches_load_image_without_decoding(tmp_path, two_colour_rgb):
    path = _save(two_colour_rgb, tmp_path / "a.jpg")
    assert image_size_for(path, 400) == (200, 400) == load_image(path, 400).shape[:2]
    assert image_size_for(path, None) == (60, 120)
    assert image_size_for(path, max_side_px=90) == (45, 90) == load_image(path, max_side_px=90).shape[:2]


# ---------------------------------------------------------------------------- formats and modes


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".gif", ".webp", ".tif"])
def test_formats_load_as_rgb01_at_max_side(tmp_path, two_colour_rgb, suffix):
    path = _save(two_colour_rgb, tmp_path / f"two{suffix}")
    pixels = load_image(path, max_side_px=240)
    _assert_rgb01(pixels, (120, 240, 3))
    tolerance = JPEG_TOLERANCE if suffix in (".jpg", ".webp") else PIXEL_TOLERANCE
    np.testing.assert_allclose(pixels[60, 40], [1, 0, 0], atol=tolerance)  # well inside the red half
    np.testing.assert_allclose(pixels[60, 200], [0, 0, 1], atol=tolerance)


def test_native_size_png_is_exact(tmp_path):
    rgb_uint8 = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    path = _save(Image.fromarray(rgb_uint8), tmp_path / "noise.png")
    np.testing.assert_allclose(load_image(path, max_side_px=None), rgb_uint8 / 255, atol=1e-6)


def test_downscale_averages_instead_of_skipping_pixels(tmp_path):
    stripes = np.zeros((400, 400), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: nearest-neighbour would give all black or all white
    path = _save(Image.fromarray(stripes), tmp_path / "stripes.png")
    pixels = load_image(path, max_side_px=100)
    np.testing.assert_allclose(pixels[:, 1:-1], 0.5, atol=0.02)  # the border columns see only one side


def test_greyscale_l_and_1bit_become_three_equal_channels(tmp_path):
    grey = Image.new("L", (64, 48), 77)
    pixels = load_image(_save(grey, tmp_path / "grey.png"), max_side_px=None)
    _assert_rgb01(pixels, (48, 64, 3))
    np.testing.assert_allclose(pixels, 77 / 255, atol=1e-6)
    bilevel = Image.new("1", (64, 48), 1)
    np.testing.assert_allclose(load_image(_save(bilevel, tmp_path / "bw.png"), max_side_px=None), 1.0)


def test_16_bit_greyscale_keeps_its_precision(tmp_path):
    # 255/65535 is 0.0039: taking the high byte gives 0, clamping to 8 bits gives 1.0
    values = np.tile(np.array([255, 32768, 65535, 0, 1000, 65280], dtype=np.uint16), (40, 6))
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    path = _save(image, tmp_path / "deep.png")
    assert _opened(path, "mode") == "I;16"
    pixels = load_image(path, max_side_px=None)
    _assert_rgb01(pixels, (40, 36, 3))
    np.testing.assert_allclose(pixels[..., 0], values / 65535, atol=1e-6)
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])


def test_16_bit_greyscale_resizes_in_float(tmp_path):
    values = np.full((40, 80), 300, dtype=np.uint16)  # 300/65535: below one 8-bit grey level
    pixels = load_image(_save(Image.fromarray(values), tmp_path / "deep.png"), max_side_px=160)
    _assert_rgb01(pixels, (80, 160, 3))
    np.testing.assert_allclose(pixels, 300 / 65535, atol=1e-6)


def test_rgba_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[:, :20] = (255, 0, 0, 0)  # fully transparent red: white
    rgba[:, 20:40] = (0, 0, 0, 128)  # half transparent black: light grey
    rgba[:, 40:] = (0, 255, 0, 255)  # opaque green
    pixels = load_image(_save(Image.fromarray(rgba), tmp_path / "alpha.png"), max_side_px=None)
    _assert_rgb01(pixels, (40, 60, 3))
    np.testing.assert_allclose(pixels[:, :20], 1.0, atol=1e-6)
    np.testing.assert_allclose(pixels[:, 20:40], 1 - 128 / 255, atol=1e-6)
    np.testing.assert_allclose(pixels[:, 40:], np.broadcast_to([0, 1, 0], (40, 20, 3)), atol=1e-6)


def test_rgba_resized_does_not_bleed_hidden_colour(tmp_path):
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:, :32] = (0, 0, 0, 0)  # transparent *black*: must not darken the white after resizing
    rgba[:, 32:] = (255, 255, 255, 255)
    pixels = load_image(_save(Image.fromarray(rgba), tmp_path / "alpha.png"), max_side_px=40)
    np.testing.assert_allclose(pixels, 1.0, atol=2 / 255)


def test_la_greyscale_with_alpha(tmp_path):
    image = Image.new("LA", (50, 40), (0, 0))
    pixels = load_image(_save(image, tmp_path / "la.png"), max_side_px=None)
    np.testing.assert_allclose(pixels, 1.0)


def test_palette_with_transparency_index(tmp_path):
    image = Image.new("P", (40, 40), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    ImageDraw.Draw(image).rectangle((20, 0, 39, 39), fill=1)
    path = _save(image, tmp_path / "pal.png", transparency=0)  # index 0 (red) is transparent
    pixels = load_image(path, max_side_px=None)
    np.testing.assert_allclose(pixels[:, :20], 1.0)  # transparent: white, not red
    np.testing.assert_allclose(pixels[:, 20:], np.broadcast_to([0, 0, 1], (40, 20, 3)))


def test_palette_without_transparency(tmp_path, two_colour_rgb):
    path = _save(two_colour_rgb.convert("P"), tmp_path / "pal.png")
    pixels = load_image(path, max_side_px=None)
    np.testing.assert_allclose(pixels[10, 10], [1, 0, 0], atol=PIXEL_TOLERANCE)


def test_cmyk_jpeg_converts_to_rgb(tmp_path):
    cmyk = Image.new("CMYK", (64, 48), (0, 255, 0, 0))  # magenta ink only
    path = _save(cmyk, tmp_path / "print.jpg", quality=95)
    assert _opened(path, "mode") == "CMYK"
    pixels = load_image(path, max_side_px=None)
    np.testing.assert_allclose(pixels[24, 32], [1, 0, 1], atol=JPEG_TOLERANCE)


@pytest.mark.parametrize(("orientation", "top_colour"), [(6, (1, 0, 0)), (8, (0, 0, 1))])
def test_exif_orientation_turns_the_picture(tmp_path, two_colour_rgb, orientation, top_colour):
    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: turn 90° clockwise to view, 8: counter-clockwise
    path = _save(two_colour_rgb, tmp_path / "phone.jpg", exif=exif, quality=95)
    pixels = load_image(path, max_side_px=240)
    _assert_rgb01(pixels, (240, 120, 3))  # stored 120x60 landscape, shown portrait
    assert image_size_for(path, 240) == (240, 120)
    np.testing.assert_allclose(pixels[40, 60], top_colour, atol=JPEG_TOLERANCE)
    np.testing.assert_allclose(pixels[200, 60], top_colour[::-1], atol=JPEG_TOLERANCE)


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_animation_gives_its_first_frame(tmp_path, suffix):
    frames = [Image.new("RGB", (48, 40), colour) for colour in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    path = _save(frames[0], tmp_path / f"anim{suffix}", save_all=True, append_images=frames[1:], duration=100)
    assert _opened(path, "n_frames") == 3
    pixels = load_image(path, max_side_px=None)
    np.testing.assert_allclose(pixels, np.broadcast_to([1, 0, 0], (40, 48, 3)), atol=PIXEL_TOLERANCE)


def test_a_tiny_image_is_refused_rather_than_upscaled(tmp_path):
    path = _save(Image.new("RGB", (1, 1), (10, 20, 30)), tmp_path / "dot.png")
    with pytest.raises(ImageFileError) as error:
        load_image(path, max_side_px=400)
    _assert_one_line_naming(error, path, "1x1 px", "too small", "at least 32 px")


def test_a_small_image_is_upscaled_to_max_side(tmp_path):
    path = _save(Image.new("RGB", (12, 9), (10, 20, 30)), tmp_path / "small.png")
    pixels = load_image(path, max_side_px=400)
    _assert_rgb01(pixels, (300, 400, 3))
    np.testing.assert_allclose(pixels, np.broadcast_to(np.array([10, 20, 30]) / 255, (300, 400, 3)), atol=1e-5)


# ---------------------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    path = tmp_path / "no_such_photo.jpg"
    with pytest.raises(ImageFileError) as error:
        load_image(path)
    _assert_one_line_naming(error, path, "not found", str(tmp_path), "content_raccoon.jpg")


def test_missing_file_in_missing_folder(tmp_path):
    path = tmp_path / "nowhere" / "photo.jpg"
    with pytest.raises(ImageFileError) as error:
        load_image(path)
    _assert_one_line_naming(error, path, "does not exist")


def test_missing_file_that_is_a_sample_suggests_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ImageFileError) as error:
        load_image("style_swirls.jpg")
    _assert_one_line_naming(error, Path("style_swirls.jpg"), "did you mean", str(IMAGES_DIR))


def test_directory(tmp_path):
    with pytest.raises(ImageFileError) as error:
        load_image(tmp_path)
    _assert_one_line_naming(error, tmp_path, "is a folder")


@pytest.mark.parametrize(("content", "phrase"), [(b"hello, I am a text file\n", "not an image"), (b"", "empty")])
def test_not_an_image(tmp_path, content, phrase):
    path = tmp_path / "holiday.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageFileError) as error:
        load_image(path)
    _assert_one_line_naming(error, path, "not an image Pillow can read", phrase)


def test_truncated_jpeg_is_refused_not_half_loaded(tmp_path):
    noise = np.random.default_rng(2).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    whole = _save(Image.fromarray(noise), tmp_path / "whole.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ImageFileError) as error:
        load_image(path)
    _assert_one_line_naming(error, path, "truncated", "download it again")


@pytest.mark.parametrize(
    ("size_wh", "max_side_px", "phrase"),
    [
        ((400, 20), 400, "use max_side_px=630 or more"),  # 20/400 of 630 = 31.5, rounds up to 32
        ((40, 20), None, "use max_side_px=63 or more"),  # too small natively: upscaling fixes it
        ((20000, 8), 400, "aspect ratio (2500:1) is too extreme"),
    ],
)
def test_too_small_after_resizing(tmp_path, size_wh, max_side_px, phrase):
    path = _save(Image.new("L", size_wh, 128), tmp_path / "strip.png")
    with pytest.raises(ImageFileError) as error:
        load_image(path, max_side_px=max_side_px)
    _assert_one_line_naming(error, path, f"{size_wh[0]}x{size_wh[1]} px", "at least 32 px", phrase)


def test_suggested_max_side_is_the_smallest_that_works(tmp_path):
    path = _save(Image.new("L", (400, 20), 128), tmp_path / "strip.png")
    assert load_image(path, max_side_px=630).shape == (32, 630, 3)
    with pytest.raises(ImageFileError):
        load_image(path, max_side_px=629)


# ---------------------------------------------------------------------------- huge files


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory) -> Path:
    """A 20000x20000 px greyscale JPEG (400 Mpx, 1.5 MB on disk)."""
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    path.write_bytes(_solid_grey_jpeg_bytes(20000, 20000))
    return path


def test_huge_jpeg_loads_through_draft_mode(huge_jpeg):
    pixels = load_image(huge_jpeg, max_side_px=400)
    _assert_rgb01(pixels, (400, 400, 3))
    np.testing.assert_allclose(pixels, 128 / 255, atol=1e-6)


def test_huge_jpeg_decodes_with_little_memory(huge_jpeg):
    # A fresh process, so that the high-water mark of resident memory is this load's alone.
    script = (
        "import resource, sys\n"
        "from nst.images import load_image\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "load_image(sys.argv[1], max_side_px=400)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    project = str(PROJECT_DIR)
    run = subprocess.run([sys.executable, "-c", script, str(huge_jpeg)], capture_output=True, text=True, cwd=project)
    assert run.returncode == 0, run.stderr
    growth_mb = int(run.stdout.strip())
    assert growth_mb < 100, f"loading grew memory by {growth_mb} MB; a full decode needs 400 MB"


def test_huge_jpeg_at_native_size_is_refused(huge_jpeg):
    with pytest.raises(ImageFileError) as error:
        load_image(huge_jpeg, max_side_px=None)
    _assert_one_line_naming(error, huge_jpeg, "20000x20000 px", "MB of memory", "pass a max_side_px")


def test_huge_png_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_bytes(20000, 20000, 1, 0, [bytes(2500)] * 20000))  # 1 bit per pixel
    with pytest.raises(ImageFileError) as error:
        load_image(path)
    _assert_one_line_naming(error, path, "too large to decode safely", "downscale the file first")


def test_png_over_pillow_warning_threshold_loads_without_warning(tmp_path):
    # 100 Mpx: above Pillow's 89 Mpx DecompressionBombWarning, small enough for 1-bit data to decode.
    path = tmp_path / "big.png"
    path.write_bytes(_png_bytes(10000, 10000, 1, 0, [b"\xff" * 625 + bytes(625)] * 10000))  # white left half
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pixels = load_image(path, max_side_px=100)
    _assert_rgb01(pixels, (100, 100, 3))
    np.testing.assert_allclose(pixels[:, :45], 1.0, atol=1e-3)
    np.testing.assert_allclose(pixels[:, 55:], 0.0, atol=1e-3)


# ---------------------------------------------------------------------------- save_image


def test_save_png_round_trip_exact(tmp_path):
    image = np.random.default_rng(3).random((36, 40, 3), dtype=np.float32)
    path = save_image(tmp_path / "out" / "deeper" / "result.png", image)
    assert path == tmp_path / "out" / "deeper" / "result.png"
    np.testing.assert_allclose(load_image(path, max_side_px=None), image, atol=PIXEL_TOLERANCE)
    with pytest.raises(ValueError) as error:  # one shape convention: a batch is refused, and nothing is written
        save_image(tmp_path / "batched.png", image[np.newaxis])
    _assert_refuses_batch(error, (1, 36, 40, 3))
    assert not (tmp_path / "batched.png").exists()


def test_save_clips_and_rounds(tmp_path):
    image = np.array([[[-0.5, 0.5, 1.5], [0.2 / 255, 0.6 / 255, 254.5 / 255]]], dtype=np.float32)
    path = save_image(tmp_path / "clip.png", image)
    with Image.open(path) as written:
        assert np.asarray(written).tolist() == [[[0, 128, 255], [0, 1, 254]]]


def test_save_jpeg_by_extension(tmp_path):
    path = save_image(tmp_path / "result.JPEG", np.full((32, 48, 3), 0.5, np.float32))
    assert _opened(path, "format") == "JPEG"
    np.testing.assert_allclose(load_image(path, max_side_px=None), 0.5, atol=JPEG_TOLERANCE)


def test_save_accepts_a_tensorflow_tensor(tmp_path):
    tf = pytest.importorskip("tensorflow")
    image = tf.fill((32, 48, 3), 0.25)
    path = save_image(tmp_path / "t.png", image)
    np.testing.assert_allclose(load_image(path, max_side_px=None), 0.25, atol=PIXEL_TOLERANCE)
    with pytest.raises(ValueError) as error:  # a batched tensor, as the model sees it, is refused
        save_image(tmp_path / "batched.png", tf.fill((1, 32, 48, 3), 0.25))
    _assert_refuses_batch(error, (1, 32, 48, 3))


@pytest.mark.parametrize(
    ("name", "image", "error_type", "phrase"),
    [
        ("a.gif", np.zeros((4, 4, 3)), ImageFileError, "use .png"),
        ("a.png", np.zeros((4, 4)), ValueError, "(4, 4)"),
        ("a.png", np.zeros((2, 4, 4, 3)), ValueError, "(2, 4, 4, 3)"),
        ("a.png", np.zeros((1, 4, 4, 3)), ValueError, "(1, 4, 4, 3); drop the batch axis"),
        ("a.png", np.zeros((4, 4, 4)), ValueError, "(4, 4, 4)"),
        ("a.png", np.full((4, 4, 3), np.nan), ValueError, "NaN"),
    ],
)
def test_save_refuses_bad_input_and_writes_nothing(tmp_path, name, image, error_type, phrase):
    with pytest.raises(error_type, match=phrase.replace("(", r"\(").replace(")", r"\)")):
        save_image(tmp_path / name, image)
    assert list(tmp_path.iterdir()) == []


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "result.png"
    path.write_bytes(b"the previous result")

    def fail_halfway(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half an image")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", fail_halfway)
    with pytest.raises(OSError, match="No space left"):
        save_image(path, np.zeros((8, 8, 3), np.float32))
    assert path.read_bytes() == b"the previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["result.png"]  # no temporary file left behind


def test_save_replaces_an_existing_file_with_normal_permissions(tmp_path):
    path = tmp_path / "result.png"
    path.write_bytes(b"old")
    save_image(path, np.ones((32, 32, 3), np.float32))
    np.testing.assert_allclose(load_image(path, max_side_px=None), 1.0)
    assert path.stat().st_mode & 0o044, "other users should be able to read it, as with any new file"
    assert [p.name for p in tmp_path.iterdir()] == ["result.png"]


# ---------------------------------------------------------------------------- shipped samples and import


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_sample_images_load(name):
    path = IMAGES_DIR / name
    assert path.stat().st_size <= 300 * 1024
    pixels = load_image(path, max_side_px=400)
    assert pixels.dtype == np.float32 and pixels.shape[2] == 3
    assert max(pixels.shape[:2]) == 400 and min(pixels.shape[:2]) >= MIN_SHORT_SIDE_PX
    assert pixels.std() > 0.1, "a sample should have visible structure"


def test_loading_changes_no_global_pillow_setting(tmp_path, huge_jpeg):
    before = (Image.MAX_IMAGE_PIXELS, list(warnings.filters))
    load_image(huge_jpeg)
    with pytest.raises(ImageFileError):
        load_image(huge_jpeg, max_side_px=None)
    assert (Image.MAX_IMAGE_PIXELS, list(warnings.filters)) == before


# ---------------------------------------------------------------------------- PNG EXIF, when memory is checked


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, whole chunk bytes) of each chunk of a PNG file."""
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        end = offset + 12 + length
        chunks.append((data[offset + 4 : offset + 8], data[offset:end]))
        offset = end
    return chunks


@pytest.mark.parametrize("exif_after_pixels", [False, True])
def test_png_exif_orientation(tmp_path, two_colour_rgb, exif_after_pixels):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(two_colour_rgb, tmp_path / "turned.png", exif=exif)
    chunks = _png_chunks(path.read_bytes())
    assert [kind for kind, _ in chunks].index(b"eXIf") < [kind for kind, _ in chunks].index(b"IDAT")
    if exif_after_pixels:  # allowed by the PNG spec; Pillow finds it only when it decodes the image
        exif_chunk = [chunk for kind, chunk in chunks if kind == b"eXIf"]
        others = [chunk for kind, chunk in chunks if kind not in (b"eXIf", b"IEND")]
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"".join(others + exif_chunk) + chunks[-1][1])
    pixels = load_image(path, max_side_px=240)
    _assert_rgb01(pixels, (240, 120, 3))
    np.testing.assert_allclose(pixels[40, 60], [1, 0, 0], atol=PIXEL_TOLERANCE)  # the stored left half, on top


def test_memory_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    path = _save(Image.new("RGB", (600, 400)), tmp_path / "a.png")  # about 5 MB to decode and convert
    monkeypatch.setattr(nst.images, "MAX_DECODE_BYTES", 2**20)
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    with pytest.raises(ImageFileError) as error:
        load_image(path, max_side_px=None)
    _assert_one_line_naming(error, path, "about 4 MB of memory", "limit 1 MB", "pass a max_side_px")
    assert decoded == [], "the file was decoded before its size was checked"


def test_a_max_side_too_large_for_memory_names_the_value_and_one_that_fits(tmp_path, monkeypatch):
    path = _save(Image.new("RGB", (120, 90)), tmp_path / "small.png")  # tiny to decode; huge when upscaled
    monkeypatch.setattr(nst.images, "MAX_DECODE_BYTES", 8 * 2**20)
    with pytest.raises(ImageFileError) as error:
        load_image(path, max_side_px=2000)  # 2000x1500 px of float32 RGB: 34 MB
    _assert_one_line_naming(error, path, "max_side_px=2000", "2000x1500 px", "limit 8 MB")
    assert "downscale the file" not in str(error.value), "the file is fine: the size asked for is the trouble"
    fitting_px = int(str(error.value).split("use max_side_px=")[1].split()[0])
    assert 600 <= fitting_px < 2000
    assert max(load_image(path, max_side_px=fitting_px).shape[:2]) == fitting_px


def test_a_style_scale_too_large_for_memory_names_style_scale_and_one_that_fits(tmp_path, monkeypatch):
    path = _save(Image.new("RGB", (120, 90)), tmp_path / "style.png")
    monkeypatch.setattr(nst.images, "MAX_DECODE_BYTES", 8 * 2**20)
    with pytest.raises(ImageFileError) as error:
        load_style_image(path, max_side_px=200, style_scale=20)  # 4000x3000 px of float32 RGB: 137 MB
    _assert_one_line_naming(error, path, "style_scale=20", "4000 px", "max_side_px=200", "limit 8 MB")
    fitting_scale = float(str(error.value).split("use style_scale=")[1].split()[0])
    assert 1 < fitting_scale < 20
    assert max(load_style_image(path, max_side_px=200, style_scale=fitting_scale).shape[:2]) <= 200 * fitting_scale


def test_unconvertible_colour_mode(tmp_path, two_colour_rgb, monkeypatch):
    path = _save(two_colour_rgb, tmp_path / "odd.tif")

    def no_conversion(self, *args, **kwargs):
        raise ValueError("conversion not supported")

    monkeypatch.setattr(Image.Image, "convert", no_conversion)
    monkeypatch.setattr(Image.Image, "resize", no_conversion)
    with pytest.raises(ImageFileError) as error:
        load_image(path, max_side_px=240)
    _assert_one_line_naming(error, path, "colour mode", "re-export it as an 8-bit RGB")


def test_progressive_jpeg_counts_its_full_size_coefficients(tmp_path, monkeypatch):
    # libjpeg buffers all coefficients of a progressive file at full size, draft or not: 2000x2000x3x2 = 23 MB.
    image = Image.new("RGB", (2000, 2000), (200, 100, 50))
    baseline = _save(image, tmp_path / "baseline.jpg")
    progressive = _save(image, tmp_path / "progressive.jpg", progressive=True)
    monkeypatch.setattr(nst.images, "MAX_DECODE_BYTES", 8 * 2**20)
    assert load_image(baseline, max_side_px=100).shape == (100, 100, 3)  # decoded at 1/8: 250x250 px
    with pytest.raises(ImageFileError) as error:
        load_image(progressive, max_side_px=100)
    _assert_one_line_naming(error, progressive, "MB of memory", "downscale the file first")


# ---------------------------------------------------------------------------- one shape convention: (H, W, 3)


def _call_with(function_name: str, image, tmp_path: Path):
    """Call one of nst.images' image-taking functions on `image`."""
    if function_name == "resize_image":
        return resize_image(image, 8, 8)
    if function_name == "save_image":
        return save_image(tmp_path / "out.png", image)
    if function_name == "rgb01_to_uint8":
        return rgb01_to_uint8(image)
    return png_bytes(image)


IMAGE_FUNCTIONS = ("resize_image", "save_image", "rgb01_to_uint8", "png_bytes")


@pytest.mark.parametrize("function_name", IMAGE_FUNCTIONS)
def test_every_image_function_refuses_a_batch_in_one_line(tmp_path, function_name):
    image = np.full((4, 6, 3), 0.5, np.float32)
    _call_with(function_name, image, tmp_path)  # (H, W, 3) is accepted
    with pytest.raises(ValueError) as error:
        _call_with(function_name, image[np.newaxis], tmp_path / "batched")
    _assert_refuses_batch(error, (1, 4, 6, 3))
    assert not (tmp_path / "batched").exists()


@pytest.mark.parametrize("function_name", IMAGE_FUNCTIONS)
@pytest.mark.parametrize("shape", [(4, 6), (2, 4, 6, 3), (4, 6, 4), (4, 6, 1), (3,)])
def test_every_image_function_names_a_wrong_shape(tmp_path, function_name, shape):
    with pytest.raises(ValueError) as error:
        _call_with(function_name, np.zeros(shape, np.float32), tmp_path)
    message = str(error.value)
    assert "\n" not in message and str(shape) in message and "(H, W, 3)" in message, message
    assert "drop the batch axis" not in message, "image[0] would lose images or is not an image at all"


# ---------------------------------------------------------------------------- resize_image


def test_resize_image_gives_exactly_height_by_width():
    image = np.random.default_rng(5).random((30, 60, 3), dtype=np.float32)
    for height_px, width_px in ((45, 20), (10, 20), (30, 61), (1, 1), (90, 30)):
        resized = resize_image(image, height_px, width_px)
        _assert_rgb01(resized, (height_px, width_px, 3))
    assert resize_image(image, height_px=12, width_px=7).shape == (12, 7, 3)


def test_resize_image_to_its_own_size_is_an_equal_copy():
    image = np.random.default_rng(6).random((20, 30, 3), dtype=np.float32)
    same = resize_image(image, 20, 30)
    np.testing.assert_array_equal(same, image)
    same[0, 0, 0] = -1.0
    assert image[0, 0, 0] != -1.0, "resize_image must never hand back its input"


def test_resize_image_keeps_a_linear_ramp_linear():
    # Lanczos reproduces a linear ramp away from the borders: halving a ramp u/W (pixel centres at x + 0.5)
    # puts new pixel j at old position 2j + 1, so its value is (2j + 1) / W.
    width_px = 64
    ramp = (np.arange(width_px, dtype=np.float32) + 0.5) / width_px
    image = np.broadcast_to(ramp[np.newaxis, :, np.newaxis], (16, width_px, 3)).copy()
    halved = resize_image(image, 8, width_px // 2)
    expected = (2 * np.arange(width_px // 2) + 1) / width_px
    np.testing.assert_allclose(halved[4, 3:-3, 1], expected[3:-3], atol=2e-3)
    np.testing.assert_allclose(halved[:, :, 0], halved[:, :, 2])  # every channel alike
    np.testing.assert_allclose(halved[0], halved[-1], atol=1e-6)  # nothing changes down the columns


def test_resize_image_accepts_a_tensorflow_tensor():
    tf = pytest.importorskip("tensorflow")
    resized = resize_image(tf.fill((10, 20, 3), 0.75), 5, 10)
    assert isinstance(resized, np.ndarray)
    np.testing.assert_allclose(resized, 0.75, atol=1e-5)


# ---------------------------------------------------------------------------- rgb01_to_uint8, png_bytes


def test_rgb01_to_uint8_clips_and_rounds():
    image = np.array([[[-0.5, 0.5, 1.5], [0.2 / 255, 0.6 / 255, 254.4 / 255]]], dtype=np.float32)
    pixels = rgb01_to_uint8(image)
    assert pixels.dtype == np.uint8 and pixels.shape == (1, 2, 3)
    assert pixels.tolist() == [[[0, 128, 255], [0, 1, 254]]]


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_rgb01_to_uint8_refuses_nan_and_infinity(bad_value):
    image = np.full((4, 4, 3), 0.5, np.float32)
    image[0, 0, 0] = image[3, 3, 2] = bad_value
    with pytest.raises(ValueError, match="has 2 NaN or infinite values; the optimisation probably diverged"):
        rgb01_to_uint8(image)


def test_png_bytes_decode_to_the_uint8_pixels():
    image = np.random.default_rng(7).random((9, 13, 3), dtype=np.float32)
    data = png_bytes(image)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.format == "PNG" and decoded.mode == "RGB" and decoded.size == (13, 9)
        np.testing.assert_array_equal(np.asarray(decoded), rgb01_to_uint8(image))


# ---------------------------------------------------------------------------- write_atomically


def test_write_atomically_creates_folders_and_writes_the_bytes(tmp_path):
    path = tmp_path / "a" / "b" / "data.bin"
    assert write_atomically(path, lambda file: file.write(b"hello")) == path
    assert path.read_bytes() == b"hello"
    assert [p.name for p in path.parent.iterdir()] == ["data.bin"]


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_write_atomically_leaves_the_old_file_on_any_failure(tmp_path, failure):
    path = tmp_path / "data.bin"
    path.write_bytes(b"previous")

    def fail_halfway(file):
        file.write(b"half")
        raise failure

    with pytest.raises(type(failure)):
        write_atomically(path, fail_halfway)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]  # no temporary file left behind


# ---------------------------------------------------------------------------- max sides


@pytest.mark.parametrize(("value", "expected"), [(None, None), (1, 1), (400, 400), (np.int64(630), 630)])
def test_checked_max_side_accepts_whole_pixels_or_none(value, expected):
    checked = checked_max_side(value)
    assert checked == expected and type(checked) is type(expected)


@pytest.mark.parametrize("bad", [0, -5, 400.0, np.float64(400), "400", True, False, [400]])
def test_checked_max_side_refuses_anything_else_naming_it(bad):
    with pytest.raises(ValueError, match="max_side_px must be a whole number of pixels") as error:
        checked_max_side(bad)
    assert repr(bad) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("max_side_px", "style_scale", "expected"),
    [(400, 1.0, 400), (400, 0.5, 200), (400, 1.5, 600), (401, 0.5, 201), (400, 0.01, 32), (64, 1, 64)],
)
def test_style_max_side(max_side_px, style_scale, expected):
    assert style_max_side(max_side_px, style_scale) == expected


@pytest.mark.parametrize(
    ("max_side_px", "style_scale", "phrase"),
    [
        (400, 0, "style_scale must be a finite number above 0"),
        (400, -1.0, "above 0 .* got -1.0"),
        (400, math.inf, "got inf"),
        (400, math.nan, "got nan"),
        (400, "1", "got '1'"),
        (None, 1.0, "needs the content's longer side"),
        (0, 1.0, "max_side_px must be a whole number of pixels"),
    ],
)
def test_style_max_side_errors(max_side_px, style_scale, phrase):
    with pytest.raises(ValueError, match=phrase):
        style_max_side(max_side_px, style_scale)


@pytest.mark.parametrize(("max_side_px", "style_scale"), [(64, 1.0), (48, 1.0), (512, 1.0), (64, 3.0), (64, 0.5)])
def test_a_style_smaller_than_vgg_s_minimum_is_upsampled_and_said_once(tmp_path, max_side_px, style_scale):
    path = _save(Image.new("RGB", (16, 12), "teal"), tmp_path / "tile.png")  # a 16×12 px texture
    style = load_style_image(path, max_side_px, style_scale)
    assert min(style.shape[:2]) >= 32 and style.shape[:2] == style_size_for(path, max_side_px, style_scale)
    assert max(style.shape[:2]) == max(round(max_side_px * style_scale), 43)  # 43 × 32 px: the short side at 32
    note = style_upsampling_note(path, max_side_px, style_scale)
    assert note.startswith("note: the style image tile.png is 16×12 px") and "upsampled to" in note, note
    assert style_upsampling_note(_save(Image.new("RGB", (40, 32)), tmp_path / "ok.png"), max_side_px) is None


# ---------------------------------------------------------------------------- known bugs in nst/images.py
# Sizes that are no sizes: refused in one line naming the value.


@pytest.mark.parametrize("bad", [0, -4, 400.0, True])
def test_fit_to_max_side_refuses_a_bad_max_side(bad):
    with pytest.raises(ValueError, match="max_side_px must be a whole number of pixels"):
        fit_to_max_side(10, 20, bad)


@pytest.mark.parametrize(("height_px", "width_px"), [(0, 5), (5, 0), (-3, 5)])
def test_resize_image_refuses_an_empty_size_in_one_line(height_px, width_px):
    with pytest.raises(ValueError, match=rf"{height_px}.*{width_px}|{width_px}.*{height_px}") as error:
        resize_image(np.zeros((4, 4, 3), np.float32), height_px, width_px)
    assert "\n" not in str(error.value)
