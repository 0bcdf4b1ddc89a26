"""The weights a command runs on, end to end: weights=None fetches Keras's file on first use (once), goes on with
random features when it cannot (one line on stderr, a bounded wait), and a file that is no weights file is refused
in one line before any kernel starts, leaving no folder.

The weights are the tiny synthetic .h5 of tests/synthetic_weights.py, served on 127.0.0.1 through NST_WEIGHTS_URL
(the `weights_server` fixture of conftest.py); no test reaches the internet.
"""

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import synthetic_weights as sw
from conftest import MIRROR_ENV
from http_fixture import UNKNOWN_HOST_URL, closed_port_url, silent_port_url
from test_batch import make_image, make_style
from test_cli_failures import loud_environment, nst_cli, snapshot, the_one_error_line

import nst.download
import nst.headless
from nst import cli, video_cli
from nst.images import save_image
from nst.sources import WEIGHTS_SOURCES
from nst.video_synthetic import moving_square_frames

SMALL = ["-p", "max_side_px", "48", "-p", "iterations", "1", "-p", "save_every", "1"]
RUN_TIMEOUT_S = 600  # a kernel's start and one iteration, on a busy machine
NOTE = "note: this run uses random features, not the pretrained VGG-19: "


def run_environment(tmp_path: Path) -> dict:
    """This process's environment (the weights_server fixture's settings in it), with TensorFlow as loud as it gets."""
    default_output = tmp_path / "default-output"
    default_output.mkdir(parents=True, exist_ok=True)
    return loud_environment(default_output)


def stylise(tmp_path: Path, *args: str, env: dict | None = None):
    """`stylise` at a tiny size into tmp_path/output; returns the finished process and the output root."""
    root = tmp_path / "output"
    done = nst_cli(
        "stylise", *SMALL, *args, "--output-root", str(root), env=env or run_environment(tmp_path), timeout_s=600
    )
    return done, root


def params_of_the_run(root: Path) -> dict:
    (run_dir,) = [path for path in root.iterdir() if path.is_dir()]
    return json.loads((run_dir / "params.json").read_text())


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------------------- first use: fetched once, then used


@pytest.mark.slow
def test_a_first_stylise_fetches_the_weights_once_and_runs_on_them(weights_server, tmp_path):
    done, root = stylise(tmp_path / "first")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == "", "a fetch that works says so on stdout only"
    assert "fetching Keras's" in done.stdout and str(weights_server.pretrained_dir) in done.stdout
    assert params_of_the_run(root)["weights"] == f"Keras h5: {weights_server.fetched_path}"
    assert files_in(weights_server.pretrained_dir) == [weights_server.fetched_path.name]
    assert weights_server.requests == 1

    again, root = stylise(tmp_path / "second")
    assert again.returncode == 0 and again.stderr == "", again.stderr[-3000:]
    assert params_of_the_run(root)["weights"] == f"Keras h5: {weights_server.fetched_path}"
    assert weights_server.requests == 1, "the second run reads the file the first one fetched"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["-p weights random", "NST_WEIGHTS=random"])
def test_random_weights_make_no_request(weights_server, tmp_path, how):
    env = run_environment(tmp_path)
    args = ["-p", "weights", "random"] if how == "-p weights random" else []
    if how == "NST_WEIGHTS=random":
        env["NST_WEIGHTS"] = "random"
    done, root = stylise(tmp_path, *args, env=env)
    assert done.returncode == 0 and done.stderr == "", done.stderr[-3000:]
    assert params_of_the_run(root)["weights"].startswith("random-feature VGG-19")
    assert weights_server.requests == 0 and not weights_server.pretrained_dir.exists()


# ---------------------------------------------------------------------------- offline: random features, one line


