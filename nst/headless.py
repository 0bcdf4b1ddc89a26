"""Headless runs (make run): the notebook executed by papermill into a new run folder, with one clean line on error.

No TensorFlow in this process: the settings, the images, the memory and the weights file are checked here before a
kernel starts, so a refused run makes no folder; with weights=None and no file in pretrained-model/, Keras's is fetched
here too, after every check (offline: random features, said in one line). TensorFlow's start-up lines and the
kernel's log go to kernel.log in the run folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from nst.errors import NSTError
from nst.images import (
    image_size_for,
    load_image,
    load_style_image,
    style_size_for,
    style_upsampling_note,
    write_atomically,
)
from nst.masks import load_style_masks
from nst.memory import available_memory_bytes, check_memory, estimate_memory_bytes, fitting_advice
from nst.paths import NOTEBOOK_PATH, OUTPUT_DIR, SAMPLE_CONTENT_PATH, SAMPLE_STYLE_PATH
from nst.run_folder import check_writable_dir, make_run_dir
from nst.settings import Settings, field_names
from nst.weights import check_weights, weights_for_kernel

KERNEL_LOG_NAME = "kernel.log"
# Errors whose message is already the one line a user needs: shown without their class name.
_OUR_ERRORS = {cls.__name__ for cls in (NSTError, *NSTError.__subclasses__())}
INTERRUPT_REPEAT_S = 2.0  # Ctrl-C is passed on to the kernel this often until the notebook ends
MEMORY_SUSPECT_SHARE = 0.5  # a dead kernel whose run needed more than this share of the free memory: blame memory
# Cells tagged so paint the sample photo whatever the run's images (notebook 01's "Paint regions" demonstration):
# a headless run is for the user's images, so it skips them (about 6 s at 400 px, and no stray regions/ folder).
SAMPLE_DEMO_TAG = "sample-demo"
SET_BY_THE_COMMAND = ("content_path", "style_path", "output_root", "run_dir", "live_view")


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
    parameters = dict(parameters or {})
    unknown = sorted(set(parameters) - set(field_names()))
    taken = sorted(set(parameters) & set(SET_BY_THE_COMMAND))
    if unknown:
        raise NSTError(
            f"unknown parameter {', '.join(unknown)}; the notebook's parameters are {', '.join(field_names())}"
        )
    if taken:
        raise NSTError(f"{', '.join(taken)}: set by the command itself; use --content, --style and --output-root")
    content_path, style_path = Path(content_path).expanduser().absolute(), Path(style_path).expanduser().absolute()
    output_root = Path(output_root).expanduser().absolute()  # the kernel runs in notebooks/: no relative paths
    settings = Settings(content_path=str(content_path), style_path=str(style_path), **parameters)
    if settings.style_images:  # absolute paths, since the kernel runs in notebooks/
        absolute = tuple((str(Path(path).expanduser().absolute()), w) for path, w in settings.style_images)
        settings = dataclasses.replace(settings, style_images=absolute)
    if settings.style_masks:
        absolute = tuple(path and str(Path(path).expanduser().absolute()) for path in settings.style_masks)
        settings = dataclasses.replace(settings, style_masks=absolute)
    # From the headers, before decoding anything: the run's memory first
    height_px, width_px = image_size_for(content_path, settings.max_side_px)
    style_sizes_px = [style_size_for(path, settings.max_side_px, settings.style_scale) for path, _ in settings.styles]
    memory = {
        "height_px": height_px,
        "width_px": width_px,
        "deepest_layer": settings.deepest_layer,
        "optimizer": settings.optimizer,
        "style_sizes_px": style_sizes_px,
    }
    check_memory(**memory)
    load_image(content_path, max_side_px=settings.max_side_px)  # fail in one line now, not after a kernel started
    notes = []
    for path, _ in settings.styles:
        load_style_image(path, settings.max_side_px, settings.style_scale)
        notes.append(style_upsampling_note(path, settings.max_side_px, settings.style_scale))
    load_style_masks(settings, height_px, width_px)  # each mask: readable, not all black, the content's shape
    checked_weights = check_weights(settings.weights)  # a file that is no weights file: one line, and no folder
    check_writable_dir(output_root)  # the last check: a run refused never waits for the network
    check_runner_installed()
    weights = weights_for_kernel(checked_weights)  # a checked file, or "random"; fetched here on first use
    run_dir = make_run_dir(output_root, label=f"{content_path.stem}+{style_path.stem}")
    plain = settings.asdict()  # tuples as lists: papermill would write a tuple as a string
    papermill_parameters = {name: plain[name] for name in parameters}
    papermill_parameters.update(
        content_path=str(content_path),
        style_path=str(style_path),
        run_dir=str(run_dir),
        live_view=False,
        weights=weights,  # the kernel reads what was checked (and fetched) here, and never fetches
    )
    for note in filter(None, notes):
        print(note)
    print(f"Stylising {content_path.name} with {style_path.name}; writing to {run_dir}", flush=True)
    execute_notebook(notebook_path, run_dir, papermill_parameters, memory)
    return run_dir


def check_runner_installed() -> None:
    """Import what execute_notebook runs the notebook with, so a Python without it fails before a run folder exists."""
    import nbclient  # noqa: F401
    import papermill  # noqa: F401


def execute_notebook(notebook_path, run_dir: Path, parameters: dict, memory: dict) -> None:
    """papermill on `notebook_path` into `run_dir`; every way it can end becomes one line (NSTError, Interrupted).

    Cells tagged SAMPLE_DEMO_TAG are not executed: the executed notebook keeps them, without outputs.

    notebook.ipynb is complete or absent; the kernel talks over IPC, its stderr goes to kernel.log; Ctrl-C reaches
    the kernel, whose run stops after its iteration and saves; a dead kernel is explained with the memory the run
    needs: `memory` holds estimate_memory_bytes' arguments (height_px, width_px, deepest_layer, optimizer, …).
    """
    import papermill
    from nbclient.exceptions import DeadKernelError

    partial_path = run_dir / ".notebook.ipynb.partial"  # papermill rewrites it after every cell
    interrupted, kernels = [], []

    finished = threading.Event()

    def interrupt_the_kernel(*_):
        """Ctrl-C: the kernel runs in its own session, so pass the interrupt on; its run stops and saves final.png.

        An idle kernel ignores SIGINT, so it is sent again every INTERRUPT_REPEAT_S until a cell has taken it."""
        if interrupted:
            return
        interrupted.append(True)
        threading.Thread(target=keep_interrupting, daemon=True).start()

    def keep_interrupting():
        while not finished.is_set():
            for manager in kernels:
                with contextlib.suppress(OSError, TypeError, AttributeError):
                    os.killpg(manager.provisioner.pgid, signal.SIGINT)
            finished.wait(INTERRUPT_REPEAT_S)

    previous_handler = signal.signal(signal.SIGINT, interrupt_the_kernel)
    available_bytes = available_memory_bytes()
    try:
        with _stderr_to(run_dir / KERNEL_LOG_NAME), tempfile.TemporaryDirectory(prefix="nst-") as sockets_dir:
            papermill.execute_notebook(
                str(notebook_path),
                str(partial_path),
                parameters=parameters,
                cwd=str(Path(notebook_path).parent),
                progress_bar=False,
                log_output=False,
                stdout_file=sys.stdout,
                stderr_file=sys.stderr,
                kernel_manager_class=_ipc_kernel_manager(sockets_dir, kernels),
                skip_cells_with_tag=SAMPLE_DEMO_TAG,  # nbclient's own option, passed on by papermill
                # Every cell has finished and closed its files by then; a graceful shutdown waits ~1.4 s for the
                # kernel's own exit (TensorFlow's teardown) and keeps nothing more
                shutdown_kernel="immediate",
            )
    except papermill.PapermillExecutionError as err:
        if interrupted:
            raise Interrupted(_interrupted_line(run_dir)) from None
        executed = _publish(partial_path, run_dir)
        what = _first_line(err.evalue) if err.ename in _OUR_ERRORS else f"{err.ename}: {_first_line(err.evalue)}"
        raise NSTError(f"{what} (the notebook as far as it ran: {executed})") from None
    except DeadKernelError:
        _publish(partial_path, run_dir)
        raise NSTError(_dead_kernel_line(run_dir, memory, available_bytes)) from None
    except OSError as err:  # the disk filled up (or the folder went away) while papermill wrote the notebook
        _publish(partial_path, run_dir)  # keeps the notebook if it is whole and fits; always removes the partial
        raise NSTError(_write_failed_line(run_dir, err)) from None
    finally:
        finished.set()
        signal.signal(signal.SIGINT, previous_handler)
    _publish(partial_path, run_dir)
    if interrupted:
        raise Interrupted(_interrupted_line(run_dir))


def _publish(partial_path: Path, run_dir: Path) -> Path | str:
    """Move papermill's notebook to notebook.ipynb atomically if it is whole JSON; returns the path, or why not."""
    final_path = run_dir / "notebook.ipynb"
    try:
        text = partial_path.read_bytes()
        json.loads(text)
        write_atomically(final_path, lambda file: file.write(text))
    except (OSError, ValueError) as err:
        return f"not saved ({getattr(err, 'strerror', None) or type(err).__name__})"
    finally:
        partial_path.unlink(missing_ok=True)
    return final_path


