"""Sweeps: `--sweep NAME=V1,V2,…` parsed and checked, the grid points they make, and grid.png to compare them.

grid.png is a labelled contact sheet of the runs' final images: the first swept setting down the rows, the second
across the columns (one sweep: one row). No TensorFlow here; the sheet is drawn with Pillow.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from nst.errors import SettingsError
from nst.images import write_atomically
from nst.settings import parse_setting

MAX_SWEEPS = 2  # grid.png has two axes: rows and columns
GRID_CELL_SIDE_PX = 200  # long side of each final image in grid.png (small images are scaled up to it)
GRID_GAP_PX = 6  # white between the cells
_MISSING_CELL_RGB = (225, 225, 225)  # a run that failed or has not run yet
_BRACKETS = {"(": ")", "[": "]", "{": "}"}
_SWEEP_EXAMPLE = "e.g. --sweep alpha=1,10,100 --sweep beta=10,100"


@dataclasses.dataclass(frozen=True)
class Sweep:
    """One swept setting: its name, its values as typed (for labels and folder names) and parsed into its type."""

    name: str
    texts: tuple[str, ...]
    values: tuple


def parse_sweep(text: str) -> Sweep:
    """`NAME=V1,V2,…` (commas inside brackets or quotes belong to the value); SettingsError in one line if not."""
    name, equals, values_text = text.partition("=")
    name = name.strip()
    if not equals or not name:
        raise SettingsError(f"--sweep {text!r}: expected NAME=VALUE,VALUE,…, {_SWEEP_EXAMPLE}")
    texts = tuple(value.strip() for value in split_values(values_text))
    if any(not value for value in texts):
        raise SettingsError(f"--sweep {text!r}: a value is empty; give each value once, separated by commas")
    values = tuple(parse_setting(name, value) for value in texts)  # an unknown name or a wrong type: one line
    repeated = sorted({texts[i] for i, value in enumerate(values) if value in values[:i]})
    if repeated:
        raise SettingsError(f"--sweep {text!r}: {', '.join(repeated)} comes twice; give each value once")
    return Sweep(name, texts, values)


def split_values(text: str) -> list[str]:
    """`text` split at the commas that are outside brackets and quotes: "1,(2, 3),'a,b'" → ["1", "(2, 3)", "'a,b'"]."""
    parts, current, closers, quote = [], [], [], None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in _BRACKETS:
            closers.append(_BRACKETS[char])
        elif closers and char == closers[-1]:
            closers.pop()
        elif char == "," and not closers:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def check_sweeps(sweeps: Sequence[Sweep], fixed_names: Sequence[str], set_by_the_command: Sequence[str]) -> None:
    """At most MAX_SWEEPS, each name once, none also set with -p or set by the command itself; one line if not."""
    if len(sweeps) > MAX_SWEEPS:
        names = ", ".join(sweep.name for sweep in sweeps)
        raise SettingsError(
            f"--sweep {names}: at most {MAX_SWEEPS} settings at once (the rows and columns of grid.png); "
            "run one batch per extra setting"
        )
    names = [sweep.name for sweep in sweeps]
    for name in names:
        if names.count(name) > 1:
            raise SettingsError(f"--sweep {name} is given twice; put all its values in one --sweep {name}=A,B,C")
        if name in fixed_names:
            raise SettingsError(f"{name} is both set with -p and swept with --sweep; drop one of them")
        if name in set_by_the_command:
            raise SettingsError(f"--sweep {name}: set by the command itself (--content, --style, --output-root)")


def grid_points(sweeps: Sequence[Sweep]) -> list[tuple[tuple[str, object, str], ...]]:
    """Every combination of the swept values, rows first: ((name, value, text), …) each; [()] without sweeps."""
    axes = [
        [(sweep.name, value, text) for value, text in zip(sweep.values, sweep.texts, strict=True)] for sweep in sweeps
    ]
    return list(itertools.product(*axes))


def write_grid(
    path: str | os.PathLike,
    image_paths: Sequence[Sequence[str | os.PathLike | None]],
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    title: str = "",
    cell_side_px: int = GRID_CELL_SIDE_PX,
) -> Path:
    """Write grid.png atomically: image_paths[row][column] (None: a grey "no image" cell) under their labels.

    `row_labels` go down the left (an empty list: a single unlabelled row), `column_labels` across the top, and
    `title` above them. Each image is fitted into a square of `cell_side_px`; the cells are as large as the largest
    image. Returns the path written.
    """
    font = _font(max(12, cell_side_px // 14))
    thumbnails = [[_thumbnail(image_path, cell_side_px) for image_path in paths] for paths in image_paths]
    present = [thumbnail for row in thumbnails for thumbnail in row if thumbnail is not None]
    cell_wh = (
        max((t.width for t in present), default=cell_side_px),
        max((t.height for t in present), default=cell_side_px),
    )
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_px = _text_size(probe, "Ag", font)[1] + 8
    label_width_px = max((_text_size(probe, label, font)[0] for label in row_labels), default=0)
    left_px = label_width_px + 2 * GRID_GAP_PX if row_labels else 0
    top_px = (line_px if title else 0) + line_px
    step_wh = (cell_wh[0] + GRID_GAP_PX, cell_wh[1] + GRID_GAP_PX)
    size_wh = (
        left_px + GRID_GAP_PX + len(column_labels) * step_wh[0],
        top_px + GRID_GAP_PX + len(thumbnails) * step_wh[1],
    )
    sheet = Image.new("RGB", size_wh, "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        _centred_text(draw, (0, 0, sheet.width, line_px), title, font)
    for column, label in enumerate(column_labels):
        x_px = left_px + GRID_GAP_PX + column * step_wh[0]
        _centred_text(draw, (x_px, top_px - line_px, x_px + cell_wh[0], top_px), label, font)
    for row, row_thumbnails in enumerate(thumbnails):
        y_px = top_px + GRID_GAP_PX + row * step_wh[1]
        if row_labels:
            _centred_text(draw, (0, y_px, left_px, y_px + cell_wh[1]), row_labels[row], font)
        for column, thumbnail in enumerate(row_thumbnails):
            x_px = left_px + GRID_GAP_PX + column * step_wh[0]
            if thumbnail is None:
                draw.rectangle((x_px, y_px, x_px + cell_wh[0] - 1, y_px + cell_wh[1] - 1), fill=_MISSING_CELL_RGB)
                _centred_text(draw, (x_px, y_px, x_px + cell_wh[0], y_px + cell_wh[1]), "no image", font)
            else:
                offset = ((cell_wh[0] - thumbnail.width) // 2, (cell_wh[1] - thumbnail.height) // 2)
                sheet.paste(thumbnail, (x_px + offset[0], y_px + offset[1]))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return write_atomically(Path(path), lambda file: file.write(buffer.getvalue()))


def _thumbnail(image_path, side_px: int) -> Image.Image | None:
    """The image fitted into a side_px square (scaled up or down), or None: no path, or not a readable image."""
    if image_path is None:
        return None
    try:
        with Image.open(image_path) as image:
            return ImageOps.contain(image.convert("RGB"), (side_px, side_px), Image.Resampling.LANCZOS)
    except (OSError, ValueError):
        return None


def _font(size_px: int):
    try:
        return ImageFont.load_default(size=size_px)
    except (TypeError, ValueError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _centred_text(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], text: str, font) -> None:
    """`text` in black, centred in box = (left, top, right, bottom) pixels."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x_px = (box[0] + box[2] - (right - left)) / 2 - left
    y_px = (box[1] + box[3] - (bottom - top)) / 2 - top
    draw.text((x_px, y_px), text, fill="black", font=font)
