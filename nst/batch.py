"""`stylise` on one image, a folder or a glob, and sweeps of settings; in-process or on a Dask cluster.

One image alone is one run, as before. Many images, or a sweep, make a batch folder:

    batch-<content>+<style>-<settings hash>/     (or --batch-dir)
        batch.json                   the command: content, style, settings, sweeps (a resume must match it)
        batch.csv                    one row a run: image, swept values, status, final cost, seconds, folder, error
        <image>/                     no sweep: the run folders made for this image
        <image>/<name=value,…>/      a sweep: the run folders made for this grid point; grid.png beside them

A run is finished when its run folder holds final.png and finished.json; the same command again skips those and
retries the rest. This module is the command: its options and what it checks before anything runs. The plan and
its resume are nst.batch_plan's, running the runs nst.batch_run's, the report nst.batch_report's. No TensorFlow
here (each run is the notebook executed headless, nst.headless); Dask is imported only with --scheduler (nst.cluster).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nst.batch_plan import (
    batch_description,
    check_runs,
    default_batch_dir,
    expand_content,
    is_glob,
    open_batch_dir,
    plan_runs,
)
from nst.batch_run import run_batch
from nst.errors import SettingsError
from nst.grid import check_sweeps, parse_sweep
from nst.settings import parse_setting

SCHEDULER_ENV = "NST_DASK_SCHEDULER"  # the default of --scheduler

EPILOG = f"""\
many images:
  --content may be a folder (its .jpg, .png, … images) or a glob (quote it: --content 'photos/*.jpg').
  Each image is one run in its own run folder, all under one batch folder: --batch-dir, or by default
  OUTPUT_ROOT/batch-<content>+<style>-<hash of the settings>, so the same command finds it again.
  Run the same command again to resume: finished runs (final.png and finished.json in their folder) are skipped,
  failed ones are run again in a new run folder beside the old one. At the end a table of every run is printed
  and written as batch.csv (image, swept values, status, final cost, seconds, folder, error). A run's own
  progress lines go to stdout.log in its run folder; one progress bar counts the runs.
sweeps:
  --sweep alpha=1,10,100 --sweep beta=10,100 runs every combination on each image (at most two settings: the rows
  and columns of grid.png, written per image beside its runs). Any setting of -p can be swept; every combination
  is checked before anything runs.
a Dask cluster:
  --scheduler tcp://HOST:8786 (default: ${SCHEDULER_ENV}) sends each run to the cluster as a task; start workers
  with one thread each (dask worker tcp://HOST:8786 --nthreads 1) on machines that have this repository
  installed with its extra: pip install -e '.[cluster]'. Without shared storage the run folders are copied back.
  A run whose worker is lost is started again on another worker, or, after several losses, reported as failed.
exit status:
  0 when every run finished; 1 when a run failed (each failure is printed at the end, one line each) or the command
  itself was refused; 130 after Ctrl-C (the runs so far are in batch.csv).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The stylise command's options beyond --content, --style, -p and --output-root."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="NAME=V1,V2,…",
        help="run every value of a setting (twice: every combination) and compare them in grid.png; see below",
    )
    parser.add_argument(
        "--batch-dir", type=Path, help="the batch folder (default: under --output-root, named after the command)"
    )
    parser.add_argument(
        "--scheduler",
        default=os.environ.get(SCHEDULER_ENV) or None,
        metavar="ADDRESS",
        help=f"run on this Dask scheduler, e.g. tcp://HOST:8786 (default: ${SCHEDULER_ENV}, else in this process)",
    )


def stylise_command(args: argparse.Namespace) -> int:
    """`stylise [--content PATH|DIR|GLOB] [--style PATH] [-p NAME VALUE]... [--sweep NAME=V1,V2]...`."""
    parameters = {name: parse_setting(name, value) for name, value in args.parameter}
    content = str(args.content)
    is_single_image = not (Path(content).expanduser().is_dir() or is_glob(content))
    if is_single_image and not (args.sweep or args.batch_dir or args.scheduler):
        return _single_run(content, args.style, parameters, args.output_root)
    from nst.headless import SET_BY_THE_COMMAND

    sweeps = [parse_sweep(text) for text in args.sweep]
    check_sweeps(sweeps, list(parameters), SET_BY_THE_COMMAND)
    taken = sorted(set(parameters) & set(SET_BY_THE_COMMAND))
    if taken:
        raise SettingsError(f"{', '.join(taken)}: set by the command itself; use --content, --style and --output-root")
    images = expand_content(content)
    style_path = Path(args.style).expanduser().absolute()
    specs = plan_runs(images, style_path, parameters, sweeps)
    check_runs(specs, check_content=is_single_image)
    description = batch_description(content, style_path, parameters, sweeps)
    batch_dir = Path(args.batch_dir or default_batch_dir(args.output_root, content, style_path, description))
    batch_dir = batch_dir.expanduser().absolute()
    if not args.scheduler:
        open_batch_dir(batch_dir, description)
        return run_batch(specs, batch_dir, sweeps)
    from nst.cluster import connect, run_on_cluster

    with connect(args.scheduler) as client:  # before any folder is made: an unreachable scheduler is one line
        batch_id = open_batch_dir(batch_dir, description)

        def runner(pending, record):
            run_on_cluster(client, pending, batch_dir, batch_id, record)

        return run_batch(specs, batch_dir, sweeps, runner, f"on the Dask cluster at {client.scheduler.address}")


def _single_run(content: str, style, parameters: dict, output_root) -> int:
    """One image, no sweep: one run folder under output_root, as `make run` has always done."""
    from nst.headless import stylise

    run_dir = stylise(content, style, parameters, output_root=output_root)
    print(f"Done. Final image: {run_dir / 'final.png'}")
    print(f"      Executed notebook: {run_dir / 'notebook.ipynb'}; snapshots and metrics.csv are beside it.")
    return 0
