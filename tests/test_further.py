"""Tests for the "Going further" section of nst_utils: colour preservation, several styles, initialisation, strip.

Images are small random arrays made here; the evolution strip reads a fake run folder written with save_image.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nst_utils
from nst_utils import (
    initial_image,
    match_colour_histogram,
    normalise_style_weights,
    rgb_to_yiq,
    save_image,
    style_max_side,
    transfer_luminance_only,
    write_evolution_strip,
    yiq_to_rgb,
)


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


def test_luminance_transfer_keeps_batch_rank_and_resizes_the_content():
    stylised = _mid_range(3, (1, 24, 32, 3))
    content = _mid_range(4, (48, 64, 3))
    result = transfer_luminance_only(stylised, content)
    assert result.shape == (1, 24, 32, 3)
    expected_chroma = rgb_to_yiq(nst_utils.resize_to_max_side(content, 32))[..., 1:]
    np.testing.assert_allclose(rgb_to_yiq(result[0])[..., 1:], expected_chroma, atol=1e-6)


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
    matched = nst_utils._colour_matched_pixels(style, content)
    np.testing.assert_allclose(matched.mean(axis=0), content.mean(axis=0), rtol=1e-5)
    # population covariances (bias=True): the N of the style and the M of the content differ
    np.testing.assert_allclose(
        np.cov(matched, rowvar=False, bias=True), np.cov(content, rowvar=False, bias=True), rtol=1e-5, atol=1e-12
    )


def test_colour_matching_public_result_statistics_shape_dtype_and_range():
    style = _mid_range(8, (1, 30, 40, 3), spread=0.6)
    style[..., 2] = 0.3 + 0.4 * style[..., 0] + 0.1 * style[..., 2]  # blue follows red: a correlated palette
    content = _mid_range(9, (20, 20, 3), spread=0.2)
    result = match_colour_histogram(style, content)
    assert result.shape == style.shape and result.dtype == np.float32
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


# ---------------------------------------------------------------------------- several styles


@pytest.mark.parametrize(
    ("style_images", "expected"),
    [
        ("a.jpg", [("a.jpg", 1.0)]),
        (Path("a.jpg"), [("a.jpg", 1.0)]),
        (("a.jpg", 3), [("a.jpg", 1.0)]),
        (["a.jpg", "b.jpg"], [("a.jpg", 0.5), ("b.jpg", 0.5)]),
        ([("a.jpg", 3), ("b.jpg", 1.0)], [("a.jpg", 0.75), ("b.jpg", 0.25)]),
        ([("a.jpg", 1), "b.jpg", ("c.jpg", 0)], [("a.jpg", 0.5), ("b.jpg", 0.5), ("c.jpg", 0.0)]),
        (
            [("a.jpg", np.float32(2.0)), ("b.jpg", 1e308), ("c.jpg", 1e308)],
            [("a.jpg", 0.0), ("b.jpg", 0.5), ("c.jpg", 0.5)],
        ),
    ],
)
def test_style_weights_are_normalised(style_images, expected):
    result = normalise_style_weights(style_images)
    assert [path for path, _ in result] == [path for path, _ in expected]
    np.testing.assert_allclose([weight for _, weight in result], [weight for _, weight in expected], atol=1e-12)
    assert math.isclose(math.fsum(weight for _, weight in result), 1.0)
    assert all(isinstance(path, str) and isinstance(weight, float) for path, weight in result)


@pytest.mark.parametrize(
    ("style_images", "phrase"),
    [
        ([], "pass a style image path"),
        ([("a.jpg", -1.0)], "style weight -1.0 for a.jpg"),
        ([("a.jpg", math.nan)], "style weight nan"),
        ([("a.jpg", math.inf), "b.jpg"], "style weight inf"),
        ([("a.jpg", 0), ("b.jpg", 0.0)], "all style weights are 0"),
        (["a.jpg", 0.5], "neither a path nor a"),
        ([("a.jpg", "0.5")], "neither a path nor a"),
        ([("a.jpg", True)], "neither a path nor a"),
        (42, "pass a style image path"),
    ],
)
def test_style_weights_errors_name_the_value_and_the_fix(style_images, phrase):
    with pytest.raises(ValueError, match=phrase) as error:
        normalise_style_weights(style_images)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------------------- initialisation


@pytest.fixture
def content() -> np.ndarray:
    return np.random.default_rng(13).random((24, 32, 3), dtype=np.float32)


@pytest.fixture
def style() -> np.ndarray:
    return np.random.default_rng(14).random((40, 30, 3), dtype=np.float32)


@pytest.mark.parametrize("kind", nst_utils.INITIAL_IMAGE_KINDS)
def test_initial_image_shape_range_dtype_and_determinism(kind, content, style):
    first = initial_image(kind, content, style, seed=3)
    assert first.shape == content.shape and first.dtype == np.float32
    assert first.min() >= 0.0 and first.max() <= 1.0
    np.testing.assert_array_equal(first, initial_image(kind, content, style, seed=3))
    batched = initial_image(kind, content[np.newaxis], style[np.newaxis], seed=3)
    np.testing.assert_array_equal(batched, first[np.newaxis])


def test_initial_image_kinds_are_what_they_say(content, style):
    np.testing.assert_array_equal(initial_image("content", content), content)
    noisy = initial_image("noisy_content", content, noise_ratio=0.3, seed=5)
    np.testing.assert_array_equal(noisy, nst_utils.generate_noise_image(content, 0.3, seed=5))
    np.testing.assert_array_equal(
        initial_image("noise", content, seed=5), nst_utils.generate_noise_image(content, 1.0, 5)
    )
    assert not np.array_equal(initial_image("noise", content, seed=5), initial_image("noise", content, seed=6))
    from_style = initial_image("style", content, style)
    assert from_style.shape == content.shape
    expected = np.asarray(Image.fromarray(np.ascontiguousarray(style[:, :, 1])).resize((32, 24), Image.LANCZOS))
    np.testing.assert_allclose(from_style[:, :, 1], np.clip(expected, 0, 1), atol=1e-6)


def test_initial_image_errors(content):
    with pytest.raises(ValueError, match="'paint' is unknown; choose one of: noisy_content, content, style, noise"):
        initial_image("paint", content)
    with pytest.raises(ValueError, match="needs the style image"):
        initial_image("style", content)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) or \(1, H, W, 3\).*\(2, 24, 32, 3\)"):
        initial_image("content", np.zeros((2, 24, 32, 3)))


# ---------------------------------------------------------------------------- style scale


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
        (0, 1.0, "max_side must be a whole number of pixels"),
    ],
)
def test_style_max_side_errors(max_side_px, style_scale, phrase):
    with pytest.raises(ValueError, match=phrase):
        style_max_side(max_side_px, style_scale)


# ---------------------------------------------------------------------------- evolution strip


def _fake_run(run_dir: Path, iterations: list[int], final: bool = True, size_hw=(48, 64)) -> Path:
    """A run folder like StyleTransferRun's: one distinct flat-ish colour per snapshot, then final.png."""
    rng = np.random.default_rng(15)
    for iteration in iterations:
        save_image(run_dir / f"iter_{iteration:04d}.png", rng.random((*size_hw, 3)) * 0.5 + 0.25)
    if final:
        save_image(run_dir / "final.png", np.full((*size_hw, 3), 0.9))
    (run_dir / "metrics.csv").write_text("iteration,total\n")
    return run_dir


