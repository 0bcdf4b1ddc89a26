"""nst.masks: a mask per style, read as grey in [0, 1], checked in one line, resized to the image, pooled to a layer.

Every mask file is made here with Pillow. The guided style cost that uses the masks is the notebook's, tested in
test_notebook_costs.py; the command line's refusals are in test_cli_failures.py.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nst.masks
from nst.errors import ImageFileError
from nst.masks import check_mask_file, load_mask, load_style_masks, mask_at_layer, masks_at, resize_mask
from nst.paths import PROJECT_DIR, SAMPLE_CONTENT_PATH, SAMPLE_MASK_PATH
from nst.settings import Settings

GREY = 64  # the left half of the two-tone masks below, of 255
TWO_TONE = np.concatenate([np.full((48, 32), GREY, np.uint8), np.full((48, 32), 255, np.uint8)], axis=1)  # 64×48


def two_tone(mode: str) -> Image.Image:
    """A 64×48 mask: grey (64 of 255) on the left half, white on the right, in Pillow mode `mode`."""
    grey = Image.fromarray(TWO_TONE)
    if mode == "I;16":
        return Image.fromarray(TWO_TONE.astype(np.uint16) * 257)
    if mode == "F":
        return Image.fromarray(TWO_TONE.astype(np.float32) / 255)
    return grey.convert(mode)


def noisy_png_bytes() -> bytes:
    """A 64×48 greyscale PNG of noise (a few KB, which PNG cannot compress much)."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def saved(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def assert_one_line_naming(error, path: Path, *phrases: str) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    for phrase in phrases:
        assert phrase in message, message
    return message


# ---------------------------------------------------------------------------- reading a mask as grey


@pytest.mark.parametrize(
    ("mode", "suffix", "tolerance"),
    [
        ("L", ".png", 0.0),
        ("P", ".png", 0.0),
        ("RGB", ".png", 0.0),
        ("RGB", ".jpg", 3 / 255),
        ("CMYK", ".jpg", 3 / 255),
        ("I;16", ".png", 0.0),
        ("F", ".tif", 0.0),
        ("LA", ".png", 0.0),
        ("RGBA", ".png", 0.0),
    ],
)
def test_a_mask_reads_as_its_grey_level_in_every_mode(tmp_path, mode, suffix, tolerance):
    path = saved(two_tone(mode), tmp_path / f"mask{suffix}")
    mask = load_mask(path, 48, 64)
    assert mask.shape == (48, 64) and mask.dtype == np.float32
    np.testing.assert_allclose(mask[:, :30], GREY / 255, atol=tolerance + 1e-6)
    np.testing.assert_allclose(mask[:, 34:], 1.0, atol=tolerance + 1e-6)


def test_a_bilevel_mask_is_black_and_white(tmp_path):
    path = saved(Image.fromarray(TWO_TONE > 128).convert("1"), tmp_path / "bilevel.png")
    np.testing.assert_array_equal(load_mask(path, 48, 64), (TWO_TONE > 128).astype(np.float32))


def test_a_colour_counts_by_its_luminance(tmp_path):
    path = saved(Image.new("RGB", (64, 48), (255, 0, 0)), tmp_path / "red.png")
    np.testing.assert_allclose(load_mask(path, 48, 64), 76 / 255, atol=1e-6)  # Pillow's L = 0.299 R + …


def test_transparent_pixels_paint_no_style(tmp_path):
    # White paint on a transparent layer, as an image editor saves it: the paint is the mask.
    alpha = np.zeros((48, 64), np.uint8)
    alpha[:, 32:] = 255
    rgba = np.dstack([np.full((48, 64, 3), 255, np.uint8), alpha])
    path = saved(Image.fromarray(rgba), tmp_path / "painted.png")
    mask = load_mask(path, 48, 64)
    np.testing.assert_array_equal(mask[:, :32], 0.0)
    np.testing.assert_array_equal(mask[:, 32:], 1.0)


def test_a_palette_with_a_transparent_index_is_black_there(tmp_path):
    image = Image.fromarray(TWO_TONE).convert("P")
    image.info["transparency"] = image.getpixel((0, 0))  # the grey's index
    path = saved(image, tmp_path / "palette.png")
    mask = load_mask(path, 48, 64)
    np.testing.assert_array_equal(mask[:, :32], 0.0)
    np.testing.assert_array_equal(mask[:, 32:], 1.0)


def test_the_exif_orientation_turns_the_mask(tmp_path):
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(TWO_TONE)))  # 48×64, upright 64×48 after orientation 6
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90° clockwise to display
    path = saved(stored, tmp_path / "turned.jpg", exif=exif, quality=95)
    mask = load_mask(path, 48, 64)
    assert mask.shape == (48, 64), "the aspect check and the mask use the upright picture"
    assert mask[:, :28].mean() < 0.3 < 0.9 < mask[:, 36:].mean()


