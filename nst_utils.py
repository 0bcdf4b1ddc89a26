"""Plumbing for the neural-style-transfer notebook: VGG-19 weights, the model, images, runs and display.

The costs (content, Gram, style, total) are *not* here: they live in the notebook, where they are taught.
Importing this module has no side effects: no downloads, no seeds, no plotting settings.

Command line:
    python nst_utils.py download [keras|matconvnet]   # fetch real VGG-19 weights into pretrained-model/
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import http.client
import os
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

# ============================================================================ Paths, constants, errors

PROJECT_DIR = Path(__file__).resolve().parent
PRETRAINED_DIR = PROJECT_DIR / "pretrained-model"
IMAGES_DIR = PROJECT_DIR / "images"
OUTPUT_DIR = PROJECT_DIR / "output"

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
