"""Tests for the Images section of nst_utils: load_image, save_image, generate_noise_image and their helpers.

Every input file is made here, in tmp_path, with Pillow (or by hand where Pillow would need gigabytes).
"""

from __future__ import annotations

import errno
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

import nst_utils
from nst_utils import ImageFileError, generate_noise_image, load_image, save_image

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
    ("size_wh", "max_side", "expected_wh"),
    [
        ((800, 600), 400, (400, 300)),
        ((600, 800), 400, (300, 400)),
        ((100, 50), 400, (400, 200)),  # small images are upscaled to the size asked for
        ((3, 2), 5, (5, 3)),  # 3.33 rounds to 3
        ((4, 3), 6, (6, 5)),  # 4.5 rounds half up to 5
        ((20000, 1), 400, (400, 1)),  # at least 1 px
        ((640, 480), None, (640, 480)),
    ],
)
def test_fit_to_max_side(size_wh, max_side, expected_wh):
    assert nst_utils.fit_to_max_side(*size_wh, max_side) == expected_wh


@pytest.mark.parametrize("bad", [0, -5, 400.0, "400", True])
def test_bad_max_side_is_a_value_error_naming_it(tmp_path, two_colour_rgb, bad):
    path = _save(two_colour_rgb, tmp_path / "a.png")
    with pytest.raises(ValueError, match="max_side") as error:
        load_image(path, max_side=bad)
    assert repr(bad) in str(error.value)


def test_resize_to_max_side_keeps_aspect_range_and_rank():
    image = np.random.default_rng(0).random((30, 60, 3), dtype=np.float32)
    resized = nst_utils.resize_to_max_side(image, 100)
    _assert_rgb01(resized, (50, 100, 3))
    assert nst_utils.resize_to_max_side(image[np.newaxis], 40).shape == (1, 20, 40, 3)
    flat = np.full((30, 60, 3), 0.25, np.float32)
    np.testing.assert_allclose(nst_utils.resize_to_max_side(flat, 17), 0.25, atol=1e-5)


def test_image_size_for_matches_load_image_without_decoding(tmp_path, two_colour_rgb):
    path = _save(two_colour_rgb, tmp_path / "a.jpg")
    assert nst_utils.image_size_for(path, 400) == (200, 400) == load_image(path, 400).shape[:2]
    assert nst_utils.image_size_for(path, None) == (60, 120)


# ---------------------------------------------------------------------------- formats and modes


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".gif", ".webp", ".tif"])
def test_formats_load_as_rgb01_at_max_side(tmp_path, two_colour_rgb, suffix):
    path = _save(two_colour_rgb, tmp_path / f"two{suffix}")
    pixels = load_image(path, max_side=240)
    _assert_rgb01(pixels, (120, 240, 3))
    tolerance = JPEG_TOLERANCE if suffix in (".jpg", ".webp") else PIXEL_TOLERANCE
    np.testing.assert_allclose(pixels[60, 40], [1, 0, 0], atol=tolerance)  # well inside the red half
    np.testing.assert_allclose(pixels[60, 200], [0, 0, 1], atol=tolerance)


def test_native_size_png_is_exact(tmp_path):
    rgb_uint8 = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    path = _save(Image.fromarray(rgb_uint8), tmp_path / "noise.png")
    np.testing.assert_allclose(load_image(path, max_side=None), rgb_uint8 / 255, atol=1e-6)


def test_downscale_averages_instead_of_skipping_pixels(tmp_path):
    stripes = np.zeros((400, 400), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: nearest-neighbour would give all black or all white
    path = _save(Image.fromarray(stripes), tmp_path / "stripes.png")
    pixels = load_image(path, max_side=100)
    np.testing.assert_allclose(pixels[:, 1:-1], 0.5, atol=0.02)  # the border columns see only one side


def test_greyscale_l_and_1bit_become_three_equal_channels(tmp_path):
    grey = Image.new("L", (64, 48), 77)
    pixels = load_image(_save(grey, tmp_path / "grey.png"), max_side=None)
    _assert_rgb01(pixels, (48, 64, 3))
    np.testing.assert_allclose(pixels, 77 / 255, atol=1e-6)
    bilevel = Image.new("1", (64, 48), 1)
    np.testing.assert_allclose(load_image(_save(bilevel, tmp_path / "bw.png"), max_side=None), 1.0)


def test_16_bit_greyscale_keeps_its_precision(tmp_path):
    # 255/65535 is 0.0039: taking the high byte gives 0, clamping to 8 bits gives 1.0
    values = np.tile(np.array([255, 32768, 65535, 0, 1000, 65280], dtype=np.uint16), (40, 6))
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    path = _save(image, tmp_path / "deep.png")
    assert _opened(path, "mode") == "I;16"
    pixels = load_image(path, max_side=None)
    _assert_rgb01(pixels, (40, 36, 3))
    np.testing.assert_allclose(pixels[..., 0], values / 65535, atol=1e-6)
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])