def test_the_sample_mask_fits_the_sample_photo_at_any_size():
    with Image.open(SAMPLE_CONTENT_PATH) as photo, Image.open(SAMPLE_MASK_PATH) as mask:
        assert mask.size == photo.size and mask.mode == "L"
    for height_px, width_px in ((48, 64), (300, 400), (768, 1024)):
        leaves = load_mask(SAMPLE_MASK_PATH, height_px, width_px)
        assert leaves.shape == (height_px, width_px)
        assert 0.3 < leaves.mean() < 0.5, "the leaves are about 40 % of the photo"
        assert leaves[: height_px // 4, : width_px // 2].max() < 0.05, "the raccoon's head, top left, is outside"
        assert leaves[-height_px // 4 :, : width_px // 8].min() > 0.95, "the leaves bottom left are inside"


# ---------------------------------------------------------------------------- resizing and pooling


def test_a_mask_shrinks_by_area_average_and_grows_without_overshoot():
    checker = np.indices((48, 64)).sum(axis=0) % 2  # alternate pixels 0 and 1
    np.testing.assert_allclose(resize_mask(checker, 24, 32), 0.5, atol=1e-6)  # each pixel: half of 2×2 inside
    edge = np.zeros((6, 8), np.float32)
    edge[:, 4:] = 1.0
    grown = resize_mask(edge, 48, 64)
    assert grown.shape == (48, 64) and grown.min() >= 0.0 and grown.max() <= 1.0
    assert grown[:, :24].max() == 0.0 and grown[:, 40:].min() == 1.0, "no ringing away from the edge"


def test_masks_at_shapes_each_mask_for_the_cost_and_keeps_none():
    mask = np.ones((48, 64), np.float32)
    resized, absent = masks_at([mask, None], 24, 32)
    assert resized.shape == (1, 24, 32, 1) and resized.dtype == np.float32 and absent is None


@pytest.mark.parametrize("size_px", [(48, 64), (37, 51), (75, 100)])
def test_mask_at_layer_pools_as_tensorflow_s_average_pooling_does(size_px):
    import tensorflow as tf

    rng = np.random.default_rng(sum(size_px))
    mask = rng.random((1, *size_px, 1)).astype(np.float32)
    reference = tf.constant(mask)
    for _ in range(4):  # pool1 … pool4: the grids of conv2_1 … conv5_1
        reference = tf.nn.avg_pool2d(reference, ksize=2, strides=2, padding="VALID")
        pooled = mask_at_layer(mask, *reference.shape[1:3])
        assert pooled.shape == tuple(reference.shape)
        np.testing.assert_allclose(pooled, reference.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(mask_at_layer(mask[0, :, :, 0], *size_px), mask), "no pooling at the image's size"


def test_mask_at_layer_lands_on_every_style_layer_of_the_network():
    from nst.model import load_vgg_model

    layers = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    vgg = load_vgg_model(weights="random", output_layers=layers)
    activations = vgg(np.zeros((1, 37, 51, 3), np.float32))  # odd sizes: the pools drop a row or a column
    for name in layers:
        _, n_H, n_W, _ = activations[name].shape
        assert mask_at_layer(np.ones((37, 51), np.float32), n_H, n_W).shape == (1, n_H, n_W, 1), name


def test_mask_at_layer_refuses_a_grid_it_cannot_reach():
    with pytest.raises(ValueError, match="does not pool to a layer of 7×9"):
        mask_at_layer(np.ones((24, 32)), 7, 9)


def test_load_style_masks_gives_one_mask_per_style_or_none(tmp_path):
    path = saved(two_tone("L"), tmp_path / "mask.png")
    blended = Settings(style_images=[("a.jpg", 1), ("b.jpg", 1)])
    assert load_style_masks(blended, 48, 64) == [None, None]
    masks = load_style_masks(Settings(style_masks=[str(path)]), 24, 32)
    assert len(masks) == 1 and masks[0].shape == (24, 32)
    everywhere, sky = load_style_masks(Settings(style_images=["a.jpg", "b.jpg"], style_masks=[None, str(path)]), 48, 64)
    assert everywhere is None and sky.shape == (48, 64), "a style whose mask is None paints everywhere"


# ---------------------------------------------------------------------------- the aspect ratio


@pytest.mark.parametrize("mask_wh", [(64, 48), (1024, 768), (1023, 768), (401, 300), (400, 301), (65, 48)])
def test_a_mask_off_by_rounding_only_is_accepted(tmp_path, mask_wh):
    path = saved(Image.new("L", mask_wh, 255), tmp_path / "mask.png")
    assert load_mask(path, 300, 400).shape == (300, 400)


@pytest.mark.parametrize(
    ("mask_wh", "says"),
    [
        ((1024, 576), "ratio is 33.3% larger"),  # 16:9 for 4:3
        ((768, 1024), "ratio is 43.8% smaller"),  # portrait for landscape
        ((404, 300), "ratio is 1.0% larger"),  # four pixels off: more than rounding
    ],
)
def test_another_aspect_ratio_is_one_line_saying_by_how_much(tmp_path, mask_wh, says):
    path = saved(Image.new("L", mask_wh, 255), tmp_path / "mask.png")
    with pytest.raises(ImageFileError) as error:
        load_mask(path, 300, 400)
    fitting_h = round(mask_wh[0] * 300 / 400)
    assert_one_line_naming(
        error, path, f"is {mask_wh[0]}x{mask_wh[1]} px", "400x300 px", says, "crop or pad", f"{mask_wh[0]}x{fitting_h}"
    )


# ---------------------------------------------------------------------------- a mask that cannot be used


def test_a_missing_mask_names_it_and_the_sample_mask(tmp_path):
    path = tmp_path / "leaves.png"
    with pytest.raises(ImageFileError) as error:
        load_mask(path, 48, 64)
    assert_one_line_naming(error, path, "Mask file not found", SAMPLE_MASK_PATH.name)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p.mkdir(), "is a folder, not an image file"),
        (lambda p: p.symlink_to(p.with_name("gone.png")), "which does not exist; fix or remove the link"),
        (lambda p: p.symlink_to(p), "is a symbolic link loop"),
        (lambda p: p.write_text("white where the style paints"), "is not an image Pillow can read"),
        (lambda p: p.write_bytes(b""), "(the file is empty)"),
        (lambda p: p.write_bytes(noisy_png_bytes()[:-300]), "truncated or corrupt"),
        (lambda p: Image.new("L", (1, 1), 255).save(p, format="PNG"), "only 1x1 px, too small to be a mask"),
        (lambda p: Image.new("L", (64, 48), 0).save(p, format="PNG"), "is all black"),
        (lambda p: Image.new("L", (64, 48), 2).save(p, format="JPEG"), "is all black"),  # black, with JPEG noise
        (lambda p: Image.new("I;16", (64, 48), 100).save(p, format="PNG"), "is all black"),  # 16-bit: 100 of 65535
        (lambda p: Image.new("RGBA", (64, 48), (255, 255, 255, 0)).save(p, format="PNG"), "is all black"),
    ],
    ids=[
        "folder",
        "dangling link",
        "link loop",
        "text",
        "empty",
        "truncated",
        "1x1",
        "black",
        "black jpeg",
        "black 16-bit",
        "transparent",
    ],
)
def test_an_unusable_mask_is_one_line_naming_it(tmp_path, make, says):
    path = tmp_path / "mask.png"
    make(path)
    for check in (lambda: load_mask(path, 48, 64), lambda: check_mask_file(path, 64)):
        with pytest.raises(ImageFileError) as error:
            check()
        assert_one_line_naming(error, path, says)


