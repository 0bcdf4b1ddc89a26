"""`stylise` on one image, a folder or a glob, and sweeps of settings; in-process or on a Dask cluster.

One image alone is one run, as before. Many images, or a sweep, make a batch folder:

    batch-<content>+<style>-<settings hash>/     (or --batch-dir)
        batch.json                   the command: content, style, settings, sweeps (a resume must match it)
        batch.csv                    one row a run: image, swept values, status, final cost, seconds, folder, error
        <image>/                     no sweep: the run folders made for this image
        <image>/<name=value,…>/      a sweep: the run folders made for this grid point; grid.png beside them

A run is finished when its run folder holds final.png and finished.json; the same command again skips those and
retries the rest. No TensorFlow here (each run is the notebook executed headless, nst.headless); Dask is imported
only with --scheduler (nst.cluster).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime
import glob
import hashlib
import itertools
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from nst.batch_report import print_summary, write_batch_csv, write_grids
from nst.errors import NSTError, SettingsError, one_line
from nst.grid import Sweep, check_sweeps, grid_points, parse_sweep
from nst.images import write_atomically
from nst.settings import Settings, parse_setting

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")  # what a folder contributes
BATCH_JSON_NAME = "batch.json"
FINISHED_NAME = "finished.json"  # written into a run folder when its run ended well: resume skips such runs
RUN_LOG_NAME = "stdout.log"  # a batch run's own progress lines, kept out of the batch's terminal
SCHEDULER_ENV = "NST_DASK_SCHEDULER"  # the default of --scheduler
_SAFE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._=,+-")
_MAX_NAME_CHARS = 60

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


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a batch: its image, its grid point, and where its run folders go (`key`, under the batch folder)."""

    key: str  # the folder of this run's run folders, relative to the batch folder: "harbour.jpg/alpha=10,beta=40"
    image: str  # the content image as batch.csv names it
    content_path: str  # absolute
    style_path: str  # absolute
    parameters: dict  # every -p setting and this point's swept values, typed (nst.settings.parse_setting)
    point: tuple[tuple[str, str], ...] = ()  # (name, value as typed) of each swept setting

    @property
    def label(self) -> str:
        """How a message names the run: `harbour.jpg` or `harbour.jpg (alpha=10, beta=40)`."""
        values = ", ".join(f"{name}={text}" for name, text in self.point)
        return f"{self.image} ({values})" if values else self.image

    def as_record(self) -> dict:
        """As JSON values (for the worker's process and for Dask)."""
        return {**dataclasses.asdict(self), "point": [list(pair) for pair in self.point]}

    @classmethod
    def from_record(cls, record: dict) -> RunSpec:
        return cls(**{**record, "point": tuple(tuple(pair) for pair in record["point"])})


@dataclasses.dataclass
class RunResult:
    """How one run of a batch ended."""

    spec: RunSpec
    status: str  # "done", "skipped" (finished by an earlier command), "failed"; after Ctrl-C "interrupted", "not run"
    run_dir: Path | None = None
    final_cost: float | None = None  # the total cost of the last iteration in metrics.csv
    seconds: float | None = None  # wall time of the run, the kernel's start included
    error: str | None = None  # one line

    def as_record(self) -> dict:
        """As JSON values; run_dir by its name only (the folder it is in can differ on a worker)."""
        return {
            "status": self.status,
            "run_dir": self.run_dir.name if self.run_dir else None,
            "final_cost": self.final_cost,
            "seconds": self.seconds,
            "error": self.error,
        }

    @classmethod
    def from_record(cls, spec: RunSpec, slot_dir: Path, record: dict) -> RunResult:
        run_dir = slot_dir / record["run_dir"] if record.get("run_dir") else None
        fields = {name: record.get(name) for name in ("final_cost", "seconds", "error")}
        return cls(spec, record["status"], run_dir, **fields)


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
    is_single_image = not (Path(content).expanduser().is_dir() or _is_glob(content))
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
        return run_batch(specs, batch_dir, sweeps, open_batch_dir(batch_dir, description))
    from nst.cluster import connect

    with connect(args.scheduler) as client:  # before any folder is made: an unreachable scheduler is one line
        return run_batch(specs, batch_dir, sweeps, open_batch_dir(batch_dir, description), client)


def _single_run(content: str, style, parameters: dict, output_root) -> int:
    """One image, no sweep: one run folder under output_root, as `make run` has always done."""
    from nst.headless import stylise

    run_dir = stylise(content, style, parameters, output_root=output_root)
    print(f"Done. Final image: {run_dir / 'final.png'}")
    print(f"      Executed notebook: {run_dir / 'notebook.ipynb'}; snapshots and metrics.csv are beside it.")
    return 0


def _is_glob(text: str) -> bool:
    return glob.has_magic(text) and not Path(text).expanduser().exists()


