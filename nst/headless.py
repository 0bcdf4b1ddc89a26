"""Headless runs (make run): the notebook executed by papermill into a new run folder, with one clean line on error.

No TensorFlow in this process: the settings, the images and the memory are checked here before a kernel starts, so
a refused run makes no folder; TensorFlow's start-up lines and the kernel's log go to kernel.log in the run folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from nst.errors import NSTError
from nst.images import image_size_for, load_image
from nst.memory import check_memory
from nst.paths import NOTEBOOK_PATH, OUTPUT_DIR, SAMPLE_CONTENT_PATH, SAMPLE_STYLE_PATH
from nst.run_folder import make_run_dir
from nst.settings import Settings, field_names

KERNEL_LOG_NAME = "kernel.log"
_SET_BY_THE_COMMAND = ("content_path", "style_path", "output_root", "run_dir", "live_view")


class Interrupted(NSTError):
    """Ctrl-C during a headless run: the run stopped after its current iteration and saved its work."""


def stylise(
    content_path: str | os.PathLike = SAMPLE_CONTENT_PATH,
    style_path: str | os.PathLike = SAMPLE_STYLE_PATH,
    parameters: Mapping | None = None,
    output_root: str | os.PathLike = OUTPUT_DIR,
    notebook_path: str | os.PathLike = NOTEBOOK_PATH,
) -> Path:
    """Execute the notebook headless with papermill on two images; returns the new run folder it wrote.

    `parameters` are settings of the notebook's parameters cell (see nst.settings.Settings), already typed.
    """
    import papermill

    parameters = dict(parameters or {})
    unknown = sorted(set(parameters) - set(field_names()))
    taken = sorted(set(parameters) & set(_SET_BY_THE_COMMAND))
    if unknown:
        raise NSTError(
            f"unknown parameter {', '.join(unknown)}; the notebook's parameters are {', '.join(field_names())}"
        )
    if taken:
        raise NSTError(f"{', '.join(taken)}: set by the command itself; use --content, --style and --output-root")
    content_path, style_path = Path(content_path).expanduser().absolute(), Path(style_path).expanduser().absolute()
    settings = Settings(content_path=str(content_path), style_path=str(style_path), **parameters)
    if settings.style_images:  # absolute paths, since the kernel runs in notebooks/
        absolute = tuple((str(Path(path).expanduser().absolute()), w) for path, w in settings.style_images)
        settings = dataclasses.replace(settings, style_images=absolute)
    for path in (content_path, *(Path(p) for p, _ in settings.styles)):
        load_image(path, max_side_px=settings.max_side_px)  # fail in one line now, not after a kernel has started
    check_memory(*image_size_for(content_path, settings.max_side_px), deepest_layer=settings.deepest_layer)
    run_dir = make_run_dir(output_root, label=f"{content_path.stem}+{style_path.stem}")
    plain = settings.asdict()  # tuples as lists: papermill would write a tuple as a string
    papermill_parameters = {name: plain[name] for name in parameters}
    papermill_parameters.update(
        content_path=str(content_path), style_path=str(style_path), run_dir=str(run_dir), live_view=False
    )
    executed_path = run_dir / "notebook.ipynb"
    log_path = run_dir / KERNEL_LOG_NAME
    print(f"Stylising {content_path.name} with {style_path.name}; writing to {run_dir}", flush=True)
    interrupted = []
    previous_handler = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))  # the kernel stops itself
    try:
        with _stderr_to(log_path):
            papermill.execute_notebook(
                str(notebook_path),
                str(executed_path),
                parameters=papermill_parameters,
                cwd=str(Path(notebook_path).parent),
                progress_bar=False,
                log_output=False,
                stdout_file=sys.stdout,
                stderr_file=sys.stderr,
            )
    except papermill.PapermillExecutionError as err:
        if interrupted:
            raise Interrupted(_interrupted_line(run_dir)) from None
        raise NSTError(
            f"{err.ename}: {_first_line(err.evalue)} (the notebook as far as it ran: {executed_path})"
        ) from None
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    if interrupted:
        raise Interrupted(_interrupted_line(run_dir))
    return run_dir


def _interrupted_line(run_dir: Path) -> str:
    final = run_dir / "final.png"
    kept = f"final image: {final}" if final.exists() else f"newest image: {run_dir / 'latest.png'}"
    return f"interrupted: stopped after the current iteration; {kept}; metrics.csv and snapshots are in {run_dir}"


def _first_line(text: str) -> str:
    return " ".join(str(text).split("\n")[0].split())


@contextlib.contextmanager
def _stderr_to(log_path: Path):
    """Send this process's file descriptor 2, and so the kernel's that inherits it, to `log_path`."""
    sys.stderr.flush()
    saved_fd = os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