def _offline(category: str, server, monkeypatch, sockets: list) -> str:
    """Make the weights URL fail the way `category` says; returns the words the notice must hold."""
    if category == "unknown host":
        monkeypatch.setenv(MIRROR_ENV, UNKNOWN_HOST_URL)
        return "cannot reach vgg19-weights.invalid"
    if category == "refused connection":
        sock, url = closed_port_url()
        sockets.append(sock)
        monkeypatch.setenv(MIRROR_ENV, url)
        return "Connection refused"
    if category == "stalled server":
        server.faults, server.stall_s = [("stall", 0)] * 5, 120  # headers, then silence, longer than a run waits
        return "sent its headers, then no data for 10 s"
    if category == "HTML reply":
        server.payload, server.content_type = b"<!DOCTYPE html><html>Sign in to the proxy</html>", "text/html"
        return "sent an HTML page"
    if category == "wrong checksum":
        server.payload = server.payload[:-1] + b"X"
        return "is not a genuine copy (md5"
    raise AssertionError(category)


@pytest.mark.slow
@pytest.mark.parametrize(
    "category", ["unknown host", "refused connection", "stalled server", "HTML reply", "wrong checksum"]
)
def test_offline_the_run_goes_on_with_random_features_and_one_line(weights_server, tmp_path, monkeypatch, category):
    sockets: list[socket.socket] = []
    try:
        words = _offline(category, weights_server.server, monkeypatch, sockets)
        done, root = stylise(tmp_path)
    finally:
        for sock in sockets:
            sock.close()
    assert done.returncode == 0, done.stderr[-3000:]
    line = done.stderr.removesuffix("\n")
    assert "\n" not in line and line.startswith(NOTE) and words in line, done.stderr
    assert "`make weights`" in line and MIRROR_ENV in line, line
    assert params_of_the_run(root)["weights"].startswith("random-feature VGG-19")
    assert files_in(weights_server.pretrained_dir) == [], "no .part or folder left by a download that never started"


def test_a_dropped_download_keeps_its_part_names_it_and_the_next_run_resumes(weights_server, monkeypatch, capsys):
    monkeypatch.setattr(nst.download.time, "sleep", lambda seconds: None)  # no pauses between the tries
    server = weights_server.server
    server.faults = [("close", 100_000)] * 5  # each try ends at the same byte: no progress after the first
    assert nst.download.fetch_on_first_use() is None
    part = weights_server.fetched_path.with_name(weights_server.fetched_path.name + ".part")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(NOTE) and f"{part} is kept and the next run resumes it" in err
    assert files_in(weights_server.pretrained_dir) == [part.name] and part.stat().st_size == 100_000
    nst.download._first_use.clear()  # the next run is another process
    server.faults = []
    assert nst.download.fetch_on_first_use() == weights_server.fetched_path
    assert server.range_headers[-1] == "bytes=100000-"


@pytest.mark.parametrize("silence", ["headers, then nothing", "no answer", "a name lookup that hangs"])
def test_a_silent_network_is_waited_for_once_and_briefly(weights_server, monkeypatch, capsys, silence):
    monkeypatch.setattr(nst.download, "FIRST_USE_TIMEOUT_S", 1.0)
    sockets = []
    if silence == "headers, then nothing":
        weights_server.server.faults, weights_server.server.stall_s = [("stall", 0)] * 5, 120
    elif silence == "no answer":
        sock, url = silent_port_url()
        sockets.append(sock)
        monkeypatch.setenv(MIRROR_ENV, url)
    else:
        monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: time.sleep(20))
        monkeypatch.setenv(MIRROR_ENV, UNKNOWN_HOST_URL)
    start_s = time.monotonic()
    try:
        assert nst.download.fetch_on_first_use() is None
    finally:
        for sock in sockets:
            sock.close()
    assert time.monotonic() - start_s < 10, "the wait is capped near FIRST_USE_TIMEOUT_S"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(NOTE), err
    assert weights_server.requests <= 1 and files_in(weights_server.pretrained_dir) == []
    assert nst.download.fetch_on_first_use() is None and capsys.readouterr().err == "", "asked once per process"


# ---------------------------------------------------------------------------- a batch, a sweep and a video fetch once