def test_one_white_pixel_is_a_mask(tmp_path):
    pixels = np.zeros((480, 640), np.uint8)
    pixels[100, 100] = 255
    path = saved(Image.fromarray(pixels), tmp_path / "speck.png")
    mask = load_mask(path, 48, 64)
    assert 0 < mask.max() < 1 and mask.sum() == pytest.approx(64 * 48 / (640 * 480), rel=1e-3)


def test_a_mask_too_large_for_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    path = saved(two_tone("L"), tmp_path / "mask.png")
    monkeypatch.setattr(nst.masks, "MAX_DECODE_BYTES", 1000)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded before the memory check"))
    with pytest.raises(ImageFileError) as error:
        load_mask(path, 48, 64)
    assert_one_line_naming(error, path, "64x48 px, too large to read as a mask", "save it at the content image's size")


def test_a_mode_without_grey_is_one_line(tmp_path, monkeypatch):
    path = saved(two_tone("L"), tmp_path / "mask.png")

    def no_conversion(self, *args, **kwargs):
        raise ValueError("conversion not supported")

    monkeypatch.setattr(Image.Image, "convert", no_conversion)
    with pytest.raises(ImageFileError) as error:
        load_mask(path, 48, 64)
    assert_one_line_naming(error, path, "colour mode 'L'", "save the mask as an 8-bit greyscale PNG")


def test_importing_masks_imports_no_tensorflow():
    code = "import sys, nst.masks; print('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    assert os.fspath(SAMPLE_MASK_PATH).endswith("mask.png")
