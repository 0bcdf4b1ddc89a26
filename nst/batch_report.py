"""A batch's report: batch.csv, the summary table printed at the end, and grid.png for each image of a sweep."""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nst.errors import one_line
from nst.grid import Sweep, write_grid
from nst.images import write_atomically

if TYPE_CHECKING:
    from nst.batch_plan import RunResult

BATCH_CSV_NAME = "batch.csv"
GRID_NAME = "grid.png"
CSV_FIELDS_BEFORE, CSV_FIELDS_AFTER = ("image",), ("status", "final_cost", "seconds", "folder", "error")


def write_batch_csv(batch_dir: Path, results: Sequence[RunResult], sweeps: Sequence[Sweep]) -> Path:
    """batch.csv, atomically: one row a run, in the command's order."""
    fields = (*CSV_FIELDS_BEFORE, *(sweep.name for sweep in sweeps), *CSV_FIELDS_AFTER)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for result in results:
        writer.writerow(_row(batch_dir, result, for_csv=True))
    return write_atomically(batch_dir / BATCH_CSV_NAME, lambda file: file.write(buffer.getvalue().encode()))


def _row(batch_dir: Path, result: RunResult, for_csv: bool) -> dict:
    cost, seconds = result.final_cost, result.seconds
    folder = os.path.relpath(result.run_dir, batch_dir) if result.run_dir else ""
    return {
        "image": result.spec.image,
        **dict(result.spec.point),
        "status": result.status,
        "final_cost": "" if cost is None else (repr(cost) if for_csv else f"{cost:.4g}"),
        "seconds": "" if seconds is None else f"{seconds:.1f}",
        "folder": folder,
        "error": result.error or "",
    }


def print_summary(batch_dir: Path, results: Sequence[RunResult], sweeps: Sequence[Sweep], grids: Sequence[Path]):
    """The table of runs (as batch.csv, without the errors: those come last, on stderr), then where things are."""
    fields = (*CSV_FIELDS_BEFORE, *(sweep.name for sweep in sweeps), *CSV_FIELDS_AFTER[:-1])
    rows = [[str(_row(batch_dir, result, for_csv=False)[field]) for field in fields] for result in results]
    headers = [field.replace("_", " ") for field in fields]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    for line in (headers, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    print(f"Table: {batch_dir / BATCH_CSV_NAME}")
    for grid_path in grids:
        print(f"Grid: {grid_path}")
    sys.stdout.flush()


def write_grids(batch_dir: Path, results: Sequence[RunResult], sweeps: Sequence[Sweep]) -> list[Path]:
    """grid.png for each image of a sweep with a finished run: rows the first swept setting, columns the second."""
    rows_sweep, columns_sweep = (sweeps[0], sweeps[1]) if len(sweeps) > 1 else (None, sweeps[0])
    by_image: dict[str, dict[tuple[str, ...], RunResult]] = {}
    for result in results:
        image_key = result.spec.key.split("/")[0]
        by_image.setdefault(image_key, {})[tuple(text for _, text in result.spec.point)] = result
    written = []
    for image_key, by_point in by_image.items():
        row_texts = rows_sweep.texts if rows_sweep else ("",)
        cells = [
            [_final_image(by_point.get(_point_key(r, c, rows_sweep))) for c in columns_sweep.texts] for r in row_texts
        ]
        if not any(any(row) for row in cells):  # no run of this image finished: nothing to compare
            continue
        spec = next(iter(by_point.values())).spec
        title = f"{spec.image} in the style of {Path(spec.style_path).name}"
        row_labels = [f"{rows_sweep.name}={text}" for text in rows_sweep.texts] if rows_sweep else []
        column_labels = [f"{columns_sweep.name}={text}" for text in columns_sweep.texts]
        try:
            written.append(write_grid(batch_dir / image_key / GRID_NAME, cells, row_labels, column_labels, title))
        except OSError as err:
            print(f"error: could not write {batch_dir / image_key / GRID_NAME} ({one_line(err)})", file=sys.stderr)
    return written


def _point_key(row_text: str, column_text: str, rows_sweep: Sweep | None) -> tuple[str, ...]:
    return (row_text, column_text) if rows_sweep else (column_text,)


def _final_image(result: RunResult | None) -> Path | None:
    if result is None or result.run_dir is None or result.status not in ("done", "skipped"):
        return None
    return result.run_dir / "final.png"
