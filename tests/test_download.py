"""nst.download, nst.sources and `python nst_utils.py download` (nst.cli), against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from http_fixture import UNKNOWN_HOST_URL, PayloadServer, closed_port_url, silent_port_url

import nst.download
from nst.cli import main
from nst.download import DOWNLOAD_CHUNK_BYTES, download_weights
from nst.errors import DownloadError
from nst.sources import WEIGHTS_SOURCES, WeightsSource, checksum_problem, file_digests

PROJECT_DIR = Path(__file__).resolve().parents[1]
SCRIPT = PROJECT_DIR / "nst_utils.py"  # the command line users run
PAYLOAD = np.random.default_rng(0).bytes(300_000)  # ~5 chunks of DOWNLOAD_CHUNK_BYTES
FILENAME = "vgg19_test_weights.h5"
FAST = {"timeout_s": 5, "backoff_s": 0.01, "progress": False}  # keyword arguments that keep tests quick


def make_source(payload: bytes = PAYLOAD, url: str = "http://127.0.0.1:9/unused", **changes) -> WeightsSource:
    fields = {
        "key": "keras",
        "filename": FILENAME,
        "url": url,
        "md5s": (hashlib.md5(payload).hexdigest(),),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "size_bytes": len(payload),
    }
    return WeightsSource(**(fields | changes))


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """A proxy set in the environment must not capture requests to 127.0.0.1."""
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def server():
    srv = PayloadServer(PAYLOAD)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)
    assert not srv.handler_errors


def fetch(server: PayloadServer, dest: Path, **kwargs) -> Path:
    return download_weights(dest_dir=dest, source=make_source(url=server.url), **(FAST | kwargs))


def assert_only_final_file(dest: Path) -> None:
    assert sorted(p.name for p in dest.iterdir()) == [FILENAME]
    assert (dest / FILENAME).read_bytes() == PAYLOAD


def assert_nothing_saved(dest: Path) -> None:
    assert not (dest / FILENAME).exists()
    assert not (dest / f"{FILENAME}.part").exists()


# ---------------------------------------------------------------------------- success and resume


def test_download_verifies_and_moves_into_place(server, tmp_path):
    assert fetch(server, tmp_path) == tmp_path / FILENAME
    assert_only_final_file(tmp_path)
    assert server.range_headers == [None]


def test_existing_part_is_resumed_with_range(server, tmp_path):
    (tmp_path / f"{FILENAME}.part").write_bytes(PAYLOAD[:100_000])
    fetch(server, tmp_path)
    assert_only_final_file(tmp_path)
    assert server.range_headers == ["bytes=100000-"]


def test_connection_dropped_once_is_resumed(server, tmp_path, capsys):
    server.faults = [("close", 100_000)]
    fetch(server, tmp_path)
    assert_only_final_file(tmp_path)
    assert server.range_headers == [None, "bytes=100000-"]
    assert (
        "connection dropped at 0.1 MB of 0.3 MB (connection closed early), resuming (try 2/5)"
        in capsys.readouterr().out
    )


def test_connection_dropped_twice_is_resumed(server, tmp_path, capsys):
    server.faults = [("close", 100_000), ("reset", 200_000)]
    fetch(server, tmp_path)
    assert_only_final_file(tmp_path)
    assert server.range_headers[:2] == [None, "bytes=100000-"]
    assert len(server.range_headers) == 3 and server.range_headers[2].startswith("bytes=")  # after an RST: ≤ 200000
    out = capsys.readouterr().out
    assert "resuming (try 2/5)" in out and "resuming (try 3/5)" in out


def test_stalled_connection_times_out_and_resumes(server, tmp_path, capsys):
    server.faults = [("stall", 150_000)]
    fetch(server, tmp_path, timeout_s=0.3)
    assert_only_final_file(tmp_path)
    whole_chunks = 150_000 // DOWNLOAD_CHUNK_BYTES * DOWNLOAD_CHUNK_BYTES  # the stalled one is lost
    assert server.range_headers == [None, f"bytes={whole_chunks}-"]
    assert "timed out" in capsys.readouterr().out


def test_retries_exhausted_keep_part_and_next_run_resumes(server, tmp_path):
    server.faults = [("close", 50_000), ("close", 100_000), ("close", 150_000)]
    with pytest.raises(
        DownloadError,
        match=r"stopped at 0\.1 MB of 0\.3 MB after 3 tries, the connection kept dropping.*run the same command",
    ):
        fetch(server, tmp_path, max_retries=2)
    assert (tmp_path / f"{FILENAME}.part").stat().st_size == 150_000
    assert not (tmp_path / FILENAME).exists()
    fetch(server, tmp_path)
    assert_only_final_file(tmp_path)
    assert server.range_headers == [None, "bytes=50000-", "bytes=100000-", "bytes=150000-"]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path, capsys):
    server.honour_range = False
    (tmp_path / f"{FILENAME}.part").write_bytes(b"\0" * 100_000)  # wrong bytes: only a clean restart gives the file
    fetch(server, tmp_path)
    assert_only_final_file(tmp_path)
    assert server.range_headers == ["bytes=100000-"]
    assert "ignored the request to resume" in capsys.readouterr().out


def test_complete_part_answered_416_is_verified(server, tmp_path):
    (tmp_path / f"{FILENAME}.part").write_bytes(PAYLOAD)
    fetch(server, tmp_path)
    assert_only_final_file(tmp_path)
    assert server.range_headers == ["bytes=300000-"]


def test_overlong_part_answered_416_restarts_from_zero(server, tmp_path, capsys):
    (tmp_path / f"{FILENAME}.part").write_bytes(PAYLOAD + b"extra")
    fetch(server, tmp_path)
    assert_only_final_file(tmp_path)
    assert server.range_headers == ["bytes=300005-", None]
    assert "not a genuine copy" in capsys.readouterr().out


def test_ctrl_c_keeps_part_and_next_run_resumes(server, tmp_path, monkeypatch, capsys):
    class InterruptingTqdm(nst.download.tqdm):
        def update(self, n=1):
            if self.n + n >= 100_000:  # as if the user pressed Ctrl-C once 100 kB had arrived
                raise KeyboardInterrupt
            return super().update(n)

    monkeypatch.setattr(nst.download, "tqdm", InterruptingTqdm)
    with pytest.raises(KeyboardInterrupt):
        fetch(server, tmp_path)
    part_bytes = (tmp_path / f"{FILENAME}.part").stat().st_size
    assert 100_000 <= part_bytes < len(PAYLOAD)
    assert "run the same command again to resume" in capsys.readouterr().out
    monkeypatch.undo()
    fetch(server, tmp_path)
    assert_only_final_file(tmp_path)
    assert server.range_headers == [None, f"bytes={part_bytes}-"]


def test_existing_valid_file_makes_no_request(server, tmp_path, capsys):
    (tmp_path / FILENAME).write_bytes(PAYLOAD)
    assert fetch(server, tmp_path) == tmp_path / FILENAME
    assert server.range_headers == []
    assert "nothing to download" in capsys.readouterr().out


def test_existing_invalid_file_is_moved_aside_and_replaced(server, tmp_path, capsys):
    (tmp_path / FILENAME).write_bytes(b"my old file")
    fetch(server, tmp_path)
    assert (tmp_path / FILENAME).read_bytes() == PAYLOAD
    assert (tmp_path / f"{FILENAME}.bad").read_bytes() == b"my old file"
    assert f"moved it to {FILENAME}.bad" in capsys.readouterr().out


def test_a_users_bad_file_beside_a_bad_download_is_never_overwritten(server, tmp_path, capsys):
    (tmp_path / FILENAME).write_bytes(b"my old file")
    (tmp_path / f"{FILENAME}.bad").write_bytes(b"moved aside last time")  # the user's, from an earlier run
    fetch(server, tmp_path)
    assert (tmp_path / FILENAME).read_bytes() == PAYLOAD
    assert (tmp_path / f"{FILENAME}.bad").read_bytes() == b"moved aside last time"
    assert (tmp_path / f"{FILENAME}.bad-2").read_bytes() == b"my old file"
    assert f"moved it to {FILENAME}.bad-2" in capsys.readouterr().out
    (tmp_path / FILENAME).write_bytes(b"another bad copy")  # and again: the next free name
    fetch(server, tmp_path)
    assert (tmp_path / f"{FILENAME}.bad").read_bytes() == b"moved aside last time"
    assert (tmp_path / f"{FILENAME}.bad-2").read_bytes() == b"my old file"
    assert (tmp_path / f"{FILENAME}.bad-3").read_bytes() == b"another bad copy"
    assert f"moved it to {FILENAME}.bad-3" in capsys.readouterr().out
    assert (tmp_path / FILENAME).read_bytes() == PAYLOAD


def test_a_dangling_symlink_named_bad_is_not_replaced(server, tmp_path):
    link = tmp_path / f"{FILENAME}.bad"
    link.symlink_to(tmp_path / "elsewhere" / "missing.h5")  # exists() is False for it, but it is the user's
    (tmp_path / FILENAME).write_bytes(b"my old file")
    fetch(server, tmp_path)
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "elsewhere" / "missing.h5")
    assert (tmp_path / f"{FILENAME}.bad-2").read_bytes() == b"my old file"


def test_any_published_release_is_accepted_and_sha256_checked(server, tmp_path):
    other_release = make_source(url=server.url, md5s=("0" * 32, hashlib.md5(PAYLOAD).hexdigest()), sha256="f" * 64)
    download_weights(dest_dir=tmp_path, source=other_release, **FAST)  # sha256 belongs to the first release only
    assert_only_final_file(tmp_path)
    (tmp_path / FILENAME).unlink()
    wrong_sha = make_source(url=server.url, sha256="f" * 64)
    with pytest.raises(DownloadError, match="sha256"):
        download_weights(dest_dir=tmp_path, source=wrong_sha, **FAST)
    assert_nothing_saved(tmp_path)


def test_checksum_problem_names_what_was_found_and_expected(tmp_path):
    path = tmp_path / FILENAME
    path.write_bytes(PAYLOAD)
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    assert checksum_problem(path, make_source()) is None
    assert checksum_problem(path, make_source(md5s=("0" * 32,))) == f"md5 {md5}, expected {'0' * 32}"
    two_releases = make_source(md5s=("0" * 32, "1" * 32))
    assert checksum_problem(path, two_releases) == f"md5 {md5}, expected {'0' * 32} or {'1' * 32}"
    sha256 = hashlib.sha256(PAYLOAD).hexdigest()
    assert checksum_problem(path, make_source(sha256="f" * 64)) == f"sha256 {sha256}, expected {'f' * 64}"
    assert checksum_problem(path, make_source(sha256=None)) is None  # no sha256 published: md5 alone


def test_file_digests_match_hashlib_and_are_cached(tmp_path):
    path = tmp_path / "bytes.bin"
    path.write_bytes(bytes(range(256)) * 10_000)
    md5, sha256 = file_digests(path)
    assert md5 == hashlib.md5(path.read_bytes()).hexdigest()
    assert sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_digests(str(path)) == (md5, sha256)


def test_file_digests_are_recomputed_when_the_file_changes(tmp_path):
    path = tmp_path / "bytes.bin"
    path.write_bytes(b"first")
    first = file_digests(path)
    path.write_bytes(b"second, longer")  # another size: a new cache key even on a coarse-mtime filesystem
    assert file_digests(path) == (
        hashlib.md5(b"second, longer").hexdigest(),
        hashlib.sha256(b"second, longer").hexdigest(),
    )
    assert file_digests(path) != first


def test_percent_progress_bar_is_shown(server, tmp_path, capsys):
    fetch(server, tmp_path, progress=True)
    assert "100%" in capsys.readouterr().err


# ---------------------------------------------------------------------------- failures, one line each


@pytest.mark.parametrize(
    ("content_type", "body", "part_bytes"),
    [
        ("text/html; charset=utf-8", b"<p>Please sign in</p>" * 100, 0),
        ("application/octet-stream", b"\n  <!DOCTYPE html><html><body>Not here</body></html>", 0),
        ("text/html", b"<p>Rate limited</p>" * 100, 1_000),  # an HTML answer to a resume: the .part goes too
    ],
)
def test_html_page_is_refused_and_deleted(server, tmp_path, content_type, body, part_bytes):
    server.payload, server.content_type = body, content_type
    if part_bytes:
        (tmp_path / f"{FILENAME}.part").write_bytes(PAYLOAD[:part_bytes])
    with pytest.raises(DownloadError, match=r"sent an HTML page .*try --url") as error:
        fetch(server, tmp_path)
    assert server.url in str(error.value) and "\n" not in str(error.value)
    assert_nothing_saved(tmp_path)


def test_checksum_mismatch_deletes_part(server, tmp_path):
    server.payload = PAYLOAD[:-1] + b"X"
    with pytest.raises(DownloadError, match=r"not a genuine copy \(md5 .*Deleted .*\.part") as error:
        fetch(server, tmp_path)
    assert "\n" not in str(error.value)
    assert_nothing_saved(tmp_path)


def test_http_404_suggests_a_mirror(server, tmp_path):
    server.status = 404
    with pytest.raises(DownloadError, match=r"answered HTTP 404 .*moved.*--url") as error:
        fetch(server, tmp_path)
    assert server.url in str(error.value)
    assert_nothing_saved(tmp_path)


def test_connection_refused_names_url_and_manual_route(tmp_path):
    sock, url = closed_port_url()
    try:
        with pytest.raises(DownloadError, match=r"cannot reach 127\.0\.0\.1") as error:
            download_weights(dest_dir=tmp_path, source=make_source(url=url), **FAST)
    finally:
        sock.close()
    message = str(error.value)
    assert url in message and "Connection refused" in message and f"save it in {tmp_path} as {FILENAME}" in message
    assert_nothing_saved(tmp_path)


def test_unknown_key_lists_the_known_ones(tmp_path):
    with pytest.raises(DownloadError, match="choose one of keras, matconvnet"):
        download_weights("vgg16", dest_dir=tmp_path)


# ---------------------------------------------------------------------------- command line


@pytest.fixture
def cli_source(server, monkeypatch):
    """Make `download keras` expect the test payload (its checksum); the URL comes from --url."""
    monkeypatch.setitem(WEIGHTS_SOURCES, "keras", make_source(url="http://127.0.0.1:9/unused"))


def test_cli_downloads_and_says_what_next(server, cli_source, tmp_path, capsys):
    assert main(["download", "keras", "--dest", str(tmp_path), "--url", server.url]) == 0
    out, err = capsys.readouterr()
    assert_only_final_file(tmp_path)
    assert f"VGG-19 weights ready: {tmp_path / FILENAME}" in out and "load_vgg_model()" in out
    assert "100%" in err  # the progress bar


def test_cli_error_is_one_line_exit_1(server, cli_source, tmp_path, capsys):
    server.status = 404
    assert main(["download", "--dest", str(tmp_path), "--url", server.url]) == 1  # keras is the default
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "HTTP 404" in err


def test_cli_ctrl_c_exits_130_and_keeps_part(server, cli_source, tmp_path, monkeypatch, capsys):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(nst.download.time, "sleep", interrupt)  # Ctrl-C during the wait before a retry
    server.faults = [("close", 100_000)]
    assert main(["download", "--dest", str(tmp_path), "--url", server.url]) == 130
    assert (tmp_path / f"{FILENAME}.part").stat().st_size == 100_000
    assert "run the same command again to resume" in capsys.readouterr().out


def test_script_entry_point_reports_error_without_traceback(server, tmp_path):
    server.status = 404
    env = os.environ | {"no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "download", "--dest", str(tmp_path), "--url", server.url],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr


# The discard port on 127.0.0.1: nothing listens there on a normal machine, so the connection is refused at once.
UNREACHABLE_URL = "http://127.0.0.1:9/x"


def test_script_unreachable_host_is_one_line_on_stderr_exit_1(tmp_path):
    env = os.environ | {"no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "download", "--url", UNREACHABLE_URL, "--dest", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=PROJECT_DIR,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    assert result.stderr.startswith("error: cannot reach 127.0.0.1:9 "), result.stderr
    assert UNREACHABLE_URL in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_download_command_never_imports_tensorflow(tmp_path):
    # The command as `python nst_utils.py download ...` runs it, in a fresh process; sys.modules is read afterwards.
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['nst_utils.py', 'download', '--url', {UNREACHABLE_URL!r}, '--dest', {str(tmp_path)!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        "print(code, 'nst.cli' in sys.modules, 'nst.download' in sys.modules, "
        "'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    env = os.environ | {"no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env, cwd=PROJECT_DIR
    )
    assert result.returncode == 0, result.stderr
    last_line = result.stdout.strip().splitlines()[-1]
    # 1: the download ran and failed; True True: the command and the downloader were imported, so the check is live
    assert last_line == "1 True True False False", f"exit code, nst.cli, nst.download, tensorflow, keras: {last_line}"


# ---------------------------------------------------------------------------- a stall is not a drop (issue #20, 8)


def test_headers_then_silence_ends_after_one_wait_and_names_no_part(server, tmp_path):
    server.faults, server.stall_s = [("stall", 0)] * 5, 60  # headers, then nothing, longer than the client waits
    with pytest.raises(DownloadError) as error:
        fetch(server, tmp_path, timeout_s=0.5)
    message = str(error.value)
    assert message.startswith(f"{server.url} sent its headers, then no data for 0.5 s: the server stalled; "), message
    assert "dropping" not in message and ".part" not in message and "\n" not in message
    assert server.range_headers == [None], "a silent server is not asked again and again"
    assert_nothing_saved(tmp_path)


def test_a_stalled_resume_names_the_part_that_is_kept(server, tmp_path):
    (tmp_path / f"{FILENAME}.part").write_bytes(PAYLOAD[:100_000])
    server.faults, server.stall_s = [("stall", 100_000)] * 5, 60
    with pytest.raises(
        DownloadError, match=r"no data for 0\.5 s: the server stalled; kept .*\.part \(0\.1 MB"
    ) as error:
        fetch(server, tmp_path, timeout_s=0.5)
    assert error.value.kept_path == tmp_path / f"{FILENAME}.part"
    assert (tmp_path / f"{FILENAME}.part").read_bytes() == PAYLOAD[:100_000], "the kept part is untouched"
    assert server.range_headers == ["bytes=100000-"]


def test_a_server_that_never_answers_is_given_up_after_one_wait(tmp_path):
    sock, url = silent_port_url()
    try:
        with pytest.raises(DownloadError, match=r"gave no answer within 0\.5 s: the server stalled; try again"):
            download_weights(dest_dir=tmp_path / "new", source=make_source(url=url), **(FAST | {"timeout_s": 0.5}))
    finally:
        sock.close()
    assert not (tmp_path / "new").exists()


def test_cli_stall_is_one_line_that_says_stall(server, cli_source, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(nst.download, "DOWNLOAD_TIMEOUT_S", 0.5)
    server.faults, server.stall_s = [("stall", 0)] * 5, 60
    assert main(["download", "--dest", str(tmp_path), "--url", server.url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sent its headers, then no data for 0.5 s: the server stalled" in err, err
    assert list(tmp_path.iterdir()) == [] and server.range_headers == [None]


# ---------------------------------------------------------------------------- --dest (issue #20, 7 and 9)


def _a_file(path: Path) -> Path:
    path.write_text("a user's file\n")
    return path


DEST_PROBLEMS = {  # what is in the way -> (make it, the --dest to pass, words of the one line)
    "--dest is a file": (lambda root: _a_file(root / "notes.txt"), lambda made: made, "notes.txt is a file"),
    "--dest is under a file": (lambda root: _a_file(root / "notes.txt"), lambda made: made / "sub", "is a file"),
    "--dest is a dangling link": (
        lambda root: (root / "link").symlink_to(root / "gone") or root / "link",
        lambda made: made,
        "which does not exist",
    ),
    "the file's name is a folder": (
        lambda root: (root / "d" / FILENAME).mkdir(parents=True) or root / "d",
        lambda made: made,
        "is a folder, not a file",
    ),
    "the .part's name is a FIFO": (
        lambda root: (root / "d").mkdir() or os.mkfifo(root / "d" / f"{FILENAME}.part") or root / "d",
        lambda made: made,
        "not a regular file",
    ),
}


@pytest.mark.parametrize("case", list(DEST_PROBLEMS))
def test_an_unusable_dest_is_one_line_before_any_request(server, cli_source, tmp_path, capsys, case):
    make, dest_of, words = DEST_PROBLEMS[case]
    dest = dest_of(make(tmp_path))
    before = {p: (p.lstat().st_mode, p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*")}
    assert main(["download", "--dest", str(dest), "--url", server.url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err and "Traceback" not in err, err
    assert server.range_headers == [], "checked before any request"
    assert {p: (p.lstat().st_mode, p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*")} == before


def test_script_dest_that_is_a_file_has_no_traceback(tmp_path):
    user_file = _a_file(tmp_path / "notes.txt")
    env = os.environ | {"no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "download", "--dest", str(user_file), "--url", UNREACHABLE_URL],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: {user_file}: cannot be a download folder, {user_file} is a file")
    assert user_file.read_text() == "a user's file\n"


@pytest.mark.parametrize("failure", ["refused", "unknown host", "HTML", "wrong checksum", "404"])
def test_a_failed_download_under_a_missing_parent_leaves_no_folder(server, tmp_path, failure):
    dest = tmp_path / "new" / "deeper" / "weights"
    url = {"refused": UNREACHABLE_URL, "unknown host": UNKNOWN_HOST_URL}.get(failure, server.url)
    if failure == "HTML":
        server.payload, server.content_type = b"<html>sign in</html>", "text/html"
    elif failure == "wrong checksum":
        server.payload = PAYLOAD[:-1] + b"X"  # the whole body arrives, into the folders, before the check
    elif failure == "404":
        server.status = 404
    with pytest.raises(DownloadError) as error:
        download_weights(dest_dir=dest, source=make_source(url=url), **FAST)
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == [], "the folders made for the download are gone with it"
    server.payload, server.content_type, server.status = PAYLOAD, "application/octet-stream", None
    server.faults = [("close", 100_000)] * 3  # but a .part to resume keeps the folders that hold it
    with pytest.raises(DownloadError, match=r"kept .*\.part: run the same command again to resume"):
        download_weights(dest_dir=dest, source=make_source(url=server.url), **(FAST | {"max_retries": 1}))
    assert sorted(p.name for p in dest.iterdir()) == [f"{FILENAME}.part"]


@pytest.mark.parametrize("part_bytes", [0, 100_000])
def test_a_second_download_into_the_same_folder_leaves_the_first_ones_part_alone(server, tmp_path, part_bytes):
    part = tmp_path / f"{FILENAME}.part"
    with open(part, "ab") as first_download:  # another process's download, as it holds its .part
        first_download.write(PAYLOAD[:part_bytes])
        first_download.flush()
        fcntl.flock(first_download.fileno(), fcntl.LOCK_EX)
        with pytest.raises(DownloadError, match=r"another process is downloading .* now; wait for it") as error:
            fetch(server, tmp_path)
        assert "\n" not in str(error.value)
        assert part.read_bytes() == PAYLOAD[:part_bytes], "the other download's .part is neither cut nor deleted"
    assert server.range_headers == [] and sorted(p.name for p in tmp_path.iterdir()) == [part.name]
    fetch(server, tmp_path)  # once the first has let go, the next run goes on from its .part
    assert_only_final_file(tmp_path)


@pytest.mark.parametrize("url", ["http://[::1", "vgg19.h5", "127.0.0.1/weights.h5"])
def test_a_url_that_is_no_url_is_one_line_naming_it(tmp_path, capsys, url):
    assert main(["download", "--dest", str(tmp_path / "new"), "--url", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {url} is not a URL ("), err
    assert err.count("\n") == 1 and "an https:// link" in err and not (tmp_path / "new").exists()
