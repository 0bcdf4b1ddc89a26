"""JupyterLab over a temporary copy of the notebook, and headless Debian Chromium to drive it: the browser test's
fixtures, and the benchmark's timing of Run All (bench/benchmark.py, run_all_in_jupyterlab).

JupyterLab runs on 127.0.0.1 with a token, with every Jupyter/IPython folder in a temporary directory, so autosave
and checkpoints never touch the repository. Playwright drives Debian's /usr/bin/chromium; it never downloads a
browser here.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import psutil
from kernel_fixture import KERNEL_DISPLAY_NAME, isolated_env, write_kernelspec

from nst.paths import NOTEBOOK_PATH

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SERVER_START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_tree(process: subprocess.Popen, timeout_s: float = 20) -> None:
    """SIGTERM the server (it shuts its kernels down), then kill whatever of its process tree is left."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)  # kernels run in sessions of their own
    except psutil.NoSuchProcess:
        children = []
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout_s)
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        child.kill()
    psutil.wait_procs(alive, timeout=5)


@contextmanager
def jupyterlab(tmp_path: Path, **env_extra: str | None):
    """JupyterLab serving a copy of the notebook in tmp_path, the kernel's environment updated with env_extra (None:
    unset); yields (base URL, token, notebook name). The server and its kernels are stopped on leaving."""
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(NOTEBOOK_PATH, root / NOTEBOOK_PATH.name)
    home = tmp_path / "jupyter"
    env = isolated_env(
        home,
        **env_extra,
        JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "lab-workspaces"),
        JUPYTER_PATH=str(home / "jupyter-path"),  # searched first, before the environment's share/jupyter
    )
    # The notebook asks for "python3": make that this interpreter (a venv's own spec says just "python").
    write_kernelspec(Path(env["JUPYTER_PATH"]) / "kernels", "python3")
    config_dir = Path(env["JUPYTER_CONFIG_DIR"])
    (config_dir / "labconfig").mkdir(parents=True)
    no_news = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}  # no news prompt
    (config_dir / "labconfig" / "page_config.json").write_text(json.dumps(no_news))
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        f"--LabApp.user_settings_dir={env['JUPYTERLAB_SETTINGS_DIR']}",
        f"--LabApp.workspaces_dir={env['JUPYTERLAB_WORKSPACES_DIR']}",
        *(["--allow-root"] if os.geteuid() == 0 else []),  # CI containers often run as root
    ]
    log_path = tmp_path / "jupyterlab.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    try:
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            assert server.poll() is None, f"JupyterLab exited:\n{log_path.read_text()}"
            try:
                with urllib.request.urlopen(f"{base_url}/api/status?token={token}", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (
                f"JupyterLab did not answer within {SERVER_START_TIMEOUT_S} s:\n{log_path.read_text()}"
            )
            time.sleep(0.3)
        yield base_url, token, NOTEBOOK_PATH.name
    finally:
        stop_process_tree(server)


@contextmanager
def chromium_page(timeout_ms: float):
    """A page in headless Debian Chromium, `timeout_ms` its default wait; the caller checks CHROMIUM exists."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            browser.close()


def open_notebook(page, lab: tuple[str, str, str]) -> None:
    """Open the notebook and wait until its kernel (our kernelspec) has started and is idle: Run All before that
    opens a "Select Kernel" dialog instead."""
    base_url, token, notebook = lab
    page.goto(f"{base_url}/lab/tree/{notebook}?token={token}&reset")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    page.get_by_text(f"{KERNEL_DISPLAY_NAME} | Idle").wait_for()


def run_all_cells(page) -> None:
    """Run → Run All Cells, from the menu bar, as a learner does."""
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator("li[data-command='runmenu:run-all']").click()


def live_view_box(page):
    """The live view's outer box: the one with the sliders (a locator; it says "starting…" until the first
    iteration)."""
    return page.locator(".widget-vbox").filter(has=page.locator(".widget-slider")).first


def live_view(page, state: str = "visible"):
    """The live view's outer box and its status line, once the line shows an iteration in `state` ("visible", or
    "attached": in the page, drawn or not, as JupyterLab skips drawing cells scrolled out of view); (view, status
    line)."""
    view = live_view_box(page)
    status_line = view.locator(".widget-html-content").filter(has_text="iteration")
    status_line.wait_for(state=state)
    return view, status_line