class NoKernel:
    """Stands in for nst.headless.execute_notebook: records the parameters each run's kernel would get."""

    def __init__(self):
        self.parameters = []

    def __call__(self, notebook_path, run_dir, parameters, memory):
        self.parameters.append(parameters)
        save_image(run_dir / "final.png", np.full((32, 32, 3), 0.5, np.float32))


@pytest.mark.parametrize("offline", [False, True])
def test_a_batch_fetches_once_before_its_runs(weights_server, tmp_path, monkeypatch, capsys, offline):
    monkeypatch.setattr(nst.headless, "execute_notebook", no_kernel := NoKernel())
    sockets = []
    if offline:
        sock, url = closed_port_url()
        sockets.append(sock)
        monkeypatch.setenv(MIRROR_ENV, url)
    for name, colour in (("a.png", "navy"), ("b.png", "orange"), ("c.png", "white")):
        make_image(tmp_path / "photos" / name, colour)
    style = make_style(tmp_path / "waves.png")
    args = ["stylise", "--content", str(tmp_path / "photos"), "--style", str(style), *SMALL]
    try:
        assert cli.main([*args, "--batch-dir", str(tmp_path / "batch")]) == 0
    finally:
        for sock in sockets:
            sock.close()
    expected = "random" if offline else str(weights_server.fetched_path)
    assert [parameters["weights"] for parameters in no_kernel.parameters] == [expected] * 3
    assert weights_server.requests == (0 if offline else 1)
    err = capsys.readouterr().err
    assert err.count(NOTE) == (1 if offline else 0), err


def test_the_video_command_fetches_before_its_kernel(weights_server, tmp_path, monkeypatch):
    monkeypatch.setattr(nst.headless, "execute_notebook", no_kernel := NoKernel())
    frames = tmp_path / "frames"
    for index, frame in enumerate(moving_square_frames(3, 48, 64, 16, 2)):
        save_image(frames / f"frame_{index:03d}.png", frame)
    style = make_style(tmp_path / "waves.png")
    video_cli.stylise_video(frames, style, {"max_side_px": 48}, tmp_path / "output")
    (parameters,) = no_kernel.parameters
    assert parameters["weights"] == str(weights_server.fetched_path) and weights_server.requests == 1


# ---------------------------------------------------------------------------- no weights file: refused, no folder


def _bad_weights(kind: str, folder: Path, files: dict, published_name: bool = False) -> Path:
    """Something that is no weights file, of one kind, in `folder`: under the published file's name (for a
    pretrained-model/ that a run searches), or under a name of the user's (passed with -p weights)."""
    source = WEIGHTS_SOURCES["matconvnet" if kind.endswith("mat") else "keras"]
    path = folder / (source.filename if published_name else f"my_weights{Path(source.filename).suffix}")
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "empty h5":
        path.write_bytes(b"")
    elif kind == "PNG renamed h5":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    elif kind == "truncated h5":
        sw.write_truncated(path, files["h5"], keep_fraction=0.5)
    elif kind == "HTML saved as h5":
        sw.write_html(path)
    elif kind == "VGG-16 h5":
        sw.write_vgg16_h5(path)
    elif kind == "truncated mat":
        sw.write_truncated(path, files["current"], keep_fraction=0.9)
    elif kind == "folder named h5":
        path.mkdir()
    elif kind == "dangling link h5":
        path.symlink_to(folder / "moved-away.h5")
    elif kind == "FIFO named h5":
        os.mkfifo(path)
    else:
        raise AssertionError(kind)
    return path


BAD_WEIGHTS = [
    "empty h5",
    "PNG renamed h5",
    "truncated h5",
    "HTML saved as h5",
    "VGG-16 h5",
    "truncated mat",
    "dangling link h5",
    "FIFO named h5",
]


