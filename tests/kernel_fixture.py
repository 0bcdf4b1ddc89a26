"""A real ipykernel for tests: this interpreter, an isolated Jupyter/IPython home, and a client that runs code in it.

The kernel runs `sys.executable -m ipykernel_launcher` from a kernelspec written into a temporary folder, so
neither the user's kernelspecs nor their ~/.ipython, ~/.jupyter or runtime folder are read or written.
"""

import json
import os
import queue
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

from nst.paths import NOTEBOOK_PATH, PROJECT_DIR

KERNEL_NAME = "nst-test-python"
KERNEL_DISPLAY_NAME = "NST test kernel"


class KernelError(AssertionError):
    """Code executed in the kernel raised; the message holds the kernel's traceback."""


def isolated_env(tmp_dir: Path, **extra: str | None) -> dict[str, str]:
    """os.environ with this checkout first on PYTHONPATH and every Jupyter/IPython/matplotlib folder in tmp_dir,
    updated with `extra` (a value None: that variable unset)."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_DIR), env.get("PYTHONPATH")])),
        IPYTHONDIR=str(tmp_dir / "ipython"),
        JUPYTER_CONFIG_DIR=str(tmp_dir / "jupyter-config"),
        JUPYTER_DATA_DIR=str(tmp_dir / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(tmp_dir / "jupyter-runtime"),
        MPLCONFIGDIR=str(tmp_dir / "matplotlib"),
        MPLBACKEND="module://matplotlib_inline.backend_inline",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONUNBUFFERED="1",
    )
    env.pop("JUPYTER_PATH", None)
    env.update(extra)
    return {name: value for name, value in env.items() if value is not None}


def write_kernelspec(kernels_dir: Path, name: str = KERNEL_NAME) -> KernelSpecManager:
    """A kernelspec `name` for this interpreter in kernels_dir, and a KernelSpecManager that sees only kernels_dir."""
    spec_dir = kernels_dir / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": KERNEL_DISPLAY_NAME,
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(kernels_dir)], ensure_native_kernel=False)


class TestKernel:
    """Start a kernel, execute code, send raw shell messages, shut it down (always, also after a failure)."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, tmp_dir: Path, cwd: Path, env: dict[str, str]):
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self.km = KernelManager(
            kernel_name=KERNEL_NAME,
            kernel_spec_manager=write_kernelspec(tmp_dir / "kernels"),
            connection_file=str(tmp_dir / "kernel-connection.json"),
        )
        self.km.start_kernel(cwd=str(cwd), env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=60)
        except BaseException:
            self.shutdown()
            raise

    def execute(self, code: str, timeout_s: float = 60) -> str:
        """Run code like a notebook cell; return its stdout; raise KernelError with the traceback if it fails."""
        return self.collect(self.submit(code), code, timeout_s)

    def submit(self, code: str) -> str:
        """Send an execute_request and return at once (as "Run All" queues a cell); collect() gets its result."""
        return self.kc.execute(code, store_history=False, allow_stdin=False)

    def collect(self, msg_id: str, code: str, timeout_s: float = 60) -> str:
        """Wait for a submitted request: its stdout, or KernelError with the traceback if it failed."""
        deadline = time.monotonic() + timeout_s
        stdout, error = [], None
        while True:  # iopub until this request's 'idle': all of its output has arrived
            try:
                msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no result after {timeout_s} s from:\n{code}") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                stdout.append(content["text"])
            elif kind == "error":
                error = "\n".join(content["traceback"])
            elif kind == "status" and content["execution_state"] == "idle":
                break
        reply = self.kc.get_shell_msg(timeout=max(1.0, deadline - time.monotonic()))
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=max(1.0, deadline - time.monotonic()))
        if error is not None or reply["content"]["status"] != "ok":
            raise KernelError(f"kernel raised while running:\n{code}\n{error or reply['content']}")
        return "".join(stdout)

    def evaluate(self, expression: str, timeout_s: float = 60):
        """The value of a Python expression in the kernel, passed back as JSON."""
        out = self.execute(f"import json as _json\nprint('\\n' + _json.dumps({expression}))", timeout_s)
        return json.loads(out.rstrip("\n").rsplit("\n", 1)[-1])

    def next_iopub(self, deadline: float) -> dict:
        """The next message on iopub (any parent), or TimeoutError at `deadline` (time.monotonic())."""
        try:
            return self.kc.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError("no message from the kernel on iopub") from None

    def send_comm_msg(self, comm_id: str, data: dict) -> str:
        """Send a comm_msg on the shell channel, exactly as a Jupyter frontend does for a widget; return its id."""
        msg = self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        self.kc.shell_channel.send(msg)
        return msg["header"]["msg_id"]

    def shutdown(self) -> None:
        """Stop the channels and the kernel process, forcefully if it does not stop within a few seconds."""
        try:
            self.kc.stop_channels()
        finally:
            if self.km.has_kernel:
                self.km.shutdown_kernel(now=False, restart=False)
            self.km.cleanup_resources()


def notebook_code_cells(path: Path = NOTEBOOK_PATH) -> list[nbformat.NotebookNode]:
    """The notebook's code cells, in order."""
    return [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


@dataclass(frozen=True)
class Status:
    """One status line of the live view: "iteration i/N · s it/s · α = … · β = … · J = … (content …, style …)"."""

    iteration: int
    iterations: int
    alpha: float
    beta: float
    total: float
    content: float
    style: float

    PATTERN = re.compile(
        r"iteration (\d+)/(\d+) · \S+ it/s · α = (\S+) · β = (\S+) · J = (\S+) \(content (\S+), style (\S+)\)"
    )

    @classmethod
    def parse(cls, text: str) -> "Status | None":
        """The status in a widget's HTML or text, or None if it holds none (e.g. "starting…")."""
        match = cls.PATTERN.search(text)
        if match is None:
            return None
        i, n, *numbers = match.groups()
        return cls(int(i), int(n), *map(float, numbers))

    def total_matches(self, rel: float = 5e-3) -> bool:
        """J = α·J_content + β·J_style, to the 3-4 significant digits shown."""
        expected = self.alpha * self.content + self.beta * self.style
        return abs(self.total - expected) <= rel * abs(expected)
