"""A batch's plan and its resume: the runs of a command (RunSpec), how each ended (RunResult), the batch folder.

No TensorFlow, no Dask. The batch folder is laid out as nst.batch's docstring shows; a run is finished when its run
folder holds final.png and finished.json (`finished_run`), so the same command again skips it.
"""

from __future__ import annotations

import dataclasses
import datetime
import glob
import hashlib
import itertools
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from nst.errors import NSTError, one_line
from nst.grid import Sweep, grid_points
from nst.images import write_atomically
from nst.settings import Settings

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")  # what a folder contributes
BATCH_JSON_NAME = "batch.json"
FINISHED_NAME = "finished.json"  # written into a run folder when its run ended well: resume skips such runs
_SAFE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._=,+-")
_MAX_NAME_CHARS = 60


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


def is_glob(text: str) -> bool:
    """Whether --content `text` is a glob pattern (and not a file whose name holds *, ? or [)."""
    return glob.has_magic(text) and not Path(text).expanduser().exists()


def expand_content(content: str) -> list[Path]:
    """The content images of a batch, absolute and sorted: a file, a folder's images, or a glob's files."""
    path = Path(content).expanduser()
    if path.is_dir():
        images = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
        images = [p for p in images if p.is_file()]
        if not images:
            raise NSTError(f"{path}: no images in this folder (looked for {', '.join(IMAGE_SUFFIXES)}); pass another")
    elif is_glob(content):
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

    A style image so small that it is upsampled is said once, here; each run's stdout.log says it again. A mask's
    aspect ratio is checked against each image when its run starts (nst.headless.stylise): an image of another shape
    than the masks fails alone, in one line, and the others go on."""
    from nst.images import load_image, load_style_image, style_upsampling_note
    from nst.masks import check_mask_file

    checked, noted = set(), set()
    for spec in specs:
        settings = Settings(content_path=spec.content_path, style_path=spec.style_path, **spec.parameters)
        for path, _ in settings.styles:
            key = (path, settings.max_side_px, settings.style_scale)
            if key not in checked:
                load_style_image(Path(path).expanduser(), settings.max_side_px, settings.style_scale)  # one line
                checked.add(key)
                note = style_upsampling_note(Path(path).expanduser(), settings.max_side_px, settings.style_scale)
                if note and path not in noted:
                    print(note)
                    noted.add(path)
        if check_content and (spec.content_path, settings.max_side_px) not in checked:
            load_image(Path(spec.content_path).expanduser(), max_side_px=settings.max_side_px)
            checked.add((spec.content_path, settings.max_side_px))
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
    if is_glob(content):  # photos/*.jpg: named after photos
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
    for run_dir in reversed(run_dirs(slot_dir)):
        if (run_dir / "final.png").is_file() and (run_dir / FINISHED_NAME).is_file():
            return run_dir
    return None


def run_dirs(slot_dir: Path) -> list[Path]:
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