def _gif_frames(path: Path) -> tuple[int, list[int], int]:
    """(frame count, frame durations in ms, loop count) of an animated GIF."""
    with Image.open(path) as gif:
        durations = []
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
        return gif.n_frames, durations, gif.info.get("loop")


def test_evolution_strip_from_five_snapshots_and_final(tmp_path):
    run_dir = _fake_run(tmp_path / "run", [100, 200, 300, 400, 500])
    png_path, gif_path = write_evolution_strip(run_dir, thumb_side_px=64)
    assert (png_path, gif_path) == (run_dir / "evolution.png", run_dir / "evolution.gif")
    n_frames, durations, loop = _gif_frames(gif_path)
    assert n_frames == 6 and loop == 0
    assert durations[:-1] == [nst_utils.EVOLUTION_FRAME_MS] * 5 and durations[-1] > nst_utils.EVOLUTION_FRAME_MS
    with Image.open(png_path) as sheet:
        sheet_rgb = np.asarray(sheet.convert("RGB"))
    with Image.open(gif_path) as gif:
        cell_w, cell_h = gif.size
    assert cell_w == 64 and cell_h > 48, "a 64x48 thumbnail above a label band"
    gap = 4
    assert sheet_rgb.shape == (gap + cell_h + gap, gap + 6 * (cell_w + gap), 3), "six cells in one row"
    label_band = sheet_rgb[gap + 48 : gap + cell_h, gap : gap + cell_w]
    assert label_band.min() < 128 and label_band.max() == 255, "dark label text on white"
    for column in range(6):  # every cell: its thumbnail, then a label
        left = gap + column * (cell_w + gap)
        assert sheet_rgb[gap + 48 : gap + cell_h, left : left + cell_w].min() < 128
    final_thumb = sheet_rgb[gap : gap + 48, gap + 5 * (cell_w + gap) : gap + 5 * (cell_w + gap) + cell_w]
    np.testing.assert_allclose(final_thumb, round(0.9 * 255), atol=1)  # final.png comes last
    names = sorted(p.name for p in run_dir.iterdir())  # nothing else: no temporary files left behind
    snapshots = [f"iter_0{n}00.png" for n in range(1, 6)]
    assert names == sorted(["evolution.gif", "evolution.png", "final.png", "metrics.csv", *snapshots])


