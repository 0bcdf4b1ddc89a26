"""nst.video: the flow, the warp and the consistency mask, on a synthetic clip whose true motion is known."""

import numpy as np
import pytest

from nst import video
from nst.images import load_image, resize_image
from nst.paths import SAMPLE_CONTENT_PATH, SAMPLE_STYLE_PATH
from nst.video_synthetic import moving_square_frames, square_pos_px

HEIGHT_PX, WIDTH_PX, SQUARE_PX, STEP_PX = 96, 128, 32, 4
# Tolerances for the warp of frame t onto frame t+1 on trusted pixels, in [0, 1] pixel units (the largest colour
# channel). Measured with DIS: mean 0.0007, 99th percentile 0.015; without the flow the square's pixels miss by ~0.8.
MEAN_ERROR_TOLERANCE, P99_ERROR_TOLERANCE = 0.01, 0.05


@pytest.fixture(scope="module")
def clip():
    return moving_square_frames(3, HEIGHT_PX, WIDTH_PX, SQUARE_PX, STEP_PX)


@pytest.mark.parametrize("method", video.FLOW_METHODS)
def test_the_flow_warps_frame_t_onto_frame_t_plus_1_on_trusted_pixels(clip, method):
    frame_t, frame_next = clip[0], clip[1]
    back = video.optical_flow(frame_next, frame_t, method)
    c = video.consistency_mask(back, video.optical_flow(frame_t, frame_next, method))
    error = np.abs(video.warp(frame_t, back) - frame_next).max(axis=2)[c > 0]
    assert c.mean() > 0.7, f"{method}: only {c.mean():.0%} of the pixels trusted"
    assert error.mean() < MEAN_ERROR_TOLERANCE, f"{method}: mean error {error.mean():.4f} on trusted pixels"
    assert np.percentile(error, 99) < P99_ERROR_TOLERANCE, f"{method}: 99th percentile {np.percentile(error, 99):.3f}"


def test_the_flow_on_the_square_is_its_motion(clip):
    back = video.optical_flow(clip[1], clip[0])  # frame 1 → frame 0: the square came from STEP_PX to the left
    top, left = square_pos_px(1, HEIGHT_PX, WIDTH_PX, STEP_PX)
    inner = back[top + 8 : top + SQUARE_PX - 8, left + 8 : left + SQUARE_PX - 8]
    np.testing.assert_allclose(np.median(inner.reshape(-1, 2), axis=0), [-STEP_PX, 0.0], atol=0.5)


def test_the_mask_marks_the_uncovered_strip(clip):
    back, forward = video.optical_flow(clip[1], clip[0]), video.optical_flow(clip[0], clip[1])
    c = video.consistency_mask(back, forward)
    top, left = square_pos_px(1, HEIGHT_PX, WIDTH_PX, STEP_PX)
    strip = c[top + 2 : top + SQUARE_PX - 2, left - STEP_PX : left]  # background in frame 1, square in frame 0
    assert strip.mean() <= 0.5, f"only {1 - strip.mean():.0%} of the uncovered strip is marked untrusted"
    far = c[:, : left - 3 * STEP_PX]  # static background far from the square
    assert far.mean() > 0.9, f"{1 - far.mean():.0%} of the static background is marked untrusted"
    assert set(np.unique(c)) <= {0.0, 1.0}


@pytest.mark.parametrize("method", video.FLOW_METHODS)
def test_a_cut_is_a_new_shot_and_camera_motion_is_not(method):
    photo = load_image(SAMPLE_CONTENT_PATH, max_side_px=400)
    height_px, width_px = photo.shape[0] - 40, photo.shape[1] - 40

    def view(dx_px):  # the photo seen by a camera panned dx_px to the right, at 256 px
        return resize_image(photo[20 : 20 + height_px, 20 + dx_px : 20 + dx_px + width_px], 172, 256)

    other_shot = resize_image(load_image(SAMPLE_STYLE_PATH, max_side_px=256), 172, 256)

    def mask(frame_prev, frame_t):
        back = video.optical_flow(frame_t, frame_prev, method)
        return video.consistency_mask(back, video.optical_flow(frame_prev, frame_t, method))

    assert video.is_new_shot(mask(view(0), other_shot)), f"{method}: a cut taken for motion"
    for dx_px in (0, 5, 20):
        c = mask(view(0), view(dx_px))
        assert not video.is_new_shot(c), f"{method}: a {dx_px} px pan taken for a cut ({c.mean():.0%} trusted)"


def test_warp_by_a_whole_pixel_shift_matches_slicing():
    image = np.random.default_rng(0).random((10, 12, 3)).astype(np.float32)
    flow = np.zeros((10, 12, 2), np.float32)
    flow[..., 0] = 2.0  # sample two pixels to the right
    np.testing.assert_allclose(video.warp(image, flow)[:, :-2], image[:, 2:], atol=1e-6)
    np.testing.assert_array_equal(video.warp(image, np.zeros_like(flow)), image)


def test_the_mask_distrusts_points_that_leave_the_frame():
    flow = np.zeros((8, 8, 2), np.float32)
    flow[..., 0] = 3.0  # every point moved 3 px right: the last 3 columns came from outside
    c = video.consistency_mask(flow, -flow)
    assert c[:, :5].all() and not c[:, 5:].any()


def test_zero_flow_is_trusted_everywhere():
    zero = np.zeros((6, 7, 2), np.float32)
    assert video.consistency_mask(zero, zero).all()


def test_flow_colours_are_an_image():
    rgb = video.flow_to_rgb(np.random.default_rng(1).normal(size=(5, 6, 2)).astype(np.float32))
    assert rgb.shape == (5, 6, 3) and rgb.min() >= 0.0 and rgb.max() <= 1.0


def test_an_unknown_flow_method_is_named():
    frame = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="lucas"):
        video.optical_flow(frame, frame, "lucas")
