"""The weights downloader: resumable, verified, and it never replaces a file of the user's. No TensorFlow here.

`fetch_on_first_use` is what weights=None does when pretrained-model/ holds no weights file: Keras's VGG-19 fetched
now, or, when that cannot be done (offline, a proxy's page, a wrong checksum), one notice and random features.
"""

from __future__ import annotations

import fcntl
import http.client
import os
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from nst.errors import DownloadError
from nst.paths import PRETRAINED_DIR, path_kind
from nst.sources import MIRROR_ENV, WeightsSource, checksum_problem, weights_source

# The standard library's urllib rather than `requests`: requests is not a declared dependency (only a transitive one
# of jupyterlab), and one streamed GET with a Range header needs nothing urllib lacks (it follows redirects and keeps
# the Range header across them).

DOWNLOAD_CHUNK_BYTES = 64 * 1024  # unit of streaming, writing and progress updates
DOWNLOAD_TIMEOUT_S = 30.0  # `download`: a server silent this long (no answer, or no data) ends a try
FIRST_USE_TIMEOUT_S = 10.0  # a run without weights waits at most this long for a server that does not answer
FIRST_USE_KEY = "keras"  # the file weights=None fetches: Keras's VGG-19, 80 MB
# A connection that breaks after the server has started answering: the .part is resumed with a Range request. (A
# connection refused or an unknown host fails at once instead: urllib reports those as URLError before any response.
# A server that goes silent is a stall, told apart from a drop: see _Stalled.)
_CONNECTION_DROPS = (http.client.IncompleteRead, ConnectionError, ssl.SSLError)
_first_use: dict[Path, Path | None] = {}  # folder -> what fetch_on_first_use gave: a batch fetches (or fails) once


class _Stalled(Exception):
    """The server went silent after `received_bytes` of this try; `what` it did, in words with the time waited."""

    def __init__(self, received_bytes: int, what: str):
        super().__init__(what)
        self.received_bytes = received_bytes
        self.what = what  # "gave no answer within 10 s", "sent its headers, then no data for 10 s", ...


def download_weights(
    key: str = "keras",
    dest_dir: str | os.PathLike[str] = PRETRAINED_DIR,
    url: str | None = None,
    *,
    source: WeightsSource | None = None,
    progress: bool = True,
    progress_file=None,
    timeout_s: float | None = None,
    max_retries: int = 4,
    backoff_s: float = 1.0,
) -> Path:
    """Download weights `key` into `dest_dir`, resuming any `.part` left there; verify the checksum; return the path.

    `url` replaces the published URL (a mirror; else $NST_WEIGHTS_URL for Keras's); `source` replaces the
    WEIGHTS_SOURCES entry (tests, other files). A server silent for `timeout_s` (default DOWNLOAD_TIMEOUT_S) from the
    start of a try ends the download; a dropped connection, or a stall after data arrived, is resumed up to
    `max_retries` times, after `backoff_s`, 2 * `backoff_s`, ... seconds. The progress bar goes to `progress_file`
    (default stderr). The `.part` is locked while it is written: a second process downloading into the same folder is
    refused at once instead of writing into it.
    Raises DownloadError (one-line message with the fix), having checked `dest_dir` before any request and left no
    folder it made; on Ctrl-C keeps the `.part` for the next run and re-raises.
    """
    source = source or weights_source(key)
    url = url or source.url
    dest_dir = Path(dest_dir).expanduser().absolute()
    final_path = dest_dir / source.filename
    part_path = final_path.with_name(final_path.name + ".part")  # never a name the loader looks for
    _check_dest(dest_dir, final_path, part_path)
    if _genuine_copy_at(final_path, source):
        return final_path
    made_dirs = _make_dirs(dest_dir)
    try:
        part_file = _locked_part(part_path, source)
    except BaseException:
        _remove_made_dirs(made_dirs)
        raise
    download = _Download(url, source, part_file, part_path, timeout_s, progress, progress_file)
    with part_file:
        try:
            if not _genuine_copy_at(final_path, source):  # another process may have finished it since
                _move_aside_if_there(final_path, source)
                download.run(max_retries, backoff_s)
                os.replace(part_path, final_path)  # same folder, so atomic: the final name only holds a verified file
        except KeyboardInterrupt:
            download.close_bar()
            if kept := _kept_part(part_path):
                _note(
                    f"interrupted: kept {kept} ({_file_size(kept) / 1e6:.1f} MB); run the same command again to resume."
                )
            else:
                _remove_made_dirs(made_dirs)
                _note("interrupted before any data arrived.")
            raise
        except DownloadError:
            if not _kept_part(part_path):
                _remove_made_dirs(made_dirs)
            raise
        finally:
            download.close_bar()
    _kept_part(part_path)  # the empty one made for the lock, where another process had finished the file
    return final_path