def _ipc_kernel_manager(sockets_dir: str, managers: list):
    """A kernel manager whose kernel talks over Unix sockets in `sockets_dir` (no TCP, no unencrypted port), and
    keeps its temporary files there too (TMPDIR), so they go with the folder.

    TensorFlow's autograph writes a source file per function it converts into the temporary folder, and deletes
    them only when the kernel exits by itself; this kernel is stopped at once (execute_notebook), which left 10
    files in /tmp per run. Each manager made is appended to `managers`, so that Ctrl-C can reach its kernel."""
    from jupyter_client.manager import AsyncKernelManager

    kernel_tmp_dir = os.path.join(sockets_dir, "tmp")
    os.makedirs(kernel_tmp_dir, exist_ok=True)

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", os.path.join(sockets_dir, "kernel"))
            super().__init__(**kwargs)
            managers.append(self)

        async def start_kernel(self, **kwargs):
            env = {**(kwargs.pop("env", None) or os.environ), "TMPDIR": kernel_tmp_dir}
            await super().start_kernel(env=env, **kwargs)

    return IPCKernelManager


def _newest_image(run_dir: Path) -> Path | None:
    """The newest complete image of the run: final.png, else the newer of latest.png and the last snapshot."""
    if (run_dir / "final.png").is_file():
        return run_dir / "final.png"
    images = [path for path in (run_dir / "latest.png", *run_dir.glob("iter_*.png")) if path.is_file()]
    return max(images, key=lambda path: (path.stat().st_mtime_ns, path.name), default=None)


