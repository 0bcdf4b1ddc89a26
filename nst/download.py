"""The weights downloader: resumable, verified, and it never replaces a file of the user's. No TensorFlow here."""

from __future__ import annotations

import http.client
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from nst.errors import DownloadError
from nst.paths import PRETRAINED_DIR
from nst.sources import WEIGHTS_SOURCES, WeightsSource, checksum_problem

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
        problem = checksum_problem(final_path, source)
        if problem is None:
            _note(f"{final_path} is already here and its checksum matches: nothing to download.")
            return final_path
        bad_path = _unused_name(final_path.with_name(final_path.name + ".bad"))
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
            problem = checksum_problem(part_path, source)
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


def _unused_name(path: Path) -> Path:
    """`path`, or `path`-2, `path`-3, ... : the first name that no file has, so nothing of the user's is replaced."""
    candidate, n = path, 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


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