def test_16_bit_greyscale_resizes_in_float(tmp_path):
    values = np.full((40, 80), 300, dtype=np.uint16)  # 300/65535: below one 8-bit grey level
    pixels = load_image(_save(Image.fromarray(values), tmp_path / "deep.png"), max_side=160)
    _assert_rgb01(pixels, (80, 160, 3))
    np.testing.assert_allclose(pixels, 300 / 65535, atol=1e-6)


def test_rgba_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[:, :20] = (255, 0, 0, 0)  # fully transparent red: white
    rgba[:, 20:40] = (0, 0, 0, 128)  # half transparent black: light grey
    rgba[:, 40:] = (0, 255, 0, 255)  # opaque green
    pixels = load_image(_save(Image.fromarray(rgba), tmp_path / "alpha.png"), max_side=None)
    _assert_rgb01(pixels, (40, 60, 3))
    np.testing.assert_allclose(pixels[:, :20], 1.0, atol=1e-6)
    np.testing.assert_allclose(pixels[:, 20:40], 1 - 128 / 255, atol=1e-6)
    np.testing.assert_allclose(pixels[:, 40:], np.broadcast_to([0, 1, 0], (40, 20, 3)), atol=1e-6)


def test_rgba_resized_does_not_bleed_hidden_colour(tmp_path):
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:, :32] = (0, 0, 0, 0)  # transparent *black*: must not darken the white after resizing
    rgba[:, 32:] = (255, 255, 255, 255)
    pixels = load_image(_save(Image.fromarray(rgba), tmp_path / "alpha.png"), max_side=40)
    np.testing.assert_allclose(pixels, 1.0, atol=2 / 255)


def test_la_greyscale_with_alpha(tmp_path):
    image = Image.new("LA", (50, 40), (0, 0))
    pixels = load_image(_save(image, tmp_path / "la.png"), max_side=None)
    np.testing.assert_allclose(pixels, 1.0)