def _kept_line(run_dir: Path) -> str:
    image = _newest_image(run_dir)
    kept = f"the newest image is {image}" if image else "no image was saved yet"
    metrics = run_dir / "metrics.csv"
    return f"{kept}; {metrics} has every finished iteration" if metrics.exists() else kept


def _dead_kernel_line(run_dir: Path, memory: dict, available_bytes: int) -> str:
    height_px, width_px = memory["height_px"], memory["width_px"]
    needed = estimate_memory_bytes(**memory)
    log = run_dir / KERNEL_LOG_NAME
    needs = f"{width_px}×{height_px} px needs about {needed / 1e9:.1f} GB; {available_bytes / 1e9:.1f} GB was available"
    if needed > MEMORY_SUSPECT_SHARE * available_bytes:  # the out-of-memory killer is the likely cause
        suspect_bytes = int(available_bytes * MEMORY_SUSPECT_SHARE)
        advice = fitting_advice(**memory, available_bytes=suspect_bytes)
        return f"the kernel died, most likely killed for lack of memory ({needs}); {_kept_line(run_dir)}; {advice}"
    cause = f"killed from outside or crashed ({needs}, so not for lack of it)"
    return f"the kernel died, {cause}; {_kept_line(run_dir)}; see {log}"


def _write_failed_line(run_dir: Path, err: OSError) -> str:
    image = _newest_image(run_dir)
    kept = f"the last good snapshot is {image}" if image else "no image was saved"
    return f"cannot write to {run_dir} ({err.strerror or err}); {kept}; free some disk space and run again"


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
