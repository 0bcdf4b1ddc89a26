"""nst.initial: the images an optimisation starts from, (H, W, 3) float32 in [0, 1] with the content's size.

generate_noise_image is checked against the course's formula, written out here; initial_image against Pillow.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nst.initial import INITIAL_IMAGE_KINDS, NOISE_HALF_RANGE_01, generate_noise_image, initial_image
from nst.vgg19 import VGG_MEAN_RGB_255

VGG_MEAN_RGB01 = np.array(VGG_MEAN_RGB_255, np.float32) / 255
HALF_RANGE = 20 / 255  # the course's uniform(-20, 20) on the 0-255 scale


def _assert_rgb01(pixels: np.ndarray, shape: tuple[int, int, int]) -> None:
    assert pixels.shape == shape
    assert pixels.dtype == np.float32
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0


def _assert_refuses_batch(error: pytest.ExceptionInfo, shape: tuple[int, ...]) -> None:
    """The one-line refusal of a batch (1, H, W, 3): it names the shape and says to drop the batch axis."""
    message = str(error.value)
    assert "\n" not in message, message
    assert str(shape) in message and "(H, W, 3)" in message and "drop the batch axis" in message, message


# ---------------------------------------------------------------------------- generate_noise_image


@pytest.fixture
def photo() -> np.ndarray:
    """A 60x80 content image."""
    return np.random.default_rng(4).random((60, 80, 3), dtype=np.float32)


def test_noise_half_range_is_the_courses():
    assert NOISE_HALF_RANGE_01 == HALF_RANGE


def test_noise_image_is_deterministic_per_seed(photo):
    first = generate_noise_image(photo, seed=7)
    np.testing.assert_array_equal(first, generate_noise_image(photo, seed=7))
    assert not np.array_equal(first, generate_noise_image(photo, seed=8))


def test_noise_image_shape_rank_dtype_and_range(photo):
    single = generate_noise_image(photo)
    _assert_rgb01(single, photo.shape)
    with pytest.raises(ValueError) as error:  # one shape convention: a batch is refused
        generate_noise_image(photo[np.newaxis])
    _assert_refuses_batch(error, (1, *photo.shape))
    extreme = generate_noise_image(np.ones_like(photo), noise_ratio=0.01)
    assert extreme.max() <= 1.0


def test_noise_ratio_zero_is_the_content(photo):
    np.testing.assert_allclose(generate_noise_image(photo, noise_ratio=0.0), photo, atol=1e-6)


def test_noise_ratio_one_is_mean_plus_uniform_noise(photo):
    noise = generate_noise_image(photo, noise_ratio=1.0) - VGG_MEAN_RGB01
    assert np.abs(noise).max() <= HALF_RANGE + 1e-6
    assert abs(noise.mean()) < 0.002  # centred on the mean pixel
    np.testing.assert_allclose(noise.std(), 2 * HALF_RANGE / np.sqrt(12), rtol=0.03)  # std of a uniform


def test_noise_ratio_between_mixes_linearly(photo):
    ratio = 0.6
    mixed = generate_noise_image(photo, noise_ratio=ratio, seed=0)
    noise = generate_noise_image(photo, noise_ratio=1.0, seed=0) - VGG_MEAN_RGB01  # same seed, same noise
    expected = (1 - ratio) * (photo - VGG_MEAN_RGB01) + ratio * noise + VGG_MEAN_RGB01
    np.testing.assert_allclose(mixed, np.clip(expected, 0, 1), atol=1e-5)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_noise_ratio_out_of_range(photo, bad):
    with pytest.raises(ValueError, match="noise_ratio") as error:
        generate_noise_image(photo, noise_ratio=bad)
    assert repr(bad) in str(error.value)


def test_noise_image_refuses_a_non_rgb_array():
    with pytest.raises(ValueError, match="shape"):
        generate_noise_image(np.zeros((10, 10)))


# ---------------------------------------------------------------------------- initial_image


@pytest.fixture
def content() -> np.ndarray:
    return np.random.default_rng(13).random((24, 32, 3), dtype=np.float32)


@pytest.fixture
def style() -> np.ndarray:
    return np.random.default_rng(14).random((40, 30, 3), dtype=np.float32)


def test_initial_image_kinds_are_the_four():
    assert INITIAL_IMAGE_KINDS == ("noisy_content", "content", "style", "noise")


@pytest.mark.parametrize("kind", INITIAL_IMAGE_KINDS)
def test_initial_image_shape_range_dtype_and_determinism(kind, content, style):
    first = initial_image(kind, content, style, seed=3)
    assert first.shape == content.shape and first.dtype == np.float32
    assert first.min() >= 0.0 and first.max() <= 1.0
    np.testing.assert_array_equal(first, initial_image(kind, content, style, seed=3))
    with pytest.raises(ValueError) as error:  # one shape convention: a batched content is refused
        initial_image(kind, content[np.newaxis], style, seed=3)
    _assert_refuses_batch(error, (1, *content.shape))
    if kind == "style":  # and so is a batched style
        with pytest.raises(ValueError) as error:
            initial_image(kind, content, style[np.newaxis], seed=3)
        _assert_refuses_batch(error, (1, *style.shape))


def test_initial_image_kinds_are_what_they_say(content, style):
    np.testing.assert_array_equal(initial_image("content", content), content)
    noisy = initial_image("noisy_content", content, noise_ratio=0.3, seed=5)
    np.testing.assert_array_equal(noisy, generate_noise_image(content, 0.3, seed=5))
    np.testing.assert_array_equal(initial_image("noise", content, seed=5), generate_noise_image(content, 1.0, 5))
    assert not np.array_equal(initial_image("noise", content, seed=5), initial_image("noise", content, seed=6))
    from_style = initial_image("style", content, style)
    assert from_style.shape == content.shape
    expected = np.asarray(Image.fromarray(np.ascontiguousarray(style[:, :, 1])).resize((32, 24), Image.LANCZOS))
    np.testing.assert_allclose(from_style[:, :, 1], np.clip(expected, 0, 1), atol=1e-6)


def test_initial_content_is_a_copy(content):
    start = initial_image("content", content)
    start[0, 0, 0] = -1.0
    assert content[0, 0, 0] != -1.0, "the optimisation must never write into the content image"


def test_initial_image_errors(content):
    with pytest.raises(ValueError, match="'paint' is unknown; choose one of: noisy_content, content, style, noise"):
        initial_image("paint", content)
    with pytest.raises(ValueError, match="needs the style image"):
        initial_image("style", content)
    with pytest.raises(ValueError, match=r"must be an \(H, W, 3\) RGB array, got shape \(2, 24, 32, 3\)") as error:
        initial_image("content", np.zeros((2, 24, 32, 3)))
    assert "drop the batch axis" not in str(error.value), "image[0] would silently drop the second image"
