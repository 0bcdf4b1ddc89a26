"""nst.evolution: the evolution strip of a run's snapshots, a contact sheet (evolution.png) and an animation (.gif).

The strip reads a fake run folder written here with save_image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nst.evolution
from nst.evolution import (
    EVOLUTION_COLUMNS,
    EVOLUTION_FRAME_MS,
    EVOLUTION_LAST_FRAME_MS,
    SNAPSHOT_NAME,
    write_evolution_strip,
)
from nst.images import save_image

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
    assert durations[:-1] == [EVOLUTION_FRAME_MS] * 5 and durations[-1] > EVOLUTION_FRAME_MS
    assert durations[-1] == EVOLUTION_LAST_FRAME_MS
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
    real_cells = nst.evolution._evolution_cells
    monkeypatch.setattr(
        nst.evolution, "_evolution_cells", lambda frames, side: seen.extend(frames) or real_cells(frames, side)
    )
    png_path, gif_path = write_evolution_strip(run_dir, max_frames=5, thumb_side_px=32)
    assert [label for label, _ in seen] == ["iter 10", "iter 60", "iter 110", "iter 160", "final"]
    assert _gif_frames(gif_path)[0] == 5
    with Image.open(png_path) as sheet:
        assert sheet.width == 4 + 5 * (32 + 4)


def test_evolution_strip_wraps_into_rows_and_numbers_sort_numerically(tmp_path, monkeypatch):
    run_dir = _fake_run(tmp_path, [5, 50, 500, 5000, 10000, 9, 90], final=False, size_hw=(32, 32))
    seen = []
    real_cells = nst.evolution._evolution_cells
    monkeypatch.setattr(
        nst.evolution, "_evolution_cells", lambda frames, side: seen.extend(frames) or real_cells(frames, side)
    )
    png_path, _ = write_evolution_strip(run_dir, thumb_side_px=32)
    assert [label for label, _ in seen] == [f"iter {n}" for n in (5, 9, 50, 90, 500, 5000, 10000)]
    with Image.open(png_path) as sheet:
        assert sheet.width == 4 + EVOLUTION_COLUMNS * (32 + 4)
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


def test_evolution_strip_ignores_files_that_are_not_snapshots(tmp_path, monkeypatch):
    run_dir = _fake_run(tmp_path, [3, 1])
    save_image(run_dir / "iter_x.png", np.zeros((48, 64, 3)))  # not iter_NNNN.png
    save_image(run_dir / "iter_0002.png.bak.png", np.zeros((48, 64, 3)))
    (run_dir / "iter_0004.png").mkdir()  # a folder with a snapshot's name
    seen = []
    real_cells = nst.evolution._evolution_cells
    monkeypatch.setattr(
        nst.evolution, "_evolution_cells", lambda frames, side: seen.extend(frames) or real_cells(frames, side)
    )
    write_evolution_strip(run_dir, thumb_side_px=32)
    assert [label for label, _ in seen] == ["iter 1", "iter 3", "final"]
    assert SNAPSHOT_NAME.fullmatch("iter_0010.png")[1] == "0010" and not SNAPSHOT_NAME.fullmatch("iter_.png")


def test_evolution_cells_are_one_size_with_the_thumbnail_on_top(tmp_path):
    save_image(tmp_path / "wide.png", np.zeros((40, 160, 3)))  # black, 4:1 (snapshots are at least 32 px)
    save_image(tmp_path / "tall.png", np.zeros((120, 60, 3)))  # black, 1:2
    frames = [("wide", tmp_path / "wide.png"), ("tall", tmp_path / "tall.png")]
    cells = nst.evolution._evolution_cells(frames, 40)
    assert len(cells) == 2 and cells[0].size == cells[1].size and cells[0].mode == "RGB"
    width_px, height_px = cells[0].size
    assert width_px == 40 and height_px > 40, "the widest thumbnail (40 px) above a label band"
    wide = np.asarray(cells[0])
    assert wide[:40, :, :].min() == 0 and (wide[:40, :, :] == 0).all(axis=2).sum() == 40 * 10  # 40x10 px black
    tall = np.asarray(cells[1])
    assert (tall[:40, :, :] == 0).all(axis=2).sum() == 20 * 40  # 20x40 px black, centred