def test_evolution_strip_chooses_evenly_keeping_first_and_final(tmp_path, monkeypatch):
    iterations = list(range(10, 210, 10))  # 20 snapshots + final = 21 frames
    run_dir = _fake_run(tmp_path, iterations, size_hw=(32, 32))
    seen = []
    real_cells = nst_utils._evolution_cells
    monkeypatch.setattr(
        nst_utils, "_evolution_cells", lambda frames, side: seen.extend(frames) or real_cells(frames, side)
    )
    png_path, gif_path = write_evolution_strip(run_dir, max_frames=5, thumb_side_px=32)
    assert [label for label, _ in seen] == ["iter 10", "iter 60", "iter 110", "iter 160", "final"]
    assert _gif_frames(gif_path)[0] == 5
    with Image.open(png_path) as sheet:
        assert sheet.width == 4 + 5 * (32 + 4)


def test_evolution_strip_wraps_into_rows_and_numbers_sort_numerically(tmp_path, monkeypatch):
    run_dir = _fake_run(tmp_path, [5, 50, 500, 5000, 10000, 9, 90], final=False, size_hw=(32, 32))
    seen = []
    real_cells = nst_utils._evolution_cells
    monkeypatch.setattr(
        nst_utils, "_evolution_cells", lambda frames, side: seen.extend(frames) or real_cells(frames, side)
    )
    png_path, _ = write_evolution_strip(run_dir, thumb_side_px=32)
    assert [label for label, _ in seen] == [f"iter {n}" for n in (5, 9, 50, 90, 500, 5000, 10000)]
    with Image.open(png_path) as sheet:
        assert sheet.width == 4 + nst_utils.EVOLUTION_COLUMNS * (32 + 4)
        assert sheet.height > 2 * 32, "seven cells make two rows"


def test_evolution_strip_shows_a_last_snapshot_equal_to_final_once(tmp_path):
    run_dir = _fake_run(tmp_path, [100, 200], final=False)
    (run_dir / "final.png").write_bytes((run_dir / "iter_0200.png").read_bytes())
    _, gif_path = write_evolution_strip(run_dir, thumb_side_px=32)
    assert _gif_frames(gif_path)[0] == 2


def test_evolution_strip_replaces_earlier_strips_atomically(tmp_path):
    run_dir = _fake_run(tmp_path, [1])
    write_evolution_strip(run_dir, thumb_side_px=32)
    save_image(run_dir / "iter_0002.png", np.zeros((48, 64, 3)))
    _, gif_path = write_evolution_strip(run_dir, thumb_side_px=32)
    assert _gif_frames(gif_path)[0] == 3
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == ["evolution.gif", "evolution.png", "final.png", "iter_0001.png", "iter_0002.png", "metrics.csv"]


def test_evolution_strip_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=f"{tmp_path} holds no snapshots"):
        write_evolution_strip(tmp_path)
    with pytest.raises(ValueError, match="max_frames"):
        write_evolution_strip(tmp_path, max_frames=1)
    with pytest.raises(ValueError, match="thumb_side_px"):
        write_evolution_strip(tmp_path, thumb_side_px=0)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