def expand_content(content: str) -> list[Path]:
    """The content images of a batch, absolute and sorted: a file, a folder's images, or a glob's files."""
    path = Path(content).expanduser()
    if path.is_dir():
        images = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
        images = [p for p in images if p.is_file()]
        if not images:
            raise NSTError(f"{path}: no images in this folder (looked for {', '.join(IMAGE_SUFFIXES)}); pass another")
    elif _is_glob(content):
        images = [Path(p) for p in glob.glob(os.path.expanduser(content)) if Path(p).is_file()]
        if not images:
            raise NSTError(f"--content {content}: the pattern matches no file; check it, and quote it for the shell")
    else:
        images = [path]
    return sorted((p.absolute() for p in images), key=str)


def plan_runs(images: Sequence[Path], style_path: Path, parameters: dict, sweeps: Sequence[Sweep]) -> list[RunSpec]:
    """One RunSpec per image and grid point, images first; folder names are stable for the same command."""
    names = _image_names(images)
    specs = []
    for image, name in zip(images, names, strict=True):
        for point in grid_points(sweeps):
            values = {setting: value for setting, value, _ in point}
            typed = tuple((setting, text) for setting, _, text in point)
            key = name if not point else f"{name}/{_safe_name(','.join(f'{s}={t}' for s, t in typed))}"
            specs.append(RunSpec(key, image.name, str(image), str(style_path), {**parameters, **values}, typed))
    return specs


def check_runs(specs: Sequence[RunSpec], check_content: bool) -> None:
    """Every run's Settings, the style images and masks (and, for one image, that one) checked before anything runs.

    A mask's aspect ratio is checked against each image when its run starts (nst.headless.stylise): an image of
    another shape than the masks fails alone, in one line, and the others go on."""
    from nst.images import load_image
    from nst.masks import check_mask_file

    checked = set()
    for spec in specs:
        settings = Settings(content_path=spec.content_path, style_path=spec.style_path, **spec.parameters)
        paths = [path for path, _ in settings.styles] + ([spec.content_path] if check_content else [])
        for path in paths:
            if (path, settings.max_side_px) not in checked:
                load_image(Path(path).expanduser(), max_side_px=settings.max_side_px)  # one line if unusable
                checked.add((path, settings.max_side_px))
        for path in settings.style_masks or ():
            if path is not None and (path, settings.max_side_px) not in checked:
                check_mask_file(path, settings.max_side_px)  # one line if unreadable or all black
                checked.add((path, settings.max_side_px))


def batch_description(content: str, style_path: Path, parameters: dict, sweeps: Sequence[Sweep]) -> dict:
    """What makes two commands the same batch: written as batch.json, hashed into the default folder name."""
    return {
        "content": os.path.abspath(os.path.expanduser(content)),
        "style": str(style_path),
        "parameters": json.loads(json.dumps(parameters, sort_keys=True, default=str)),
        "sweeps": [[sweep.name, list(sweep.texts)] for sweep in sweeps],
    }


def default_batch_dir(output_root, content: str, style_path: Path, description: dict) -> Path:
    """OUTPUT_ROOT/batch-<content>+<style>-<8 hex digits of the settings>: the same command, the same folder."""
    digest = hashlib.sha1(json.dumps(description, sort_keys=True).encode()).hexdigest()[:8]
    content_path = Path(os.path.expanduser(content))
    if _is_glob(content):  # photos/*.jpg: named after photos
        content_path = Path(*itertools.takewhile(lambda part: not glob.has_magic(part), content_path.parts))
    content_name = (content_path.stem if content_path.is_file() else content_path.name) or "images"
    label = "".join(char if char in _SAFE_NAME_CHARS else "-" for char in f"{content_name}+{style_path.stem}")
    return Path(output_root).expanduser() / f"batch-{label[:_MAX_NAME_CHARS]}-{digest}"


def open_batch_dir(batch_dir: Path, description: dict) -> str:
    """Create the batch folder with batch.json, or check that an existing one was made by the same command.

    Returns the batch's id (random, in batch.json): a worker that reads the same id shares this storage."""
    from nst.run_folder import check_writable_dir

    json_path = batch_dir / BATCH_JSON_NAME
    if json_path.is_file():
        try:
            existing = json.loads(json_path.read_text())
        except (OSError, ValueError) as err:
            raise NSTError(
                f"{json_path}: unreadable ({one_line(err)}); delete it, or pass another --batch-dir"
            ) from None
        differs = sorted(name for name in description if existing.get(name) != description[name])
        if differs:
            raise NSTError(
                f"{batch_dir}: holds a batch made with other {', '.join(differs)}; pass another --batch-dir, "
                "or the same --content, --style, -p and --sweep as before to resume it"
            )
        return str(existing["id"])
    check_writable_dir(batch_dir)
    record = {"id": uuid.uuid4().hex, "created": datetime.datetime.now().isoformat(timespec="seconds"), **description}
    text = json.dumps(record, indent=2) + "\n"
    write_atomically(json_path, lambda file: file.write(text.encode()))
    return record["id"]


