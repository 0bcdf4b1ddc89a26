"""Shared test settings and fixtures: small, quiet notebook runs (outputs in a temp folder), tiny VGG-19 weights,
and a server on 127.0.0.1 that weights=None fetches them from."""

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
import synthetic_weights as sw
from ci_sizes import CI_ENVIRONMENT
from http_fixture import PayloadServer

import nst.download
import nst.weights
from nst.sources import WEIGHTS_SOURCES

# The variables by their documented names (README): NST_WEIGHTS, NST_WEIGHTS_URL, NST_PRETRAINED_DIR; and the tests'
# switch that accepts the synthetic file's md5 as genuine.
WEIGHTS_ENV, MIRROR_ENV, PRETRAINED_DIR_ENV, TEST_MD5_ENV = (
    "NST_WEIGHTS",
    "NST_WEIGHTS_URL",
    "NST_PRETRAINED_DIR",
    "NST_TEST_WEIGHTS_MD5",
)


def pytest_configure(config):
    """Shrink notebook runs for CI (through the notebook's parameters cell); a variable already set wins.

    The notebooks' outputs, and the temporary files of every process the tests start (kernels stopped at once skip
    the exit handler that deletes autograph's source files), go into one folder, removed when the session ends.
    This process keeps the system's temporary folder, and so pytest's own tmp_path."""
    for name, value in CI_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    tempfile.gettempdir()  # this process's temporary folder is fixed before TMPDIR changes
    session_dir = Path(tempfile.mkdtemp(prefix="nst-test-"))
    config.nst_session_dir = session_dir
    (session_dir / "tmp").mkdir()
    (session_dir / "output").mkdir()
    os.environ["TMPDIR"] = str(session_dir / "tmp")
    os.environ.setdefault("NST_OUTPUT_DIR", str(session_dir / "output"))


def pytest_unconfigure(config):
    session_dir = getattr(config, "nst_session_dir", None)
    if session_dir is not None:
        shutil.rmtree(session_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def weights():
    """Tiny VGG-19 weights (4, 8, 16, 32, 32 channels), RGB order."""
    return sw.make_weights(seed=0, widths_divisor=16)


@pytest.fixture(scope="module")
def files(tmp_path_factory, weights):
    """The same tiny weights as current .mat, old .mat and Keras .h5, under names the checksum check skips."""
    return sw.write_all_formats(tmp_path_factory.mktemp("weights"), weights)


class WeightsServer:
    """A PayloadServer of tiny Keras VGG-19 weights, and the folder weights=None fetches them into."""

    def __init__(self, server: PayloadServer, pretrained_dir: Path):
        self.server = server
        self.payload = server.payload  # the genuine bytes, whatever a test makes the server send
        self.pretrained_dir = pretrained_dir
        self.fetched_path = pretrained_dir / WEIGHTS_SOURCES["keras"].filename

    @property
    def requests(self) -> int:
        return len(self.server.range_headers)


@pytest.fixture
def weights_server(monkeypatch, tmp_path, files):
    """weights=None fetching on first use, in this process and in commands it starts: NST_WEIGHTS unset, Keras's URL
    ($NST_WEIGHTS_URL) a server on 127.0.0.1 serving the tiny .h5, whose md5 passes as genuine, and pretrained-model/
    an empty temporary folder ($NST_PRETRAINED_DIR)."""
    payload = files["h5"].read_bytes()
    server = PayloadServer(payload)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    pretrained_dir = tmp_path / "pretrained-model"
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv(MIRROR_ENV, server.url)
    monkeypatch.setenv(TEST_MD5_ENV, hashlib.md5(payload).hexdigest())
    monkeypatch.setenv(PRETRAINED_DIR_ENV, str(pretrained_dir))
    for name in ("no_proxy", "NO_PROXY"):  # a proxy set in the environment must not capture requests to 127.0.0.1
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    for module in (nst.weights, nst.download):  # their defaults, in this process
        monkeypatch.setattr(module, "PRETRAINED_DIR", pretrained_dir)
    monkeypatch.setattr(nst.download, "_first_use", {}, raising=False)  # each test starts as a new process would
    try:
        yield WeightsServer(server, pretrained_dir)
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
