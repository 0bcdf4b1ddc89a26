"""The evolution strip: a run's snapshots as a labelled contact sheet (evolution.png) and an animation (.gif)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nst.images import fit_to_max_side, load_image, resize_image, rgb01_to_uint8, save_image, write_atomically

EVOLUTION_FRAME_MS = 400  # how long each frame of evolution.gif shows
EVOLUTION_LAST_FRAME_MS = 2000  # the final image is held longer before the loop restarts
EVOLUTION_COLUMNS = 6  # thumbnails per row of evolution.png
SNAPSHOT_NAME = re.compile(r"iter_(\d+)\.png")  # what the run folder writes every save_every iterations


def write_evolution_strip(
    run_dir: str | os.PathLike[str], max_frames: int = 12, thumb_side_px: int = 200
) -> tuple[Path, Path]:
    """Write run_dir/evolution.png (labelled thumbnails) and evolution.gif (the same, animated), atomically.

    Frames: the snapshots iter_NNNN.png in iteration order, then final.png; when there are more than `max_frames`,
    an evenly spaced choice that keeps the first and the final. A last snapshot identical to final.png is shown
    once, as "final (iter N)". Thumbnails have their longer side `thumb_side_px` px. Returns (png_path, gif_path).
    """
    run_dir = Path(run_dir)
    if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 2:
        raise ValueError(
            f"max_frames must be a whole number of at least 2 (the first and the final), got {max_frames!r}"
        )
    if isinstance(thumb_side_px, bool) or not isinstance(thumb_side_px, (int, np.integer)) or thumb_side_px < 16:
        raise ValueError(f"thumb_side_px must be a whole number of pixels, at least 16, got {thumb_side_px!r}")
    frames = _evolution_frames(run_dir)
    if not frames:
        raise ValueError(
            f"{run_dir} holds no snapshots (iter_NNNN.png or final.png) to make an evolution strip from; "
            "pass the run folder of a StyleTransferRun that has saved at least one image"
        )
    if len(frames) > max_frames:  # spacing above 1, so the rounded indices are distinct
        frames = [frames[math.floor(i * (len(frames) - 1) / (max_frames - 1) + 0.5)] for i in range(max_frames)]
    cells = _evolution_cells(frames, int(thumb_side_px))
    sheet_path = save_image(run_dir / "evolution.png", np.asarray(_contact_sheet(cells), dtype=np.float32) / 255)
    durations_ms = [EVOLUTION_FRAME_MS] * (len(cells) - 1) + [EVOLUTION_LAST_FRAME_MS]
    gif_path = write_atomically(
        run_dir / "evolution.gif",
        lambda file: cells[0].save(
            file, format="GIF", save_all=True, append_images=cells[1:], duration=durations_ms, loop=0
        ),
    )
    return sheet_path, gif_path


def _evolution_frames(run_dir: Path) -> list[tuple[str, Path]]:
    """(label, path) of every snapshot in run_dir, in iteration order, final.png last."""
    snapshots = sorted(
        (int(match[1]), path)
        for path in run_dir.glob("iter_*.png")
        if (match := SNAPSHOT_NAME.fullmatch(path.name)) and path.is_file()
    )
    frames = [(f"iter {iteration}", path) for iteration, path in snapshots]
    final_path = run_dir / "final.png"
    if final_path.is_file():
        if snapshots and snapshots[-1][1].read_bytes() == final_path.read_bytes():  # both written by save_image
            frames[-1] = (f"final (iter {snapshots[-1][0]})", final_path)
        else:
            frames.append(("final", final_path))
    return frames


def _evolution_cells(frames: list[tuple[str, Path]], thumb_side_px: int) -> list[Image.Image]:
    """One RGB image per frame, all the same size: the thumbnail centred above its label (with its size in pixels
    when it is not the final image's)."""
    thumbnails, sizes_px = [], []
    for _, path in frames:
        pixels = load_image(path, max_side_px=None)
        sizes_px.append(pixels.shape[:2])
        thumbnail = resize_image(pixels, *fit_to_max_side(*pixels.shape[:2], thumb_side_px))
        thumbnails.append(Image.fromarray(rgb01_to_uint8(thumbnail)))
    # coarse to fine: a snapshot smaller than the result says its size
    frames = [
        (label if size == sizes_px[-1] else f"{label}, {size[1]}x{size[0]} px", path)  # the font lacks ×
        for (label, path), size in zip(frames, sizes_px, strict=True)
    ]
    font = ImageFont.load_default(size=max(10, thumb_side_px // 12))
    label_band_px = font.size + 8 if hasattr(font, "size") else 20
    width_px = max(thumbnail.width for thumbnail in thumbnails)
    height_px = max(thumbnail.height for thumbnail in thumbnails)
    cells = []
    for (label, _), thumbnail in zip(frames, thumbnails, strict=True):
        cell = Image.new("RGB", (width_px, height_px + label_band_px), "white")
        cell.paste(thumbnail, ((width_px - thumbnail.width) // 2, (height_px - thumbnail.height) // 2))
        draw = ImageDraw.Draw(cell)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        position = ((width_px - (right - left)) / 2 - left, height_px + (label_band_px - (bottom - top)) / 2 - top)
        draw.text(position, label, fill="black", font=font)
        cells.append(cell)
    return cells


def _contact_sheet(cells: list[Image.Image], gap_px: int = 4) -> Image.Image:
    """The cells in rows of up to EVOLUTION_COLUMNS, `gap_px` of white between and around them."""
    columns = min(len(cells), EVOLUTION_COLUMNS)
    rows = -(-len(cells) // columns)
    cell_width_px, cell_height_px = cells[0].size
    sheet = Image.new(
        "RGB", (gap_px + columns * (cell_width_px + gap_px), gap_px + rows * (cell_height_px + gap_px)), "white"
    )
    for index, cell in enumerate(cells):
        row, column = divmod(index, columns)
        sheet.paste(cell, (gap_px + column * (cell_width_px + gap_px), gap_px + row * (cell_height_px + gap_px)))
    return sheet
