"""nst.colour: colour transfer (Gatys et al. 2017), luminance-only in YIQ and colour-histogram matching.

Images are small random arrays made here; the YIQ numbers are checked by hand and the statistics with numpy.
"""

from __future__ import annotations

import numpy as np
import pytest

from nst.colour import (
    RGB_TO_YIQ,
    _colour_matched_pixels,
    match_colour_histogram,
    rgb_to_yiq,
    transfer_luminance_only,
    yiq_to_rgb,
)
from nst.images import resize_image


def _assert_refuses_batch(error: pytest.ExceptionInfo, shape: tuple[int, ...]) -> None:
    """The one-line refusal of a batch (1, H, W, 3): it names the shape and says to drop the batch axis."""
    message = str(error.value)
    assert "\n" not in message, message
    assert str(shape) in message and "(H, W, 3)" in message and "drop the batch axis" in message, message


def _mid_range(seed: int, shape=(24, 32, 3), spread: float = 0.15) -> np.ndarray:
    """Random float32 RGB around mid grey, so recolouring stays inside the gamut and nothing is clipped."""
    return (0.5 + spread * (np.random.default_rng(seed).random(shape) - 0.5)).astype(np.float32)


# ---------------------------------------------------------------------------- YIQ


def test_yiq_round_trip_is_exact():
    image = np.random.default_rng(0).random((5, 7, 3))
    np.testing.assert_allclose(yiq_to_rgb(rgb_to_yiq(image)), image, atol=1e-6)
    np.testing.assert_allclose(rgb_to_yiq(yiq_to_rgb(image)), image, atol=1e-6)


