"""The live view in a real browser: JupyterLab renders the widgets, and moving the α slider changes the run.

JupyterLab runs on 127.0.0.1 over a temporary copy of the notebook, at the CI size (lab_fixture.py). Headless
Debian Chromium, driven by Playwright, runs all cells from the Run menu, waits for the live view (image, loss curve,
sliders, status line), types 1e5 into the α slider's readout while the run goes on, and checks that the status
line then shows α = 1e+05 and a cost J = α·J_content + β·J_style computed with it. The stop button ends the run.
The notebook runs with its own settings, so this is the default optimiser, Adam (its trial cell prints "Adam totals:").
Screenshots go to the test's tmp_path: live_view.png on success, failure.png otherwise.
"""

import time

import pytest
from ci_sizes import CI_ENVIRONMENT
from kernel_fixture import Status
from lab_fixture import CHROMIUM, chromium_page, jupyterlab, live_view, open_notebook, run_all_cells

pytestmark = pytest.mark.slow

ALPHA_NEW = 1e5
TIMEOUT_MS = 120_000  # JupyterLab's first load, the kernel start and the notebook's cells on 2 slow cores


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a temporary copy of the notebook at the CI size; yields (base URL, token, notebook)."""
    with jupyterlab(
        tmp_path,
        NST_MAX_SIDE_PX=CI_ENVIRONMENT["NST_MAX_SIDE_PX"],  # the CI size
        NST_ITERATIONS="2000",  # far more than the test waits for; the stop button ends the run
        NST_LIVE_VIEW="1",
        NST_OUTPUT_DIR=str(tmp_path / "output"),
    ) as lab:
        yield lab


@pytest.fixture
def page():
    """A page in headless Debian Chromium (Playwright never downloads a browser here)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    with chromium_page(TIMEOUT_MS) as page:
        yield page


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
    t0 = time.monotonic()

    def log(what: str) -> None:  # shown by pytest when the test fails: where the time went
        print(f"{time.monotonic() - t0:6.1f} s  {what}")

    try:
        open_notebook(page, lab)
        log("notebook open, kernel idle")
        run_all_cells(page)
        view, status_line = live_view(page)
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