def _genuine_copy_at(final_path: Path, source: WeightsSource) -> bool:
    """Whether `final_path` holds a genuine copy already (said in one line)."""
    if final_path.is_file() and checksum_problem(final_path, source) is None:
        _note(f"{final_path} is already here and its checksum matches: nothing to download.")
        return True
    return False


def _move_aside_if_there(final_path: Path, source: WeightsSource) -> None:
    """A file at `final_path` that is not a genuine copy moved to a `.bad` name no file has: the user's bytes kept."""
    if final_path.exists():
        problem = checksum_problem(final_path, source)
        bad_path = _unused_name(final_path.with_name(final_path.name + ".bad"))
        os.replace(final_path, bad_path)  # keep the user's bytes, but out of the loader's way
        _note(f"{final_path.name} is here but is not a genuine copy ({problem}): moved it to {bad_path.name}.")


def _locked_part(part_path: Path, source: WeightsSource):
    """`part_path` opened for appending, with an exclusive lock; DownloadError if another process holds it."""
    try:
        part_file = open(part_path, "ab")  # noqa: SIM115 (closed by download_weights, which holds the lock)
    except OSError as err:
        raise DownloadError(
            f"cannot write {part_path}: {err.strerror or err}; fix the folder's permissions or pass --dest with "
            "another folder",
            reason=f"cannot write {part_path} ({err.strerror or err})",
        ) from None
    try:
        fcntl.flock(part_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        part_file.close()
        raise DownloadError(
            f"another process is downloading {source.filename} into {part_path.parent} now; wait for it to finish "
            "(the next run uses the file), or stop it and run the same command again to resume",
            reason=f"another process is downloading it into {part_path.parent} now",
        ) from None
    return part_file


class _Download:
    """One download into a locked `.part`: its tries, its progress bar, and what it says."""

    def __init__(self, url, source, part_file, part_path, timeout_s, progress, progress_file):
        self.url, self.source, self.part_file, self.part_path = url, source, part_file, part_path
        self.timeout_s = DOWNLOAD_TIMEOUT_S if timeout_s is None else timeout_s
        self.progress, self.progress_file = progress, progress_file
        self.host = _host(url)
        self.bar = None
        self.total_bytes = source.size_bytes  # a hint until the server says

    def run(self, max_retries: int, backoff_s: float) -> None:
        """Tries until the .part holds a verified copy; DownloadError when it cannot."""
        resume_bytes = self.size_bytes()
        action = f"resuming at {resume_bytes / 1e6:.1f} MB" if resume_bytes else "downloading"
        _note(f"{action} {self.source.filename} from {self.url} into {self.part_path.parent}")
        tries, restarted = 1, False
        while True:
            try:
                complete = self.attempt()
            except (_Stalled, *_CONNECTION_DROPS) as err:
                stalled = isinstance(err, _Stalled)
                if stalled and err.received_bytes == 0:  # silent from the start of this try: waiting longer won't help
                    kept = _kept_part(self.part_path)
                    resume = f"; kept {kept} ({self.got()}): run the same command again to resume" if kept else ""
                    raise DownloadError(
                        f"{self.url} {err.what}: the server stalled{resume}; try again later, or try --url with a "
                        "mirror.",
                        reason=f"{self.host} {err.what}",
                        kept_path=kept,
                    ) from None
                why = f"timed out: it {err.what}" if stalled else _reason(err)
                if tries > max_retries:
                    kept = _kept_part(self.part_path)
                    resume = f"kept {kept}: run the same command again to resume" if kept else "nothing was kept"
                    kept_going = "the server kept stalling" if stalled else "the connection kept dropping"
                    raise DownloadError(
                        f"download of {self.url} stopped at {self.got()} after {tries} tries, {kept_going} ({why}); "
                        f"{resume}.",
                        reason=f"the download from {self.host} stopped at {self.got()}, {kept_going}",
                        kept_path=kept,
                    ) from None
                tries += 1
                what = "stalled" if stalled else "connection dropped"
                _note(f"{what} at {self.got()} ({why}), resuming (try {tries}/{max_retries + 1})")
                time.sleep(backoff_s * 2 ** (tries - 2))
                continue
            problem = checksum_problem(self.part_path, self.source)
            if problem is None:
                return
            self.part_file.truncate(0)  # it cannot be resumed into a good file
            if not complete and not restarted:  # the server said the .part is whole (HTTP 416) but it is not the file
                _note(
                    f"{self.part_path.name} is as long as the file but not a genuine copy ({problem}): starting again."
                )
                restarted = True
                continue
            raise DownloadError(
                f"{self.source.filename} from {self.url} is not a genuine copy ({problem}): the download is corrupt or "
                f"the URL serves another file. Deleted {self.part_path.name} (it cannot be resumed into a good file); "
                "run the same command again, or try --url with another mirror.",
                reason=f"the file from {self.host} is not a genuine copy ({problem})",
            )

    def attempt(self) -> bool:
        """One GET appended to the .part from its current size; False if the server says it is whole (HTTP 416)."""
        url, part_path, source = self.url, self.part_path, self.source
        offset = self.size_bytes()
        try:
            request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
            response, first_chunk = _open_within(request, self.timeout_s)
        except urllib.error.HTTPError as err:
            err.close()
            if err.code == 416 and offset:
                return False  # "range not satisfiable": the .part already holds the whole file, or more
            raise DownloadError(
                _http_error_message(url, err.code, err.reason, part_path, source),
                reason=f"{self.host} answered HTTP {err.code} {err.reason}",
                kept_path=_kept_part(part_path),
            ) from None
        except ValueError as err:  # not a URL at all (a typo in --url or $NST_WEIGHTS_URL)
            raise DownloadError(
                f"{url} is not a URL ({_reason(err)}); pass --url (or set {MIRROR_ENV} to) an https:// link to "
                f"{source.filename}",
                reason=f"{url} is not a URL ({_reason(err)})",
                kept_path=_kept_part(part_path),
            ) from None
        except urllib.error.URLError as err:
            reason = err.reason
            raise DownloadError(
                _unreachable_message(url, reason, part_path, source),
                reason=f"cannot reach {self.host} ({_reason(reason)})",
                kept_path=_kept_part(part_path),
            ) from None
        with response:
            length = _int_or_none(response.headers.get("Content-Length"))
            if response.status == 206:  # partial content: the file from byte `start` on
                start, file_bytes = _parse_content_range(response.headers.get("Content-Range", ""))
                if start is None or start > offset:
                    raise DownloadError(
                        f"{url} answered a resume request (Range: bytes={offset}-) with an unusable Content-Range "
                        f"{response.headers.get('Content-Range')!r}; delete {part_path} and run the same command "
                        "again.",
                        reason=f"{self.host} cannot resume the download",
                        kept_path=_kept_part(part_path),
                    )
                offset = start
            else:  # 200: the whole file
                if offset:
                    _note("the server ignored the request to resume (HTTP Range): starting again from zero.")
                offset, file_bytes = 0, length
            expected_end = offset + length if length is not None else file_bytes
            html_sign = _html_sign(response.headers.get("Content-Type", ""), first_chunk if offset == 0 else b"")
            if html_sign:
                self.part_file.truncate(0)
                raise DownloadError(
                    f"{url} sent an HTML page ({html_sign}), not {source.filename}: the link leads to a web page "
                    f"(error, login or redirect page). Deleted {part_path.name}; try --url with a direct link to the "
                    f"file, or download it in a browser and save it in {part_path.parent} as {source.filename}.",
                    reason=f"{self.host} sent an HTML page ({html_sign}), not the file",
                )
            done = offset
            self.part_file.truncate(offset)  # to zero when the server restarted; appends go to the end from here
            self.show_progress(done, file_bytes)
            chunk = first_chunk
            while chunk:
                try:
                    self.part_file.write(chunk)
                    self.part_file.flush()
                except OSError as err:
                    raise DownloadError(
                        f"cannot write {part_path}: {err.strerror or err}; free some disk space or pass --dest with "
                        "another folder, then run the same command again to resume.",
                        reason=f"cannot write {part_path} ({err.strerror or err})",
                        kept_path=_kept_part(part_path),
                    ) from None
                done += len(chunk)
                self.show_progress(done, file_bytes)
                try:
                    chunk = response.read(DOWNLOAD_CHUNK_BYTES)
                except TimeoutError:
                    raise _Stalled(done - offset, f"sent no data for {self.timeout_s:g} s") from None
        if expected_end is not None and done < expected_end:  # http.client returns b"" when a server closes early
            raise http.client.IncompleteRead(b"", expected_end - done)
        return True

    def size_bytes(self) -> int:
        return os.fstat(self.part_file.fileno()).st_size

    def got(self) -> str:
        of_total = f" of {self.total_bytes / 1e6:.1f} MB" if self.total_bytes else ""
        return f"{self.size_bytes() / 1e6:.1f} MB{of_total}"

    def show_progress(self, done_bytes: int, file_bytes: int | None) -> None:
        self.total_bytes = file_bytes or self.total_bytes
        if self.bar is None:
            self.bar = tqdm(
                total=self.total_bytes,
                initial=done_bytes,
                unit="B",
                unit_scale=True,
                disable=not self.progress,
                file=self.progress_file,
            )
        self.bar.total = self.total_bytes
        self.bar.update(done_bytes - self.bar.n)  # negative when the server made us start again from zero

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fetch_on_first_use(dest_dir: str | os.PathLike[str] | None = None, once_per_process: bool = True) -> Path | None:
    """Keras's VGG-19 fetched into `dest_dir` (default pretrained-model/) now, resuming a .part, from $NST_WEIGHTS_URL
    where set; None when it cannot be had, after one line on stderr that says why and how to fetch it later.

    A server that does not answer is given FIRST_USE_TIMEOUT_S. `once_per_process`: what the first call gave is the
    answer for the rest of the process (a command: the runs of a batch wait for the network once); without it every
    call tries again (the notebook's model cell, run again once the network is back). The progress bar goes to
    stdout, where a headless run shows its own."""
    dest_dir = Path(PRETRAINED_DIR if dest_dir is None else dest_dir).expanduser().absolute()
    earlier = _first_use.get(dest_dir, False)
    if once_per_process and earlier is not False and (earlier is None or earlier.is_file()):
        return earlier
    source = weights_source(FIRST_USE_KEY)
    size = f"{source.size_bytes / 1e6:.0f} MB" if source.size_bytes else "the file"
    _note(f"No VGG-19 weights in {dest_dir} yet: fetching Keras's ({size}) once, now (NST_WEIGHTS=random skips this).")
    try:
        path = download_weights(
            source=source, dest_dir=dest_dir, timeout_s=FIRST_USE_TIMEOUT_S, progress_file=sys.stdout
        )
    except DownloadError as err:
        print(first_use_notice(err, dest_dir, size), file=sys.stderr, flush=True)
        path = None
    _first_use[dest_dir] = path
    return path


def first_use_notice(error: DownloadError, dest_dir: Path, size: str) -> str:
    """The one line that says a run goes on with random features: why, what was kept, and how to fetch later."""
    kept = f"; {error.kept_path} is kept and the next run resumes it" if error.kept_path else ""
    return (
        f"note: this run uses random features, not the pretrained VGG-19: {error.reason}{kept}. Fetch the weights "
        f"later with `make weights` ({size} into {dest_dir}), or set {MIRROR_ENV} to a mirror's URL"
    )


def _open_within(request: urllib.request.Request, timeout_s: float):
    """(response, its first chunk) for `request`, within about `timeout_s` of wall time, or _Stalled.

    The socket's own timeout bounds each connect and read, but not the name lookup; so the request is opened in a
    thread and given up a second after `timeout_s` (the thread closes what it opened if it finishes later)."""
    outcome: dict = {}
    lock, finished, abandoned = threading.Lock(), threading.Event(), threading.Event()

    def open_and_read() -> None:
        response = None
        try:
            response = urllib.request.urlopen(request, timeout=timeout_s)
            outcome["headers"] = True
            outcome["value"] = (response, response.read(DOWNLOAD_CHUNK_BYTES))
        except TimeoutError:  # connected, then silent (a timeout while connecting is a URLError)
            outcome["error"] = _Stalled(0, _silence(outcome, timeout_s))
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err
        with lock:
            finished.set()
            late = abandoned.is_set()
        if late and response is not None:
            response.close()

    threading.Thread(target=open_and_read, name="nst-download-open", daemon=True).start()
    try:
        finished.wait(timeout_s + 1.0)  # the socket's own timeouts, more telling, come first
    finally:
        with lock:
            if not finished.is_set():
                abandoned.set()
    if abandoned.is_set():
        raise _Stalled(0, _silence(outcome, timeout_s))
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _silence(outcome: dict, timeout_s: float) -> str:
    """How a server that went silent before its first data did so."""
    if outcome.get("headers"):
        return f"sent its headers, then no data for {timeout_s:g} s"
    return f"gave no answer within {timeout_s:g} s"


def _check_dest(dest_dir: Path, final_path: Path, part_path: Path) -> None:
    """DownloadError in one line unless `dest_dir` is, or can be made, a writable folder, and the file's two names in
    it are free or regular files. Makes nothing: the folders are made when the first data arrives."""
    for folder in (dest_dir, *dest_dir.parents):
        problem = path_kind(folder)
        if problem is not None and problem != "a folder":
            raise DownloadError(
                f"{dest_dir}: cannot be a download folder, {folder} is {problem}; pass --dest with a folder",
                reason=f"{dest_dir} cannot be a folder ({folder} is {problem})",
            )
        if problem == "a folder":
            break
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DownloadError(
            f"{dest_dir}: cannot save there, {folder} is not writable; fix its permissions or pass --dest with "
            "another folder",
            reason=f"cannot write into {folder}",
        )
    for path in (final_path, part_path):
        problem = path_kind(path)
        if problem not in (None, "a file"):
            raise DownloadError(
                f"{path}: is {problem}, not a file, and has the name the download needs; move it away, or pass "
                "--dest with another folder",
                reason=f"{path} is {problem}",
            )


def _make_dirs(folder: Path) -> list[Path]:
    """Make `folder` and its missing parents; returns those made, deepest last."""
    missing = [path for path in (folder, *folder.parents) if not path.is_dir()][::-1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        made = [path for path in missing if path.is_dir()]
        _remove_made_dirs(made)
        raise DownloadError(
            f"cannot make {folder} ({err.strerror or err}); pass --dest with another folder",
            reason=f"cannot make {folder} ({err.strerror or err})",
        ) from None
    return missing


def _remove_made_dirs(made_dirs: list[Path]) -> None:
    """Remove the folders this download made (deepest first), where they are still empty."""
    for folder in reversed(made_dirs):
        try:
            folder.rmdir()
        except OSError:
            return


def _kept_part(part_path: Path) -> Path | None:
    """`part_path` if it holds data to resume from; an empty one is deleted (None)."""
    if _file_size(part_path):
        return part_path
    part_path.unlink(missing_ok=True)
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
    host = _host(url)
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


def _host(url: str) -> str:
    """The host and port of `url` for a message; the URL itself where it has none (or is no URL)."""
    try:
        return urllib.parse.urlsplit(url).netloc or url
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return url


def _reason(err: object) -> str:
    """Short text for an exception: its OS message where it has one ('Connection refused', 'timed out')."""
    if isinstance(err, http.client.IncompleteRead):
        return "connection closed early"
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def _note(message: str) -> None:
    """Tell the user what the downloader is doing, without breaking a progress bar."""
    tqdm.write(message, file=sys.stdout)
