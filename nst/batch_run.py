"""Running a batch: each pending run in turn here (or through a runner, such as nst.cluster's), its one-line
failure kept, then batch.csv, the grids, the summary and one stderr line per failure. No TensorFlow, no Dask here.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import itertools
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from nst.batch_plan import FINISHED_NAME, RunResult, RunSpec, finished_run, run_dirs, skipped_result
from nst.batch_report import print_summary, write_batch_csv, write_grids
from nst.errors import NSTError, one_line
from nst.grid import Sweep
from nst.images import write_atomically

RUN_LOG_NAME = "stdout.log"  # a batch run's own progress lines, kept out of the batch's terminal
# A runner sends the pending runs elsewhere (e.g. to a Dask cluster) and records each RunResult as it comes back.
Runner = Callable[[Sequence[RunSpec], Callable[[RunResult], None]], None]


def run_one(spec: RunSpec, slot_dir: Path) -> RunResult:
    """Run `spec` headless into a new run folder in `slot_dir`; its progress lines go to stdout.log in that folder.

    A failure is a RunResult with its one-line error (the run folder, if one was made, is kept for its notebook
    and kernel.log; a run refused before it started leaves no folder behind); Ctrl-C (nst.headless.Interrupted,
    KeyboardInterrupt) is raised."""
    from nst.headless import Interrupted, stylise

    made_dirs = _missing_dirs(slot_dir)
    slot_dir.mkdir(parents=True, exist_ok=True)
    before = set(run_dirs(slot_dir))
    log_path = slot_dir / f".{RUN_LOG_NAME}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    start_s = time.perf_counter()
    error = None
    try:
        with open(log_path, "w") as log, contextlib.redirect_stdout(log):
            stylise(spec.content_path, spec.style_path, spec.parameters, output_root=slot_dir)
    except (Interrupted, KeyboardInterrupt):
        run_dir = _new_run_dir(slot_dir, before)
        _keep_log(log_path, run_dir)
        if run_dir is None:
            _remove_if_empty(made_dirs)
        raise
    except NSTError as err:
        error = one_line(err)
    except Exception as err:  # a bug or an unforeseen failure in one run must not stop the others
        error = f"{type(err).__name__}: {one_line(err)}"
    seconds = time.perf_counter() - start_s
    run_dir = _new_run_dir(slot_dir, before)
    _keep_log(log_path, run_dir)
    if run_dir is None:  # refused before it started (e.g. an unreadable image): no empty folder for it
        _remove_if_empty(made_dirs)
    final_cost = _final_cost(run_dir) if run_dir else None
    if error is not None:
        return RunResult(spec, "failed", run_dir, final_cost, seconds, error)
    if run_dir is None or not (run_dir / "final.png").is_file():
        return RunResult(spec, "failed", run_dir, final_cost, seconds, "the run ended without writing final.png")
    record = {
        "content_path": spec.content_path,
        "style_path": spec.style_path,
        "parameters": spec.parameters,
        "final_cost": final_cost,
        "seconds": seconds,
        "finished": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    text = json.dumps(record, indent=2, default=str) + "\n"
    write_atomically(run_dir / FINISHED_NAME, lambda file: file.write(text.encode()))
    return RunResult(spec, "done", run_dir, final_cost, seconds)


def _missing_dirs(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, deepest first."""
    return list(itertools.takewhile(lambda path: not path.exists(), (folder, *folder.parents)))


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove each folder, deepest first, while it is empty (another run may have put something there)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _new_run_dir(slot_dir: Path, before: set[Path]) -> Path | None:
    made = sorted(set(run_dirs(slot_dir)) - before, key=lambda p: p.name)
    return made[-1] if made else None


def _keep_log(log_path: Path, run_dir: Path | None) -> None:
    """The run's stdout log into its run folder; without a run folder (refused before it started), deleted."""
    with contextlib.suppress(OSError):
        if run_dir is not None:
            log_path.replace(run_dir / RUN_LOG_NAME)
        else:
            log_path.unlink()


def _final_cost(run_dir: Path) -> float | None:
    """The `total` of metrics.csv's last row, or None when it has no rows."""
    try:
        rows = list(csv.DictReader((run_dir / "metrics.csv").open(newline="")))
        return float(rows[-1]["total"]) if rows else None
    except (OSError, KeyError, ValueError):
        return None


def run_batch(
    specs: Sequence[RunSpec],
    batch_dir: Path,
    sweeps: Sequence[Sweep],
    runner: Runner | None = None,
    where: str = "here, one at a time",
) -> int:
    """Run what is not finished yet (in this process, or through `runner`, which runs them `where`); then the
    table, the grids and the errors. Returns the exit status: 0 when every run finished, 1 when some failed."""
    from tqdm import tqdm

    results: dict[str, RunResult] = {spec.key: RunResult(spec, "not run") for spec in specs}
    pending = []
    for spec in specs:
        done_dir = finished_run(batch_dir / spec.key)
        if done_dir is not None:
            results[spec.key] = skipped_result(spec, done_dir)
        else:
            pending.append(spec)
    print(f"Batch folder: {batch_dir}")
    runs = f"{len(specs)} run" + ("s" if len(specs) != 1 else "")
    print(f"{runs}: {len(specs) - len(pending)} finished before, {len(pending)} to run {where}", flush=True)
    bar = tqdm(total=len(specs), initial=len(specs) - len(pending), unit="run", desc="batch", file=sys.stderr)

    def record(result: RunResult) -> None:
        results[result.spec.key] = result
        bar.set_postfix_str(f"{result.spec.label}: {result.status}", refresh=False)
        bar.update(1)
        write_batch_csv(batch_dir, list(results.values()), sweeps)

    try:
        if runner is not None:
            runner(pending, record)
        else:
            _run_here(pending, batch_dir, record, bar)
    finally:
        bar.close()
        everything = list(results.values())
        write_batch_csv(batch_dir, everything, sweeps)
        grids = write_grids(batch_dir, everything, sweeps) if sweeps else []
        print_summary(batch_dir, everything, sweeps, grids)
    failed = [result for result in everything if result.status == "failed"]
    for result in failed:
        print(f"error: {result.spec.label}: {result.error}", file=sys.stderr)
    if failed:
        print(
            f"error: {len(failed)} of {len(everything)} runs failed (above); run the same command again to retry "
            "them, finished runs are kept",
            file=sys.stderr,
        )
    return 1 if failed else 0


def _run_here(pending: Sequence[RunSpec], batch_dir: Path, record: Callable[[RunResult], None], bar) -> None:
    """One run after the other in this process: each one already uses every core."""
    from nst.headless import Interrupted

    for spec in pending:
        bar.set_postfix_str(f"running {spec.label}")
        try:
            result = run_one(spec, batch_dir / spec.key)
        except (Interrupted, KeyboardInterrupt):
            record(RunResult(spec, "interrupted", finished_run(batch_dir / spec.key) or _last_run_dir(batch_dir, spec)))
            raise
        record(result)


def _last_run_dir(batch_dir: Path, spec: RunSpec) -> Path | None:
    made = run_dirs(batch_dir / spec.key)
    return made[-1] if made else None