def test_palette_with_transparency_index(tmp_path):
    image = Image.new("P", (40, 40), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    ImageDraw.Draw(image).rectangle((20, 0, 39, 39), fill=1)
    path = _save(image, tmp_path / "pal.png", transparency=0)  # index 0 (red) is transparent
    pixels = load_image(path, max_side=None)
    np.testing.assert_allclose(pixels[:, :20], 1.0)  # transparent: white, not red
    np.testing.assert_allclose(pixels[:, 20:], np.broadcast_to([0, 0, 1], (40, 20, 3)))


def test_palette_without_transparency(tmp_path, two_colour_rgb):
    path = _save(two_colour_rgb.convert("P"), tmp_path / "pal.png")
    pixels = load_image(path, max_side=None)
    np.testing.assert_allclose(pixels[10, 10], [1, 0, 0], atol=PIXEL_TOLERANCE)


def test_cmyk_jpeg_converts_to_rgb(tmp_path):
    cmyk = Image.new("CMYK", (64, 48), (0, 255, 0, 0))  # magenta ink only
    path = _save(cmyk, tmp_path / "print.jpg", quality=95)
    assert _opened(path, "mode") == "CMYK"
    pixels = load_image(path, max_side=None)
    np.testing.assert_allclose(pixels[24, 32], [1, 0, 1], atol=JPEG_TOLERANCE)


@pytest.mark.parametrize(("orientation", "top_colour"), [(6, (1, 0, 0)), (8, (0, 0, 1))])
def test_exif_orientation_turns_the_picture(tmp_path, two_colour_rgb, orientation, top_colour):
    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: turn 90° clockwise to view, 8: counter-clockwise
    path = _save(two_colour_rgb, tmp_path / "phone.jpg", exif=exif, quality=95)
    pixels = load_image(path, max_side=240)
    _assert_rgb01(pixels, (240, 120, 3))  # stored 120x60 landscape, shown portrait
    assert nst_utils.image_size_for(path, 240) == (240, 120)
    np.testing.assert_allclose(pixels[40, 60], top_colour, atol=JPEG_TOLERANCE)
    np.testing.assert_allclose(pixels[200, 60], top_colour[::-1], atol=JPEG_TOLERANCE)


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_animation_gives_its_first_frame(tmp_path, suffix):
    frames = [Image.new("RGB", (48, 40), colour) for colour in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    path = _save(frames[0], tmp_path / f"anim{suffix}", save_all=True, append_images=frames[1:], duration=100)
    assert _opened(path, "n_frames") == 3
    pixels = load_image(path, max_side=None)
    np.testing.assert_allclose(pixels, np.broadcast_to([1, 0, 0], (40, 48, 3)), atol=PIXEL_TOLERANCE)


def test_a_tiny_image_is_refused_rather_than_upscaled(tmp_path):
    path = _save(Image.new("RGB", (1, 1), (10, 20, 30)), tmp_path / "dot.png")
    with pytest.raises(ImageFileError) as error:
        load_image(path, max_side=400)
    _assert_one_line_naming(error, path, "1x1 px", "too small", "at least 32 px")


def test_a_small_image_is_upscaled_to_max_side(tmp_path):
    path = _save(Image.new("RGB", (12, 9), (10, 20, 30)), tmp_path / "small.png")
    pixels = load_image(path, max_side=400)
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
    _assert_one_line_naming(error, Path("style_swirls.jpg"), "did you mean", str(nst_utils.IMAGES_DIR))


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
    ("size_wh", "max_side", "phrase"),
    [
        ((400, 20), 400, "use max_side=630 or more"),  # 20/400 of 630 = 31.5, rounds up to 32
        ((40, 20), None, "use max_side=63 or more"),  # too small natively: upscaling fixes it
        ((20000, 8), 400, "aspect ratio (2500:1) is too extreme"),
    ],
)
def test_too_small_after_resizing(tmp_path, size_wh, max_side, phrase):
    path = _save(Image.new("L", size_wh, 128), tmp_path / "strip.png")
    with pytest.raises(ImageFileError) as error:
        load_image(path, max_side=max_side)
    _assert_one_line_naming(error, path, f"{size_wh[0]}x{size_wh[1]} px", "at least 32 px", phrase)


def test_suggested_max_side_is_the_smallest_that_works(tmp_path):
    path = _save(Image.new("L", (400, 20), 128), tmp_path / "strip.png")
    assert load_image(path, max_side=630).shape == (32, 630, 3)
    with pytest.raises(ImageFileError):
        load_image(path, max_side=629)


# ---------------------------------------------------------------------------- huge files


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory) -> Path:
    """A 20000x20000 px greyscale JPEG (400 Mpx, 1.5 MB on disk)."""
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    path.write_bytes(_solid_grey_jpeg_bytes(20000, 20000))
    return path


def test_huge_jpeg_loads_through_draft_mode(huge_jpeg):
    pixels = load_image(huge_jpeg, max_side=400)
    _assert_rgb01(pixels, (400, 400, 3))
    np.testing.assert_allclose(pixels, 128 / 255, atol=1e-6)


