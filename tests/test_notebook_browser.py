"""The live view in a real browser: JupyterLab renders the widgets, and moving the α slider changes the run.

JupyterLab runs on 127.0.0.1 with a token, over a temporary copy of the notebook (so autosave and checkpoints
never touch the repository), with every Jupyter/IPython folder in a temporary directory. Headless Debian
Chromium, driven by Playwright, runs all cells from the Run menu, waits for the live view (image, loss curve,
sliders, status line), types 1e5 into the α slider's readout while the run goes on, and checks that the status
line then shows α = 1e+05 and a cost J = α·J_content + β·J_style computed with it. The stop button ends the run.
The notebook runs with its own settings, so this is the default optimiser, Adam (its trial cell prints "Adam totals:").
Screenshots go to the test's tmp_path: live_view.png on success, failure.png otherwise.
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
from pathlib import Path

import psutil
import pytest
from ci_sizes import CI_ENVIRONMENT
from kernel_fixture import KERNEL_DISPLAY_NAME, Status, isolated_env, write_kernelspec

from nst.paths import NOTEBOOK_PATH

pytestmark = pytest.mark.slow

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
ALPHA_NEW = 1e5
TIMEOUT_MS = 120_000  # JupyterLab's first load, the kernel start and the notebook's cells on 2 slow cores


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


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a temporary copy of the notebook; yields (base URL, token, notebook name)."""
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(NOTEBOOK_PATH, root / NOTEBOOK_PATH.name)
    home = tmp_path / "jupyter"
    env = isolated_env(
        home,
        NST_MAX_SIDE_PX=CI_ENVIRONMENT["NST_MAX_SIDE_PX"],  # the CI size
        NST_ITERATIONS="2000",  # far more than the test waits for; the stop button ends the run
        NST_LIVE_VIEW="1",
        NST_OUTPUT_DIR=str(tmp_path / "output"),
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
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"JupyterLab exited:\n{log_path.read_text()}"
            try:
                with urllib.request.urlopen(f"{base_url}/api/status?token={token}", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"JupyterLab did not answer within 60 s:\n{log_path.read_text()}"
            time.sleep(0.3)
        yield base_url, token, NOTEBOOK_PATH.name
    finally:
        stop_process_tree(server)


@pytest.fixture
def page(tmp_path):
    """A page in headless Debian Chromium (Playwright never downloads a browser here)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def wait_for_status(status_line, wanted, timeout_s: float, why: str) -> Status:
    """Poll the live view's status line until `wanted(status)`; fail with `why` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = Status.parse(status_line.inner_text())
        if status is not None and wanted(status):
            return status
        assert time.monotonic() < deadline, f"{why}; the status line shows {status}"
        time.sleep(0.25)


def content_share(status: Status) -> float:
    """The share of α·J_content in J."""
    return status.alpha * status.content / status.total


def test_alpha_slider_in_jupyterlab_changes_the_running_optimisation(page, lab, tmp_path):  # page first: skip early
    base_url, token, notebook = lab
    t0 = time.monotonic()

    def log(what: str) -> None:  # shown by pytest when the test fails: where the time went
        print(f"{time.monotonic() - t0:6.1f} s  {what}")

    try:
        page.goto(f"{base_url}/lab/tree/{notebook}?token={token}&reset")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for()
        log("notebook open")
        # Our kernelspec started and idle (Run All before that opens a "Select Kernel" dialog instead).
        page.get_by_text(f"{KERNEL_DISPLAY_NAME} | Idle").wait_for()
        log("kernel idle")

        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator("li[data-command='runmenu:run-all']").click()  # Run → Run All Cells

        view = page.locator(".widget-vbox").filter(has=page.locator(".widget-slider")).first  # the outer box
        status_line = view.locator(".widget-html-content").filter(has_text="iteration")
        status_line.wait_for()
        log("live view shown")
        view.scroll_into_view_if_needed()
        assert page.get_by_text("Loading widget").count() == 0, "a widget did not render"
        sliders = view.locator(".widget-slider")
        assert sliders.count() == 2
        assert "α" in sliders.nth(0).inner_text() and "β" in sliders.nth(1).inner_text()
        images = view.locator("img")
        assert images.count() == 2  # the generated image and the loss curve
        first_curve = images.nth(1).get_attribute("src")

        # The default optimiser: only Adam's trial cell prints "Adam totals:", before the run starts.
        adam_trial = page.locator(".jp-OutputArea-output pre", has_text="Adam totals:")
        assert adam_trial.count() == 1, "the run is not the default Adam run (its trial printed nothing)"
        before = wait_for_status(status_line, lambda s: s.iteration >= 20, 60, "the run does not progress")
        log(f"before: {before}")
        assert before.alpha == 10.0 and before.total_matches(), before
        for index in range(2):  # both drawn, neither stretched: shown with the aspect ratio of their pixels
            shown = images.nth(index).evaluate(
                "img => [img.naturalWidth, img.naturalHeight, img.clientWidth, img.clientHeight]"
            )
            assert shown[0] > 0 and shown[1] > 0, f"image {index} is empty"
            assert shown[2] / shown[3] == pytest.approx(shown[0] / shown[1], rel=0.05), f"image {index}: {shown}"
        assert images.nth(1).get_attribute("src") != first_curve, "the loss curve is not redrawn"

        readout = sliders.nth(0).locator(".widget-readout")  # ipywidgets 8: an editable text box
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type(f"{ALPHA_NEW:g}")
        page.keyboard.press("Enter")
        assert float(readout.inner_text()) == ALPHA_NEW

        after = wait_for_status(
            status_line,
            lambda s: s.alpha == ALPHA_NEW,
            30,
            "the status line does not show the α typed into the slider (is the kernel blocked?)",
        )
        log(f"after: {after}")
        assert before.iteration < after.iteration < after.iterations, after
        assert after.total_matches(), f"J is not α·content + β·style with the new α: {after}"
        later = wait_for_status(status_line, lambda s: s.iteration >= after.iteration + 10, 60, "the run stopped")
        log(f"later: {later}")
        assert later.alpha == ALPHA_NEW and later.total_matches(), later
        # With α ×10⁴ the content term takes over the cost: the loss the user sees responds to the slider.
        assert content_share(before) < 0.05 and content_share(later) > 0.3, (before, later)

        view.screenshot(path=tmp_path / "live_view.png")
        view.locator("button", has_text="stop").click()
        view.get_by_text("stopped at iteration").wait_for(timeout=30_000)
        # The waiting cell has returned (it prints how the run ended): the kernel was never stuck in it.
        page.locator(".jp-OutputArea-output pre", has_text="stopped at iteration").wait_for(timeout=30_000)
        log("stopped")
    except BaseException:
        page.screenshot(path=tmp_path / "failure.png")
        raise
