"""Plumbing for the neural-style-transfer notebook: VGG-19 weights, the model, images, runs and display.

The costs (content, Gram, style, total) are *not* here: they live in the notebook, where they are taught.
Importing this module has no side effects: no downloads, no seeds, no plotting settings.

Command line:
    python nst_utils.py download [keras|matconvnet]   # fetch real VGG-19 weights into pretrained-model/
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import hashlib
import http.client
import io
import json
import math
import os
import ssl
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

# ============================================================================ Paths, constants, errors

PROJECT_DIR = Path(__file__).resolve().parent
PRETRAINED_DIR = PROJECT_DIR / "pretrained-model"
IMAGES_DIR = PROJECT_DIR / "images"
OUTPUT_DIR = PROJECT_DIR / "output"
NOTEBOOK_PATH = PROJECT_DIR / "notebooks" / "01_neural_style_transfer.ipynb"
SAMPLE_CONTENT_PATH = IMAGES_DIR / "content_tuebingen.jpg"  # placeholder names, fixed when the images land
SAMPLE_STYLE_PATH = IMAGES_DIR / "style_swirls.jpg"

# ImageNet mean pixel, RGB order, 0-255 scale. Only a fallback: the .mat file carries its own.
VGG_MEAN_RGB_255 = (123.68, 116.779, 103.939)

# VGG-19 "E" configuration: (output channels, number of 3x3 convs) per block; each block ends in a 2x2 pool.
VGG19_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))


def vgg19_layer_names() -> tuple[str, ...]:
    """The layer names the model can return, in network order: conv1_1, conv1_2, pool1, ..., conv5_4, pool5."""
    names: list[str] = []
    for block, (_, n_convs) in enumerate(VGG19_BLOCKS, start=1):
        names += [f"conv{block}_{i}" for i in range(1, n_convs + 1)]
        names.append(f"pool{block}")
    return tuple(names)


@dataclasses.dataclass(frozen=True)
class WeightsSource:
    """A published VGG-19 weights file: where it is served and how to recognise a genuine copy."""

    key: str  # name on the command line: "keras" or "matconvnet"
    filename: str  # the exact name the loader looks for in pretrained-model/
    url: str
    md5s: tuple[str, ...]  # md5 of every genuine release; the first is the file served at `url`
    sha256: str | None  # sha256 of the file served at `url`, where published
    size_bytes: int | None  # expected size: a progress hint only, the checksum is the authority


WEIGHTS_SOURCES = {
    "keras": WeightsSource(
        key="keras",
        filename="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        url="https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        md5s=("253f8cb515780f3b799900260a226db6",),
        sha256=None,
        size_bytes=80_134_624,
    ),
    "matconvnet": WeightsSource(
        key="matconvnet",
        filename="imagenet-vgg-verydeep-19.mat",
        url="https://www.vlfeat.org/matconvnet/models/imagenet-vgg-verydeep-19.mat",
        # current release first, then the old "beta16" release (same network, other struct layout)
        md5s=("106118b7cf60435e6d8e04f6a6dc3657", "8ee3263992981a1d26e73b3ca028a123"),
        sha256="abdb57167f82a2a1fbab1e1c16ad9373411883f262a1a37ee5db2e6fb0044695",
        size_bytes=534_904_783,
    ),
}


class NSTError(Exception):
    """A problem the user can fix; its message is one line that names the file or value and the fix."""


class WeightsFileError(NSTError, ValueError):
    """A weights file that is missing, corrupt, or not VGG-19."""


class DownloadError(NSTError):
    """A weights download that failed or fetched the wrong bytes."""


class ImageFileError(NSTError, ValueError):
    """An image file that cannot be used as content or style."""


# ============================================================================ Weights: download

# The standard library's urllib rather than `requests`: requests is not a declared dependency (only a transitive one
# of jupyterlab), and one streamed GET with a Range header needs nothing urllib lacks (it follows redirects and keeps
# the Range header across them).

DOWNLOAD_CHUNK_BYTES = 64 * 1024  # unit of streaming, writing and progress updates
# Failures after the server has started answering: the .part is resumed with a Range request. (A connection refused or
# an unknown host fails at once instead: urllib reports those as URLError before any response.)
_CONNECTION_DROPS = (http.client.IncompleteRead, ConnectionError, TimeoutError, ssl.SSLError)


def download_weights(
    key: str = "keras",
    dest_dir: str | os.PathLike[str] = PRETRAINED_DIR,
    url: str | None = None,
    *,
    source: WeightsSource | None = None,
    progress: bool = True,
    timeout_s: float = 30.0,
    max_retries: int = 4,
    backoff_s: float = 1.0,
) -> Path:
    """Download weights `key` into `dest_dir`, resuming any `.part` left there; verify the checksum; return the path.

    `url` replaces the published URL (a mirror); `source` replaces the WEIGHTS_SOURCES entry (tests, other files).
    A dropped connection is resumed up to `max_retries` times, after `backoff_s`, 2 * `backoff_s`, ... seconds.
    Raises DownloadError (one-line message with the fix); on Ctrl-C keeps the `.part` for the next run and re-raises.
    """
    source = source or _weights_source(key)
    url = url or source.url
    final_path = Path(dest_dir) / source.filename
    part_path = final_path.with_name(final_path.name + ".part")  # never a name the loader looks for
    if final_path.exists():
        problem = _checksum_problem(final_path, source)
        if problem is None:
            _note(f"{final_path} is already here and its checksum matches: nothing to download.")
            return final_path
        bad_path = final_path.with_name(final_path.name + ".bad")
        os.replace(final_path, bad_path)  # keep the user's bytes, but out of the loader's way
        _note(f"{final_path.name} is here but is not a genuine copy ({problem}): moved it to {bad_path.name}.")
    final_path.parent.mkdir(parents=True, exist_ok=True)
    resume_bytes = _file_size(part_path)
    action = f"resuming at {resume_bytes / 1e6:.1f} MB" if resume_bytes else "downloading"
    _note(f"{action} {source.filename} from {url} into {final_path.parent}")

    bar = None
    total_bytes = source.size_bytes  # a hint until the server says

    def show_progress(done_bytes: int, file_bytes: int | None) -> None:
        nonlocal bar, total_bytes
        total_bytes = file_bytes or total_bytes
        if bar is None:
            bar = tqdm(total=total_bytes, initial=done_bytes, unit="B", unit_scale=True, disable=not progress)
        bar.total = total_bytes
        bar.update(done_bytes - bar.n)  # negative when the server made us start again from zero

    tries, restarted = 1, False
    try:
        while True:
            try:
                complete = _download_attempt(url, part_path, source, timeout_s, show_progress)
            except _CONNECTION_DROPS as err:
                of_total = f" of {total_bytes / 1e6:.1f} MB" if total_bytes else ""
                got = f"{_file_size(part_path) / 1e6:.1f} MB{of_total}"
                if tries > max_retries:
                    raise DownloadError(
                        f"download of {url} stopped at {got} after {tries} tries, the connection kept dropping "
                        f"({_reason(err)}); kept {part_path}: run the same command again to resume."
                    ) from None
                tries += 1
                _note(f"connection dropped at {got} ({_reason(err)}), resuming (try {tries}/{max_retries + 1})")
                time.sleep(backoff_s * 2 ** (tries - 2))
                continue
            problem = _checksum_problem(part_path, source)
            if problem is None:
                break
            if not complete and not restarted:  # the server said the .part is whole (HTTP 416) but it is not the file
                _note(f"{part_path.name} is as long as the file but not a genuine copy ({problem}): starting again.")
                part_path.unlink()
                restarted = True
                continue
            part_path.unlink()
            raise DownloadError(
                f"{source.filename} from {url} is not a genuine copy ({problem}): the download is corrupt or the URL "
                f"serves another file. Deleted {part_path.name} (it cannot be resumed into a good file); run the same "
                "command again, or try --url with another mirror."
            )
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        if kept_bytes := _file_size(part_path):
            _note(f"interrupted: kept {part_path} ({kept_bytes / 1e6:.1f} MB); run the same command again to resume.")
        else:
            _note("interrupted before any data arrived.")
        raise
    finally:
        if bar is not None:
            bar.close()
    os.replace(part_path, final_path)  # same folder, so atomic: the final name only ever holds a verified file
    return final_path


def _download_attempt(
    url: str, part_path: Path, source: WeightsSource, timeout_s: float, show_progress: Callable[[int, int | None], None]
) -> bool:
    """One GET of `url` appended to `part_path` from its current size; False if the server says it is whole (416)."""
    offset = _file_size(part_path)
    try:
        request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and offset:
            return False  # "range not satisfiable": the .part already holds the whole file, or more
        raise DownloadError(_http_error_message(url, err.code, err.reason, part_path, source)) from None
    except (urllib.error.URLError, ValueError) as err:  # ValueError: not a URL at all
        raise DownloadError(_unreachable_message(url, getattr(err, "reason", err), part_path, source)) from None
    with response:
        length = _int_or_none(response.headers.get("Content-Length"))
        if response.status == 206:  # partial content: the file from byte `start` on
            start, file_bytes = _parse_content_range(response.headers.get("Content-Range", ""))
            if start is None or start > offset:
                raise DownloadError(
                    f"{url} answered a resume request (Range: bytes={offset}-) with an unusable Content-Range "
                    f"{response.headers.get('Content-Range')!r}; delete {part_path} and run the same command again."
                )
            offset = start
        else:  # 200: the whole file
            if offset:
                _note("the server ignored the request to resume (HTTP Range): starting again from zero.")
            offset, file_bytes = 0, length
        expected_end = offset + length if length is not None else file_bytes
        first_chunk = response.read(DOWNLOAD_CHUNK_BYTES)
        html_sign = _html_sign(response.headers.get("Content-Type", ""), first_chunk if offset == 0 else b"")
        if html_sign:
            part_path.unlink(missing_ok=True)
            raise DownloadError(
                f"{url} sent an HTML page ({html_sign}), not {source.filename}: the link leads to a web page (error, "
                f"login or redirect page). Deleted {part_path.name}; try --url with a direct link to the file, or "
                f"download it in a browser and save it in {part_path.parent} as {source.filename}."
            )
        done = offset
        with open(part_path, "ab") as part_file:
            part_file.truncate(offset)  # to zero when the server restarted; appends go to the end from here
            show_progress(done, file_bytes)
            chunk = first_chunk
            while chunk:
                try:
                    part_file.write(chunk)
                except OSError as err:
                    raise DownloadError(
                        f"cannot write {part_path}: {err.strerror or err}; free some disk space or pass --dest with "
                        "another folder, then run the same command again to resume."
                    ) from None
                done += len(chunk)
                show_progress(done, file_bytes)
                chunk = response.read(DOWNLOAD_CHUNK_BYTES)
    if expected_end is not None and done < expected_end:  # http.client returns b"" when a server closes early
        raise http.client.IncompleteRead(b"", expected_end - done)
    return True


def _weights_source(key: str) -> WeightsSource:
    """The WEIGHTS_SOURCES entry for `key`, or a DownloadError that lists the known keys."""
    if key not in WEIGHTS_SOURCES:
        raise DownloadError(f"unknown weights {key!r}: choose one of {', '.join(WEIGHTS_SOURCES)}.")
    return WEIGHTS_SOURCES[key]


def _checksum_problem(path: Path, source: WeightsSource) -> str | None:
    """None if `path` is a genuine release of `source` (md5, and sha256 where published), else what was found."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):  # chunked: the .mat is 535 MB
            md5.update(chunk)
            sha256.update(chunk)
    if md5.hexdigest() not in source.md5s:
        return f"md5 {md5.hexdigest()}, expected {' or '.join(source.md5s)}"
    if source.sha256 and md5.hexdigest() == source.md5s[0] and sha256.hexdigest() != source.sha256:
        return f"sha256 {sha256.hexdigest()}, expected {source.sha256}"
    return None