def finished_run(slot_dir: Path) -> Path | None:
    """The newest run folder in `slot_dir` whose run finished (final.png and finished.json), else None."""
    for run_dir in reversed(_run_dirs(slot_dir)):
        if (run_dir / "final.png").is_file() and (run_dir / FINISHED_NAME).is_file():
            return run_dir
    return None


def _run_dirs(slot_dir: Path) -> list[Path]:
    """The run folders in `slot_dir`, oldest first (their names start with the time they were made)."""
    if not slot_dir.is_dir():
        return []
    return sorted((p for p in slot_dir.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def skipped_result(spec: RunSpec, run_dir: Path) -> RunResult:
    """A run that an earlier command finished, with the cost and seconds its finished.json recorded."""
    try:
        record = json.loads((run_dir / FINISHED_NAME).read_text())
    except (OSError, ValueError):
        record = {}
    return RunResult(spec, "skipped", run_dir, record.get("final_cost"), record.get("seconds"))


def run_one(spec: RunSpec, slot_dir: Path) -> RunResult:
    """Run `spec` headless into a new run folder in `slot_dir`; its progress lines go to stdout.log in that folder.

    A failure is a RunResult with its one-line error (the run folder, if one was made, is kept for its notebook
    and kernel.log); Ctrl-C (nst.headless.Interrupted, KeyboardInterrupt) is raised."""
    from nst.headless import Interrupted, stylise

    slot_dir.mkdir(parents=True, exist_ok=True)
    before = set(_run_dirs(slot_dir))
    log_path = slot_dir / f".{RUN_LOG_NAME}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    start_s = time.perf_counter()
    error = None
    try:
        with open(log_path, "w") as log, contextlib.redirect_stdout(log):
            stylise(spec.content_path, spec.style_path, spec.parameters, output_root=slot_dir)
    except (Interrupted, KeyboardInterrupt):
        _keep_log(log_path, _new_run_dir(slot_dir, before))
        raise
    except NSTError as err:
        error = one_line(err)
    except Exception as err:  # a bug or an unforeseen failure in one run must not stop the others
        error = f"{type(err).__name__}: {one_line(err)}"
    seconds = time.perf_counter() - start_s
    run_dir = _new_run_dir(slot_dir, before)
    _keep_log(log_path, run_dir)
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


def _new_run_dir(slot_dir: Path, before: set[Path]) -> Path | None:
    made = sorted(set(_run_dirs(slot_dir)) - before, key=lambda p: p.name)
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


def run_batch(specs: Sequence[RunSpec], batch_dir: Path, sweeps: Sequence[Sweep], batch_id: str, client=None) -> int:
    """Run what is not finished yet (in this process, or with a Dask `client` on its cluster); then the table, the
    grids and the errors. Returns the exit status: 0 when every run finished, 1 when some failed."""
    from tqdm import tqdm

    results: dict[str, RunResult] = {spec.key: RunResult(spec, "not run") for spec in specs}
    pending = []
    for spec in specs:
        done_dir = finished_run(batch_dir / spec.key)
        if done_dir is not None:
            results[spec.key] = skipped_result(spec, done_dir)
        else:
            pending.append(spec)
    where = f"on the Dask cluster at {client.scheduler.address}" if client else "here, one at a time"
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
        if client is not None:
            from nst.cluster import run_on_cluster

            run_on_cluster(client, pending, batch_dir, batch_id, record)
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
    run_dirs = _run_dirs(batch_dir / spec.key)
    return run_dirs[-1] if run_dirs else None


def _image_names(images: Sequence[Path]) -> list[str]:
    """A folder name for each image: its file name; where two share one (a glob over folders), the parent too."""
    names = [_safe_name(image.name) for image in images]
    for index, image in enumerate(images):
        if names.count(names[index]) > 1:
            names[index] = _safe_name(f"{image.parent.name}-{image.name}")
    for index in range(len(names)):  # still the same: the full path's hash tells them apart
        if names.count(names[index]) > 1:
            names[index] = f"{names[index]}-{hashlib.sha1(str(images[index]).encode()).hexdigest()[:6]}"
    return names


def _safe_name(text: str) -> str:
    """`text` as one folder name: odd characters become -, and a long or changed name gets a hash, to stay unique."""
    safe = "".join(char if char in _SAFE_NAME_CHARS else "-" for char in text).strip("-.") or "run"
    if safe != text or len(safe) > _MAX_NAME_CHARS:
        safe = f"{safe[:_MAX_NAME_CHARS].rstrip('-.')}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"
    return safe