def test_yiq_of_grey_and_white_by_hand():
    # White: Y = 0.299 + 0.587 + 0.114 = 1, and each chroma row sums to 0, so a grey has no I or Q.
    np.testing.assert_allclose(rgb_to_yiq([1.0, 1.0, 1.0]), [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(rgb_to_yiq(np.full((2, 2, 3), 0.25)), np.tile([0.25, 0.0, 0.0], (2, 2, 1)), atol=1e-6)
    np.testing.assert_allclose(rgb_to_yiq([1.0, 0.0, 0.0]), [0.299, 0.595716, 0.211456])


def test_yiq_refuses_arrays_without_three_channels():
    with pytest.raises(ValueError, match=r"3 colour channels.*\(4, 4\)"):
        rgb_to_yiq(np.zeros((4, 4)))


# ---------------------------------------------------------------------------- luminance-only transfer


def test_luminance_transfer_keeps_stylised_luma_and_content_chroma():
    stylised, content = _mid_range(1), _mid_range(2)
    result = transfer_luminance_only(stylised, content)
    assert result.shape == stylised.shape and result.dtype == np.float32
    assert result.min() > 0.0 and result.max() < 1.0, "chosen so that nothing is clipped"
    result_yiq = rgb_to_yiq(result)
    np.testing.assert_allclose(result_yiq[..., 0], rgb_to_yiq(stylised)[..., 0], atol=1e-6)
    np.testing.assert_allclose(result_yiq[..., 1:], rgb_to_yiq(content)[..., 1:], atol=1e-6)


def test_luminance_transfer_refuses_a_batch_and_resizes_the_content():
    stylised = _mid_range(3, (24, 32, 3))
    content = _mid_range(4, (48, 64, 3))
    result = transfer_luminance_only(stylised, content)
    assert result.shape == (24, 32, 3)
    expected_chroma = rgb_to_yiq(resize_image(content, 24, 32))[..., 1:]
    np.testing.assert_allclose(rgb_to_yiq(result)[..., 1:], expected_chroma, atol=1e-6)
    with pytest.raises(ValueError) as error:  # one shape convention: a batched stylised image is refused
        transfer_luminance_only(stylised[np.newaxis], content)
    _assert_refuses_batch(error, (1, 24, 32, 3))
    with pytest.raises(ValueError) as error:  # and so is a batched content image
        transfer_luminance_only(stylised, content[np.newaxis])
    _assert_refuses_batch(error, (1, 48, 64, 3))


def test_luminance_transfer_of_an_image_with_itself_is_the_image():
    image = np.random.default_rng(5).random((16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(transfer_luminance_only(image, image), image, atol=1e-6)


def test_luminance_transfer_clips_out_of_gamut_colours():
    stylised = np.ones((8, 8, 3), np.float32)  # Y = 1: adding any chroma leaves the gamut
    content = np.zeros((8, 8, 3), np.float32)
    content[..., 0] = 1.0  # pure red
    result = transfer_luminance_only(stylised, content)
    assert result.min() >= 0.0 and result.max() <= 1.0


# ---------------------------------------------------------------------------- colour histogram matching


def _correlated(seed: int, n: int, mean, scale) -> np.ndarray:
    """(n, 3) pixels with correlated channels: random mixing matrix times uniform noise, plus a mean."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(3, 3)) * scale
    return rng.random((n, 3)) @ mixing.T + np.asarray(mean)


def test_colour_matching_unclipped_equals_content_mean_and_covariance():
    style = _correlated(6, 3000, [0.1, 0.7, 0.3], 0.3)
    content = _correlated(7, 2000, [0.6, 0.4, 0.5], 0.2)
    matched = _colour_matched_pixels(style, content)
    np.testing.assert_allclose(matched.mean(axis=0), content.mean(axis=0), rtol=1e-5)
    # population covariances (bias=True): the N of the style and the M of the content differ
    np.testing.assert_allclose(
        np.cov(matched, rowvar=False, bias=True), np.cov(content, rowvar=False, bias=True), rtol=1e-5, atol=1e-12
    )


def test_colour_matching_public_result_statistics_shape_dtype_and_range():
    style = _mid_range(8, (30, 40, 3), spread=0.6)
    style[..., 2] = 0.3 + 0.4 * style[..., 0] + 0.1 * style[..., 2]  # blue follows red: a correlated palette
    content = _mid_range(9, (20, 20, 3), spread=0.2)
    result = match_colour_histogram(style, content)
    assert result.shape == style.shape and result.dtype == np.float32
    with pytest.raises(ValueError) as error:  # one shape convention: a batched style is refused
        match_colour_histogram(style[np.newaxis], content)
    _assert_refuses_batch(error, (1, 30, 40, 3))
    with pytest.raises(ValueError) as error:  # and so is a batched content image
        match_colour_histogram(style, content[np.newaxis])
    _assert_refuses_batch(error, (1, 20, 20, 3))
    assert result.min() > 0.0 and result.max() < 1.0, "chosen so that nothing is clipped"
    pixels, content_pixels = result.reshape(-1, 3).astype(np.float64), content.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(pixels.mean(axis=0), content_pixels.mean(axis=0), rtol=1e-5)
    covariances = [np.cov(p, rowvar=False, bias=True) for p in (pixels, content_pixels)]
    np.testing.assert_allclose(*covariances, rtol=1e-4, atol=1e-8)  # float32 result: 1e-4, not 1e-5


def test_colour_matching_of_a_flat_style_gives_the_content_mean():
    style = np.full((8, 8, 3), 0.2, np.float32)
    content = _mid_range(10)
    result = match_colour_histogram(style, content)
    assert np.isfinite(result).all()
    np.testing.assert_allclose(result, np.broadcast_to(content.mean(axis=(0, 1)), result.shape), atol=1e-6)


def test_colour_matching_clips_to_the_unit_range():
    style = np.random.default_rng(11).random((16, 16, 3)).astype(np.float32)
    content = np.random.default_rng(12).random((16, 16, 3)).astype(np.float32) ** 4  # skewed: mapping overshoots
    result = match_colour_histogram(style, content)
    assert result.min() >= 0.0 and result.max() <= 1.0


def test_yiq_matrix_is_the_ntsc_one():
    # Y weights sum to 1 (white has luma 1); I and Q rows sum to 0 (greys have no chroma).
    np.testing.assert_allclose(RGB_TO_YIQ.sum(axis=1), [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(RGB_TO_YIQ[0], [0.299, 0.587, 0.114])


def test_colour_matching_is_independent_of_the_channel_order():
    # The symmetric square root maps R, G and B alike: permuting the channels of both images permutes the result.
    style = _correlated(16, 500, [0.2, 0.5, 0.6], 0.2)
    content = _correlated(17, 400, [0.6, 0.3, 0.4], 0.2)
    order = [2, 0, 1]
    np.testing.assert_allclose(
        _colour_matched_pixels(style[:, order], content[:, order]),
        _colour_matched_pixels(style, content)[:, order],
        atol=1e-9,
    )