def _http_error_message(url: str, code: int, reason: str, part_path: Path, source: WeightsSource) -> str:
    """One line for an HTTP error status: what it means and what to do."""
    if code in (404, 410):
        meaning = "the file has moved or been removed"
    elif code in (401, 403):
        meaning = "the server refuses to send the file"
    elif code >= 500:
        meaning = "the server failed; try again later"
    else:
        meaning = "the server did not send the file"
    return (
        f"{url} answered HTTP {code} {reason}: {meaning}. Try --url with a mirror, or download the file by hand "
        f"and save it in {part_path.parent} as {source.filename}."
    )


def _unreachable_message(url: str, reason: object, part_path: Path, source: WeightsSource) -> str:
    """One line for a host that cannot be reached (DNS, refused connection, timeout, bad URL)."""
    host = urllib.parse.urlsplit(url).netloc or url
    kept = " The partial download is kept: run the same command again to resume." if _file_size(part_path) else ""
    return (
        f"cannot reach {host} ({_reason(reason)}) for {url}: check your network connection and proxy settings "
        f"(HTTPS_PROXY), or download the file by hand and save it in {part_path.parent} as {source.filename}.{kept}"
    )


def _html_sign(content_type: str, first_bytes: bytes) -> str | None:
    """What shows that a response is an HTML page rather than weights, or None."""
    if "html" in content_type.lower():
        return f"Content-Type {content_type.split(';')[0].strip()}"
    head = first_bytes[:256].removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return f"the data starts with {first_bytes.lstrip()[:15].decode('ascii', 'replace')!r}"
    return None


