"""The run folder: a new folder per run holding metrics.csv, snapshots, latest.png, params.json and final.png."""

from __future__ import annotations

import csv
import datetime
import errno
import json
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from nst.errors import NSTError
from nst.evolution import write_evolution_strip
from nst.images import save_image, write_atomically
from nst.paths import OUTPUT_DIR
from nst.run import LOSS_NAMES, RunListener

CHECKPOINT_NAME = "latest.png"  # the newest good image while a run is going; removed once final.png is written
CHECKPOINT_EVERY_S = 10.0  # seconds between checkpoints: a killed run loses at most this much work
# one row per iteration; height_px and width_px: the size it ran at (coarse to fine runs several)
METRICS_FIELDS = ("iteration", *LOSS_NAMES, "alpha", "beta", "seconds", "height_px", "width_px")


def make_run_dir(output_root: str | os.PathLike = OUTPUT_DIR, label: str = "run") -> Path:
    """Create and return a new, empty folder `output_root/YYYYmmdd-HHMMSS-label[-N]`; never reuses an existing one."""
    output_root = Path(output_root)
    check_writable_dir(output_root)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe_label = "".join(c if c.isalnum() or c in "-_" else "-" for c in label).strip("-") or "run"
    for n in range(1, 10_000):
        run_dir = output_root / (f"{stamp}-{safe_label}" + (f"-{n}" if n > 1 else ""))
        try:
            run_dir.mkdir(parents=False)  # atomic: two runs started in the same second get different folders
            return run_dir
        except FileExistsError:
            continue
    raise NSTError(f"{output_root}: could not create a new run folder; clean out old runs")


def check_writable_dir(directory: str | os.PathLike) -> None:
    """Create `directory` if needed and prove that a file can be written there, before any long run starts."""
    directory = Path(directory)
    for parent in (directory, *directory.parents):
        if parent.is_symlink() and not parent.exists():
            raise NSTError(f"{directory}: cannot be an output folder, {_broken_link(parent)}")
        if parent.exists() and not parent.is_dir():
            raise NSTError(f"{directory}: cannot be an output folder, {parent} is a file; pass another output folder")
        if parent.is_dir():
            break
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        raise NSTError(
            f"{directory}: output folder is not writable ({err.strerror or err}); "
            "fix its permissions or pass another output folder"
        ) from None


def _broken_link(link: Path) -> str:
    """What is wrong with a symbolic link that leads to no folder, and the fix."""
    target = Path(os.readlink(link))
    try:
        link.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            return f"{link} is a symbolic link loop (it points back to itself); fix or remove the link"
    missing = target if target.is_absolute() else link.parent / target
    return (
        f"{link} is a symbolic link to {target}, which does not exist; create {os.path.normpath(missing)} "
        "(or mount its disk), or pass another output folder"
    )


class MetricsLog:
    """Appends one CSV row per iteration to `path` and flushes it, so an interrupted run keeps its metrics."""

    def __init__(self, path: str | os.PathLike, fieldnames: tuple[str, ...]):
        self.path = Path(path)
        self.fieldnames = fieldnames
        self._file = open(self.path, "w", newline="")  # noqa: SIM115 (kept open for the whole run, closed by close())
        self._writer = csv.DictWriter(self._file, fieldnames=fieldnames)
        self._writer.writeheader()
        self._file.flush()

    def append(self, row: Mapping) -> None:
        """Write one row and flush it to disk."""
        self._writer.writerow({k: row[k] for k in self.fieldnames})
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


class RunFolder(RunListener):
    """Writes a run's folder: params.json at the start, a metrics.csv row per iteration, iter_NNNN.png every
    `save_every` iterations, latest.png every CHECKPOINT_EVERY_S seconds (it survives a killed kernel), and at the
    end final.png and the evolution strip. Every image is written atomically: complete or absent."""

    def __init__(self, run_dir: str | os.PathLike, *, save_every: int = 100, params: Mapping | None = None):
        if int(save_every) < 1:
            raise ValueError(f"save_every={save_every}: must be 1 or more (iterations between snapshots)")
        self.run_dir = Path(run_dir)
        self.save_every = int(save_every)
        self.params = dict(params or {})  # written to params.json, so every run says how it was made
        self.saved_paths: list[Path] = []
        self._metrics: MetricsLog | None = None
        self._next_checkpoint_s = 0.0

    def prepare(self, run) -> None:
        """Before the thread starts: the folder must be writable."""
        check_writable_dir(self.run_dir)

    def on_start(self, run, image_rgb01) -> None:
        if self.params:
            text = json.dumps(self.params, indent=2, default=str) + "\n"
            write_atomically(self.run_dir / "params.json", lambda file: file.write(text.encode()))
        self._metrics = MetricsLog(self.run_dir / "metrics.csv", METRICS_FIELDS)
        for row in run.history:  # rows handed over by a trial come first
            self._metrics.append(row)
        self._next_checkpoint_s = time.perf_counter()  # the first iteration is checkpointed at once

    def on_iteration(self, run, row, image_rgb01) -> None:
        self._metrics.append(row)
        if row["iteration"] % self.save_every == 0:
            self._save(f"iter_{row['iteration']:04d}.png", image_rgb01)
        if time.perf_counter() >= self._next_checkpoint_s:
            save_image(self.run_dir / CHECKPOINT_NAME, image_rgb01)
            self._next_checkpoint_s = time.perf_counter() + CHECKPOINT_EVERY_S

    def on_end(self, run, image_rgb01) -> None:
        if self._metrics is not None:
            self._metrics.close()
        try:
            self._save("final.png", image_rgb01)
            run.message += f"; final image: {self.run_dir / 'final.png'}"
            (self.run_dir / CHECKPOINT_NAME).unlink(missing_ok=True)  # final.png supersedes it
            write_evolution_strip(self.run_dir)  # evolution.png and evolution.gif of the snapshots
        except OSError as err:  # e.g. the disk is full: earlier snapshots are intact, say where they are
            last = self.saved_paths[-1] if self.saved_paths else "none"
            run.report_problem(err, f"could not save final.png ({err.strerror or err}); last snapshot: {last}")

    def _save(self, name: str, image_rgb01) -> None:
        """Write one snapshot atomically and remember its path."""
        path = save_image(self.run_dir / name, image_rgb01)
        if path not in self.saved_paths:
            self.saved_paths.append(path)