def test_huge_jpeg_decodes_with_little_memory(huge_jpeg):
    # A fresh process, so that the high-water mark of resident memory is this load's alone.
    script = (
        "import resource, sys, nst_utils\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "nst_utils.load_image(sys.argv[1], max_side=400)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    project = str(Path(nst_utils.__file__).parent)
    run = subprocess.run([sys.executable, "-c", script, str(huge_jpeg)], capture_output=True, text=True, cwd=project)
    assert run.returncode == 0, run.stderr
    growth_mb = int(run.stdout.strip())
    assert growth_mb < 100, f"loading grew memory by {growth_mb} MB; a full decode needs 400 MB"


def test_huge_jpeg_at_native_size_is_refused(huge_jpeg):
    with pytest.raises(ImageFileError) as error:
        load_image(huge_jpeg, max_side=None)
    _assert_one_line_naming(error, huge_jpeg, "20000x20000 px", "MB of memory", "pass a max_side")


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
        pixels = load_image(path, max_side=100)
    _assert_rgb01(pixels, (100, 100, 3))
    np.testing.assert_allclose(pixels[:, :45], 1.0, atol=1e-3)
    np.testing.assert_allclose(pixels[:, 55:], 0.0, atol=1e-3)


# ---------------------------------------------------------------------------- save_image


def test_save_png_round_trip_exact(tmp_path):
    image = np.random.default_rng(3).random((1, 36, 40, 3), dtype=np.float32)
    path = save_image(tmp_path / "out" / "deeper" / "result.png", image)
    assert path == tmp_path / "out" / "deeper" / "result.png"
    np.testing.assert_allclose(load_image(path, max_side=None), image[0], atol=PIXEL_TOLERANCE)


def test_save_clips_and_rounds(tmp_path):
    image = np.array([[[-0.5, 0.5, 1.5], [0.2 / 255, 0.6 / 255, 254.5 / 255]]], dtype=np.float32)
    path = save_image(tmp_path / "clip.png", image)
    with Image.open(path) as written:
        assert np.asarray(written).tolist() == [[[0, 128, 255], [0, 1, 254]]]


def test_save_jpeg_by_extension(tmp_path):
    path = save_image(tmp_path / "result.JPEG", np.full((32, 48, 3), 0.5, np.float32))
    assert _opened(path, "format") == "JPEG"
    np.testing.assert_allclose(load_image(path, max_side=None), 0.5, atol=JPEG_TOLERANCE)


def test_save_accepts_a_tensorflow_tensor(tmp_path):
    tf = pytest.importorskip("tensorflow")
    image = tf.fill((1, 32, 48, 3), 0.25)
    path = save_image(tmp_path / "t.png", image)
    np.testing.assert_allclose(load_image(path, max_side=None), 0.25, atol=PIXEL_TOLERANCE)


@pytest.mark.parametrize(
    ("name", "image", "error_type", "phrase"),
    [
        ("a.gif", np.zeros((4, 4, 3)), ImageFileError, "use .png"),
        ("a.png", np.zeros((4, 4)), ValueError, "(4, 4)"),
        ("a.png", np.zeros((2, 4, 4, 3)), ValueError, "(2, 4, 4, 3)"),
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
    np.testing.assert_allclose(load_image(path, max_side=None), 1.0)
    assert path.stat().st_mode & 0o044, "other users should be able to read it, as with any new file"
    assert [p.name for p in tmp_path.iterdir()] == ["result.png"]


# ---------------------------------------------------------------------------- generate_noise_image


@pytest.fixture
def content() -> np.ndarray:
    return np.random.default_rng(4).random((60, 80, 3), dtype=np.float32)


VGG_MEAN_RGB01 = np.array(nst_utils.VGG_MEAN_RGB_255, np.float32) / 255
HALF_RANGE = 20 / 255


def test_noise_image_is_deterministic_per_seed(content):
    first = generate_noise_image(content, seed=7)
    np.testing.assert_array_equal(first, generate_noise_image(content, seed=7))
    assert not np.array_equal(first, generate_noise_image(content, seed=8))


def test_noise_image_shape_rank_dtype_and_range(content):
    single = generate_noise_image(content)
    _assert_rgb01(single, content.shape)
    batched = generate_noise_image(content[np.newaxis])
    assert batched.shape == (1, *content.shape) and batched.dtype == np.float32
    extreme = generate_noise_image(np.ones_like(content), noise_ratio=0.01)
    assert extreme.max() <= 1.0


def test_noise_ratio_zero_is_the_content(content):
    np.testing.assert_allclose(generate_noise_image(content, noise_ratio=0.0), content, atol=1e-6)


def test_noise_ratio_one_is_mean_plus_uniform_noise(content):
    noise = generate_noise_image(content, noise_ratio=1.0) - VGG_MEAN_RGB01
    assert np.abs(noise).max() <= HALF_RANGE + 1e-6
    assert abs(noise.mean()) < 0.002  # centred on the mean pixel
    np.testing.assert_allclose(noise.std(), 2 * HALF_RANGE / np.sqrt(12), rtol=0.03)  # std of a uniform


def test_noise_ratio_between_mixes_linearly(content):
    ratio = 0.6
    mixed = generate_noise_image(content, noise_ratio=ratio, seed=0)
    noise = generate_noise_image(content, noise_ratio=1.0, seed=0) - VGG_MEAN_RGB01  # same seed, same noise
    expected = (1 - ratio) * (content - VGG_MEAN_RGB01) + ratio * noise + VGG_MEAN_RGB01
    np.testing.assert_allclose(mixed, np.clip(expected, 0, 1), atol=1e-5)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_noise_ratio_out_of_range(content, bad):
    with pytest.raises(ValueError, match="noise_ratio") as error:
        generate_noise_image(content, noise_ratio=bad)
    assert repr(bad) in str(error.value)


def test_noise_image_refuses_a_non_rgb_array():
    with pytest.raises(ValueError, match="shape"):
        generate_noise_image(np.zeros((10, 10)))


# ---------------------------------------------------------------------------- shipped samples and import


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_sample_images_load(name):
    path = nst_utils.IMAGES_DIR / name
    assert path.stat().st_size <= 300 * 1024
    pixels = load_image(path, max_side=400)
    assert pixels.dtype == np.float32 and pixels.shape[2] == 3
    assert max(pixels.shape[:2]) == 400 and min(pixels.shape[:2]) >= nst_utils.MIN_SHORT_SIDE_PX
    assert pixels.std() > 0.1, "a sample should have visible structure"


def test_loading_changes_no_global_pillow_setting(tmp_path, huge_jpeg):
    before = (Image.MAX_IMAGE_PIXELS, list(warnings.filters))
    load_image(huge_jpeg)
    with pytest.raises(ImageFileError):
        load_image(huge_jpeg, max_side=None)
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
    pixels = load_image(path, max_side=240)
    _assert_rgb01(pixels, (240, 120, 3))
    np.testing.assert_allclose(pixels[40, 60], [1, 0, 0], atol=PIXEL_TOLERANCE)  # the stored left half, on top


def test_memory_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    path = _save(Image.new("RGB", (600, 400)), tmp_path / "a.png")  # about 5 MB to decode and convert
    monkeypatch.setattr(nst_utils, "MAX_DECODE_BYTES", 2**20)
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    with pytest.raises(ImageFileError) as error:
        load_image(path, max_side=None)
    _assert_one_line_naming(error, path, "about 4 MB of memory", "limit 1 MB", "pass a max_side")
    assert decoded == [], "the file was decoded before its size was checked"


def test_unconvertible_colour_mode(tmp_path, two_colour_rgb, monkeypatch):
    path = _save(two_colour_rgb, tmp_path / "odd.tif")

    def no_conversion(self, *args, **kwargs):
        raise ValueError("conversion not supported")

    monkeypatch.setattr(Image.Image, "convert", no_conversion)
    monkeypatch.setattr(Image.Image, "resize", no_conversion)
    with pytest.raises(ImageFileError) as error:
        load_image(path, max_side=240)
    _assert_one_line_naming(error, path, "colour mode", "re-export it as an 8-bit RGB")


def test_progressive_jpeg_counts_its_full_size_coefficients(tmp_path, monkeypatch):
    # libjpeg buffers all coefficients of a progressive file at full size, draft or not: 2000x2000x3x2 = 23 MB.
    image = Image.new("RGB", (2000, 2000), (200, 100, 50))
    baseline = _save(image, tmp_path / "baseline.jpg")
    progressive = _save(image, tmp_path / "progressive.jpg", progressive=True)
    monkeypatch.setattr(nst_utils, "MAX_DECODE_BYTES", 8 * 2**20)
    assert load_image(baseline, max_side=100).shape == (100, 100, 3)  # decoded at 1/8: 250x250 px
    with pytest.raises(ImageFileError) as error:
        load_image(progressive, max_side=100)
    _assert_one_line_naming(error, progressive, "MB of memory", "downscale the file first")