def _parse_content_range(value: str) -> tuple[int | None, int | None]:
    """(first byte, file size) from a Content-Range header like 'bytes 100-299/300'; None where absent or '*'."""
    unit, _, spec = value.strip().partition(" ")
    first_last, _, size = spec.partition("/")
    first = first_last.partition("-")[0]
    if unit != "bytes" or not first.isdigit():
        return None, None
    return int(first), _int_or_none(size)


def _int_or_none(text: str | None) -> int | None:
    """The integer in a header value, or None if it is missing or not a number."""
    return int(text) if text is not None and text.strip().isdigit() else None


def _file_size(path: Path) -> int:
    """Size of `path` in bytes, 0 if it does not exist."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _reason(err: object) -> str:
    """Short text for an exception: its OS message where it has one ('Connection refused', 'timed out')."""
    if isinstance(err, http.client.IncompleteRead):
        return "connection closed early"
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def _note(message: str) -> None:
    """Tell the user what the downloader is doing, without breaking a progress bar."""
    tqdm.write(message, file=sys.stdout)


# ============================================================================ Weights: reading files


# ============================================================================ Model


# ============================================================================ Images


# ============================================================================ Runs: optimisation, saving, display

LOSS_NAMES = ("total", "content", "style")  # the scalars a train step returns, in this order of display


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
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        raise NSTError(
            f"{directory}: output folder is not writable ({err.strerror or err}); "
            "fix its permissions or pass another output folder"
        ) from None


def png_bytes(image_rgb01) -> bytes:
    """Encode an RGB image in [0, 1], shape (H, W, 3) or (1, H, W, 3), as PNG bytes."""
    from PIL import Image

    pixels = np.asarray(image_rgb01, dtype=np.float32)
    pixels = pixels.reshape(pixels.shape[-3:])
    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def loss_curve_png(history: list[dict], width_px: int = 480, height_px: int = 300) -> bytes:
    """Plot total, content and style cost per iteration (log scale) and return the figure as PNG bytes."""
    from matplotlib.figure import Figure  # Figure, not pyplot: safe off the main thread, no global state

    dpi = 100
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    ax = fig.add_subplot()
    iterations = [row["iteration"] for row in history]
    for name in LOSS_NAMES:
        values = [row[name] for row in history]
        if any(v > 0 for v in values):
            ax.plot(iterations, values, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cost")
    ax.legend(loc="upper right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


class MetricsLog:
    """Appends one CSV row per iteration to `path` and flushes it, so an interrupted run keeps its metrics."""

    def __init__(self, path: str | os.PathLike, fieldnames: tuple[str, ...]):
        self.path = Path(path)
        self.fieldnames = fieldnames
        self._file = open(self.path, "w", newline="")  # noqa: SIM115 (kept open for the whole run, closed by close())
        self._writer = csv.DictWriter(self._file, fieldnames=fieldnames)
        self._writer.writeheader()

    def append(self, row: Mapping) -> None:
        """Write one row and flush it to disk."""
        self._writer.writerow({k: row[k] for k in self.fieldnames})
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


class StyleTransferRun:
    """Runs `train_step` for `iterations` steps in a background thread, saving snapshots and metrics to `run_dir`.

    The thread keeps the notebook responsive: widget events (the α/β sliders, pause, stop) reach the kernel
    while the optimisation runs. `wait()` blocks until the run ends; Ctrl-C / interrupt during `wait()` stops
    the run cleanly. Every run writes `metrics.csv` (one row per iteration, flushed), snapshots
    `iter_NNNN.png` every `save_every` iterations and `final.png`, all atomically.
    """

    def __init__(
        self,
        train_step: Callable[[], Mapping],
        image,
        iterations: int,
        run_dir: str | os.PathLike,
        *,
        save_every: int = 100,
        alpha=None,
        beta=None,
        live_view: bool = True,
        display_every: int = 10,
        params: Mapping | None = None,
    ):
        if int(iterations) < 0:
            raise ValueError(f"iterations={iterations}: must be 0 or more")
        if int(save_every) < 1:
            raise ValueError(f"save_every={save_every}: must be 1 or more (iterations between snapshots)")
        self.train_step = train_step  # () -> {"total", "content", "style"} scalar tensors; updates `image`
        self.image = image  # tf.Variable (1, H, W, 3), RGB in [0, 1]
        self.iterations = int(iterations)
        self.run_dir = Path(run_dir)
        self.save_every = int(save_every)
        self.alpha = alpha  # tf.Variable read by train_step, or None
        self.beta = beta
        self.live_view = live_view
        self.display_every = max(1, int(display_every))
        self.params = dict(params or {})  # written to run_dir/params.json, so every run says how it was made
        self.history: list[dict] = []  # one dict per finished iteration: iteration, losses, alpha, beta, seconds
        self.saved_paths: list[Path] = []
        self.message = ""  # how the run ended, one line
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._thread: threading.Thread | None = None
        self._widgets = None
        self._last_good_image = None

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> StyleTransferRun:
        """Start the optimisation in a background thread and show the live view (or a progress bar)."""
        if self._thread is not None:
            raise RuntimeError("this run has already been started; make a new StyleTransferRun")
        check_writable_dir(self.run_dir)
        if self.params:
            (self.run_dir / "params.json").write_text(json.dumps(self.params, indent=2, default=str) + "\n")
        if self.live_view:
            self._widgets = self._build_widgets()
            from IPython.display import display

            display(self._widgets["box"])
        self._thread = threading.Thread(target=self._loop, name="style-transfer", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout_s: float | None = None) -> StyleTransferRun:
        """Block until the run ends (or `timeout_s` passes); an interrupt stops the run and keeps its work."""
        if self._thread is None:
            raise RuntimeError("call start() first")
        try:
            self._thread.join(timeout_s)
        except KeyboardInterrupt:
            self.stop()
            self._thread.join()
            print(f"Interrupted: {self.message}")
            raise
        if self.error is not None and not self._thread.is_alive():
            raise self.error
        return self

    def pause(self) -> None:
        """Pause after the current iteration."""
        self._running.clear()

    def resume(self) -> None:
        """Resume a paused run."""
        self._running.set()

    def stop(self) -> None:
        """Stop after the current iteration; the image so far is saved as final.png."""
        self._stop.set()
        self._running.set()

    @property
    def done(self) -> bool:
        """True once the background thread has finished."""
        return self._thread is not None and not self._thread.is_alive()

    @property
    def final_path(self) -> Path:
        """Where the final image is (or will be) saved."""
        return self.run_dir / "final.png"

    # -- the loop --------------------------------------------------------------------------------
    def _loop(self) -> None:
        metrics = MetricsLog(self.run_dir / "metrics.csv", ("iteration", *LOSS_NAMES, "alpha", "beta", "seconds"))
        progress = None if self.live_view else self._progress_bar()
        self._last_good_image = self.image.numpy()
        start_s = time.perf_counter()
        finished = 0
        try:
            for iteration in range(1, self.iterations + 1):
                self._running.wait()
                if self._stop.is_set():
                    self.message = f"stopped at iteration {finished} of {self.iterations}"
                    break
                step_start_s = time.perf_counter()
                losses = {name: float(value) for name, value in self.train_step().items()}
                image_now = self.image.numpy()
                if not (all(math.isfinite(v) for v in losses.values()) and np.isfinite(image_now).all()):
                    self.image.assign(self._last_good_image)
                    self.message = (
                        f"the cost became {losses['total']} at iteration {iteration}: restored the image from "
                        f"iteration {finished}; lower learning_rate (e.g. halve it) and run again"
                    )
                    break
                self._last_good_image = image_now
                finished = iteration
                row = {
                    "iteration": iteration,
                    **losses,
                    "alpha": self._value(self.alpha),
                    "beta": self._value(self.beta),
                    "seconds": time.perf_counter() - step_start_s,
                }
                self.history.append(row)
                metrics.append(row)
                if iteration % self.save_every == 0:
                    self._save(f"iter_{iteration:04d}.png", image_now)
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix({k: f"{row[k]:.3g}" for k in LOSS_NAMES}, refresh=False)
                if self._widgets is not None and (iteration % self.display_every == 0 or iteration == 1):
                    self._refresh_view(row, time.perf_counter() - start_s)
            else:
                self.message = f"finished {self.iterations} iterations"
        except BaseException as err:  # any failure still saves the last good image below
            self.error = err
            self.message = f"failed at iteration {finished + 1}: {type(err).__name__}: {err}"
        finally:
            metrics.close()
            if progress is not None:
                progress.close()
            self._save("final.png", self._last_good_image)
            self.message += f"; final image: {self.final_path}"
            if self._widgets is not None:
                if self.history:
                    self._refresh_view(self.history[-1], time.perf_counter() - start_s)
                self._widgets["status"].value += f"<br><b>{self.message}</b>"
            else:
                print(self.message)

    def _save(self, name: str, image_rgb01) -> None:
        """Write one snapshot atomically and remember its path."""
        path = self.run_dir / name
        save_png_atomic(path, png_bytes(image_rgb01))
        if path not in self.saved_paths:
            self.saved_paths.append(path)

    @staticmethod
    def _value(variable) -> float:
        return float("nan") if variable is None else float(variable.numpy())

    # -- display ---------------------------------------------------------------------------------
    def _progress_bar(self):
        from tqdm import tqdm

        return tqdm(total=self.iterations, desc="stylising", unit="it", mininterval=5.0, file=sys.stdout)

    def _build_widgets(self) -> dict:
        import ipywidgets as widgets

        view = {
            "image": widgets.Image(value=png_bytes(self.image.numpy()), format="png"),
            "curve": widgets.Image(format="png"),
            "status": widgets.HTML(value="starting…"),
        }
        sliders = [
            weight_slider(variable, label)
            for variable, label in ((self.alpha, "α (content weight)"), (self.beta, "β (style weight)"))
            if variable is not None
        ]
        view["sliders"] = sliders
        pause = widgets.ToggleButton(description="pause", icon="pause", value=False)
        pause.observe(lambda change: self.pause() if change["new"] else self.resume(), names="value")
        stop = widgets.Button(description="stop", icon="stop", button_style="danger")
        stop.on_click(lambda _button: self.stop())
        view["pause"], view["stop"] = pause, stop
        controls = widgets.VBox([*sliders, widgets.HBox([pause, stop]), view["status"]])
        view["box"] = widgets.VBox([widgets.HBox([view["image"], view["curve"]]), controls])
        return view

    def _refresh_view(self, row: Mapping, elapsed_s: float) -> None:
        view = self._widgets
        view["image"].value = png_bytes(self._last_good_image)
        view["curve"].value = loss_curve_png(self.history)
        speed = row["iteration"] / elapsed_s if elapsed_s > 0 else float("nan")
        view["status"].value = (
            f"iteration {row['iteration']}/{self.iterations} · {speed:.2f} it/s · "
            f"α = {row['alpha']:.3g} · β = {row['beta']:.3g} · "
            f"J = {row['total']:.4g} (content {row['content']:.4g}, style {row['style']:.4g})"
        )


def weight_slider(variable, description: str, min_exponent: float = -3.0, max_exponent: float = 5.0):
    """A log-scale slider bound to a tf.Variable: moving it assigns the variable (a compiled step reads it live)."""
    import ipywidgets as widgets

    slider = widgets.FloatLogSlider(
        value=float(variable.numpy()),
        base=10,
        min=min_exponent,
        max=max_exponent,
        step=0.05,
        description=description,
        continuous_update=False,
        readout_format=".3g",
        style={"description_width": "initial"},
        layout=widgets.Layout(width="420px"),
    )
    slider.observe(lambda change: variable.assign(change["new"]), names="value")
    return slider


def save_png_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` via a temporary file and os.replace, so a crash never leaves half a file."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


# ============================================================================ Checks used by the notebook's check cells


def check_close(what: str, got, expected, likely_mistakes: Mapping[float, str] | None = None, rtol: float = 1e-5):
    """Assert `got` ≈ `expected`; otherwise raise an AssertionError that names the mistake that gives `got`."""
    got_array = np.asarray(got, dtype=np.float64)
    if got_array.shape == np.shape(expected) and np.allclose(got_array, expected, rtol=rtol, atol=1e-8):
        return
    hint = "re-read the formula above and compare it term by term"
    for wrong_value, mistake in (likely_mistakes or {}).items():
        if got_array.size == 1 and np.isclose(float(got_array.reshape(())), wrong_value, rtol=1e-4):
            hint = mistake
            break
    shown = got_array.tolist() if got_array.size <= 9 else f"an array of shape {got_array.shape}"
    raise AssertionError(f"{what}: got {shown}, expected {np.asarray(expected).tolist()}. Likely mistake: {hint}")


# ============================================================================ Headless runs (make run)


def parse_parameter_value(text: str):
    """Read a command-line parameter value as a Python literal (number, list, None, …), else keep it a string."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def stylise(
    content_path: str | os.PathLike = SAMPLE_CONTENT_PATH,
    style_path: str | os.PathLike = SAMPLE_STYLE_PATH,
    parameters: Mapping | None = None,
    output_root: str | os.PathLike = OUTPUT_DIR,
    notebook_path: str | os.PathLike = NOTEBOOK_PATH,
) -> Path:
    """Execute the notebook headless with papermill on two images; returns the new run folder it wrote."""
    import papermill

    parameters = dict(parameters or {})
    known = papermill.inspect_notebook(str(notebook_path))
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise NSTError(f"unknown parameter {', '.join(unknown)}; the notebook's parameters are {', '.join(known)}")
    content_path, style_path = Path(content_path).resolve(), Path(style_path).resolve()
    max_side_px = parameters.get("max_side_px", 400)
    for path in (content_path, style_path):
        load_image(path, max_side=max_side_px)  # fail in one line now, not after papermill has started a kernel
    run_dir = make_run_dir(output_root, label=f"{content_path.stem}+{style_path.stem}")
    parameters.update(content_path=str(content_path), style_path=str(style_path), run_dir=str(run_dir), live_view=False)
    executed_path = run_dir / "notebook.ipynb"
    print(f"Stylising {content_path.name} with {style_path.name}; writing to {run_dir}")
    try:
        papermill.execute_notebook(
            str(notebook_path),
            str(executed_path),
            parameters=parameters,
            cwd=str(Path(notebook_path).parent),
            progress_bar=False,
            log_output=True,
            stdout_file=sys.stdout,
            stderr_file=sys.stderr,
        )
    except papermill.PapermillExecutionError as err:
        raise NSTError(f"{err.ename}: {err.evalue} (the notebook as far as it ran: {executed_path})") from None
    return run_dir