def assert_refused_before_any_kernel(done, tmp_path: Path, before: dict, path: Path) -> str:
    """Exit 1, one line naming the file, nothing made or changed under tmp_path; returns the line."""
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]
    line = the_one_error_line(done.stderr)
    assert str(path) in line and "Traceback" not in line, line
    assert snapshot(tmp_path) == before, "a refused run made, changed or removed a file or folder"
    return line


@pytest.mark.parametrize("kind", BAD_WEIGHTS)
def test_a_weights_file_that_is_no_weights_file_is_refused_before_any_kernel(weights_server, tmp_path, files, kind):
    path = _bad_weights(kind, tmp_path / "mine", files)
    env = run_environment(tmp_path)
    before = snapshot(tmp_path)
    done = nst_cli("stylise", *SMALL, "-p", "weights", str(path), "--output-root", str(tmp_path / "output"), env=env)
    assert_refused_before_any_kernel(done, tmp_path, before, path)
    assert weights_server.requests == 0


@pytest.mark.parametrize("kind", ["empty h5", "PNG renamed h5", "truncated h5"])
@pytest.mark.parametrize("where", ["pretrained-model/", "a batch", "a sweep", "the video command"])
def test_a_bad_weights_file_is_refused_on_every_path_before_any_folder(weights_server, tmp_path, files, kind, where):
    in_pretrained = where == "pretrained-model/"
    folder = weights_server.pretrained_dir if in_pretrained else tmp_path / "mine"
    path = _bad_weights(kind, folder, files, published_name=in_pretrained)
    make_image(tmp_path / "photos" / "a.png", "navy")
    make_image(tmp_path / "photos" / "b.png", "orange")
    style = make_style(tmp_path / "waves.png")
    env = run_environment(tmp_path)
    before = snapshot(tmp_path)
    output = ["--output-root", str(tmp_path / "output")]
    if where == "pretrained-model/":
        done = nst_cli("stylise", *SMALL, "--style", str(style), *output, env=env)
    elif where == "a batch":
        done = nst_cli("stylise", "--content", str(tmp_path / "photos"), "--style", str(style), *SMALL,
                       "-p", "weights", str(path), *output, env=env)  # fmt: skip
    elif where == "a sweep":
        done = nst_cli("stylise", "--style", str(style), *SMALL, "--sweep", f"weights=random,{path}", *output, env=env)
    else:
        frames = tmp_path / "frames"
        for index, frame in enumerate(moving_square_frames(3, 48, 64, 16, 2)):
            save_image(frames / f"frame_{index:03d}.png", frame)
        before = snapshot(tmp_path)
        done = nst_cli("video", "--input", str(frames), "--style", str(style), "-p", "max_side_px", "48",
                       "-p", "weights", str(path), *output, env=env)  # fmt: skip
    assert_refused_before_any_kernel(done, tmp_path, before, path)
    assert weights_server.requests == 0, "a refused run never reaches the network"


@pytest.mark.parametrize("kind", ["folder named h5", "dangling link h5", "FIFO named h5"])
def test_the_published_name_in_pretrained_model_taken_by_no_file_is_refused(weights_server, tmp_path, files, kind):
    path = _bad_weights(kind, weights_server.pretrained_dir, files, published_name=True)
    env = run_environment(tmp_path)
    before = snapshot(tmp_path)
    done, _ = stylise(tmp_path, env=env)
    line = assert_refused_before_any_kernel(done, tmp_path, before, path)
    assert "get the real weights" in line and weights_server.requests == 0, line


def test_a_refused_run_never_waits_for_the_network(weights_server, tmp_path):
    weights_server.server.faults, weights_server.server.stall_s = [("stall", 0)] * 5, 120
    env = run_environment(tmp_path)
    before = snapshot(tmp_path)
    done, _ = stylise(tmp_path, "-p", "alpha", "-1", env=env)  # a bad value, and weights that would be fetched
    assert done.returncode == 1 and the_one_error_line(done.stderr).startswith("error: alpha=-1")
    assert weights_server.requests == 0 and snapshot(tmp_path) == before