def _stylise_command(args: argparse.Namespace) -> int:
    """`stylise [--content PATH] [--style PATH] [-p NAME VALUE]...`: run the notebook headless, say where it wrote."""
    parameters = {name: parse_parameter_value(value) for name, value in args.parameter}
    run_dir = stylise(args.content, args.style, parameters, output_root=args.output_root)
    print(f"Done. Final image: {run_dir / 'final.png'}")
    print(f"      Executed notebook: {run_dir / 'notebook.ipynb'}; snapshots and metrics.csv are beside it.")
    return 0


# ============================================================================ Command line


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python nst_utils.py ...`; returns the process exit code (0 ok, 1 error, 130 Ctrl-C)."""
    parser = argparse.ArgumentParser(prog="python nst_utils.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    # One add_parser per command; each sets `run`, a function of the parsed args that returns an exit code.
    sizes = ", ".join(f"{key} {src.size_bytes / 1e6:.0f} MB" for key, src in WEIGHTS_SOURCES.items() if src.size_bytes)
    download = commands.add_parser(
        "download",
        help="fetch real VGG-19 weights into pretrained-model/",
        description="Download VGG-19 weights, resuming an interrupted download, and verify the published checksum.",
    )
    download.add_argument(
        "key", nargs="?", default="keras", choices=list(WEIGHTS_SOURCES), help=f"which file ({sizes}; default keras)"
    )
    download.add_argument(
        "--dest", type=Path, default=PRETRAINED_DIR, help="folder to save into (default: pretrained-model/)"
    )
    download.add_argument("--url", help="download from this URL instead (a mirror); the checksum is still checked")
    download.set_defaults(run=_download_command)

    stylise_parser = commands.add_parser(
        "stylise",
        help="stylise a photo headless: runs the notebook with papermill into a new output/ folder",
        description="Run the notebook top to bottom on your images; each run gets a new folder under output/.",
    )
    stylise_parser.add_argument("--content", type=Path, default=SAMPLE_CONTENT_PATH, help="the photo to repaint")
    stylise_parser.add_argument("--style", type=Path, default=SAMPLE_STYLE_PATH, help="the image whose style to use")
    stylise_parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a parameter of the notebook's parameters cell, e.g. -p iterations 300 -p max_side_px 512",
    )
    stylise_parser.add_argument("--output-root", type=Path, default=OUTPUT_DIR, help="where run folders go")
    stylise_parser.set_defaults(run=_stylise_command)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except NSTError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _download_command(args: argparse.Namespace) -> int:
    """`download [key] [--dest DIR] [--url URL]`: fetch and verify, then say what happens next."""
    path = download_weights(args.key, args.dest, args.url)
    print(f"VGG-19 weights ready: {path}")
    if path.parent.resolve() == PRETRAINED_DIR.resolve():
        print("Next: load_vgg_model() will now use them.")
    else:
        print(f"Next: load_vgg_model() looks only in {PRETRAINED_DIR}: move the file there, keeping its name.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
