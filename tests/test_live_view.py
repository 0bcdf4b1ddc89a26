"""nst.live_view: the loss curve, the α/β sliders, the live view's widgets and the progress bar, on toy runs."""

import io
import time

import numpy as np
import pytest
import tensorflow as tf
from kernel_fixture import Status
from PIL import Image
from toy_runs import toy_run

from nst.images import png_bytes
from nst.live_view import LiveView, ProgressBar, loss_curve_png, weight_slider
from nst.run import StyleTransferRun

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decoded(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


def test_loss_curve_and_png_bytes_render():
    history = [{"iteration": i, "total": 10.0 / i, "content": 1.0 / i, "style": 9.0 / i} for i in range(1, 6)]
    assert loss_curve_png(history)[:8] == PNG_SIGNATURE
    assert png_bytes(np.zeros((4, 4, 3)))[:8] == PNG_SIGNATURE


def test_loss_curve_has_the_asked_size_and_survives_a_zero_cost():
    history = [{"iteration": i, "total": 1.0 / i, "content": 1.0 / i, "style": 0.0} for i in range(1, 4)]
    assert decoded(loss_curve_png(history, width_px=320, height_px=200)).shape == (200, 320, 3)


def test_png_bytes_round_trip_to_8_bit_pixels():
    image = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(decoded(png_bytes(image)), np.rint(image * 255).astype(np.uint8))


def test_a_weight_slider_assigns_its_variable():
    variable = tf.Variable(10.0)
    slider = weight_slider(variable, "α (content weight)", min_exponent=-2, max_exponent=4)
    assert slider.value == pytest.approx(10.0) and slider.description == "α (content weight)"
    assert (slider.base, slider.min, slider.max) == (10, -2, 4), "log scale, 10⁻² to 10⁴"
    slider.value = 1000.0
    assert float(variable.numpy()) == pytest.approx(1000.0)


def test_the_live_view_shows_the_run_and_its_buttons_pause_and_stop_it(tmp_path):
    run, image, alpha = toy_run(tmp_path, iterations=100_000, live_view=True, display_every=2)
    assert run.alpha_slider is None, "the widgets are built when the run starts"
    run.start()
    widgets = run._widgets
    assert run.alpha_slider.value == pytest.approx(1.0) and run.beta_slider.value == pytest.approx(2.0)
    deadline = time.monotonic() + 30
    while Status.parse(widgets["status"].value) is None:
        assert time.monotonic() < deadline, f"the status line shows {widgets['status'].value!r}"
        time.sleep(0.01)
    run.alpha_slider.value = 5.0  # as the browser does: the slider moves the variable the step reads
    assert float(alpha.numpy()) == pytest.approx(5.0)
    # Two rows with the new α: a row reads α after its step, so the first one's step may have used the old α.
    while sum(row["alpha"] == 5.0 for row in list(run.history)) < 2:
        assert time.monotonic() < deadline, "the run does not go on with the new α"
        time.sleep(0.01)
    widgets["pause"].value = True
    time.sleep(0.2)
    paused_at = len(run.history)
    time.sleep(0.2)
    assert len(run.history) <= paused_at + 1, "the pause button does not pause the run"
    widgets["pause"].value = False
    widgets["stop"].click()
    run.wait(timeout_s=30)
    assert run.done and run.message.startswith("stopped at iteration")
    status = Status.parse(widgets["status"].value)
    last = run.history[-1]
    assert status.iteration == last["iteration"] and status.iterations == 100_000, "the last row is shown at the end"
    assert status.alpha == pytest.approx(5.0) and status.total_matches(), status
    assert run.message in widgets["status"].value
    np.testing.assert_array_equal(decoded(widgets["image"].value), decoded(png_bytes(image[0].numpy())))
    assert widgets["curve"].value[:8] == PNG_SIGNATURE


def test_the_live_view_draws_every_display_every_iterations(tmp_path):
    class Counting(LiveView):
        def _refresh(self, run, row, image_rgb01):
            self.refreshed.append(row["iteration"])

    view = Counting(display_every=3)
    view.refreshed = []
    run, _, _ = toy_run(tmp_path, iterations=7, listeners=[view])
    run.start().wait()
    assert view.refreshed == [1, 3, 6, 7], "the first iteration, every third, and the last at the end"


def test_the_progress_bar_counts_iterations_and_shows_the_costs(tmp_path, capsys):
    run, _, _ = toy_run(tmp_path, iterations=5, listeners=[ProgressBar()])
    run.start().wait()
    shown = capsys.readouterr().out
    assert "stylising" in shown and "5/5" in shown and "total=" in shown, shown


def staged_run(listener):
    """A run of two stages, 32x48 then 64x96 px, whose steps brighten the image; the listener is its only one."""
    images = [tf.Variable(np.zeros((1, h, w, 3), np.float32)) for h, w in ((32, 48), (64, 96))]

    def step_for(image):
        def step():
            image.assign_add(tf.fill(image.shape, 0.01))
            return {"total": 1.0, "content": 0.5, "style": 0.25}

        return step

    stages = [(step_for(image), image, 3) for image in images]
    return StyleTransferRun(stages, listeners=[listener], alpha=tf.Variable(1.0), beta=tf.Variable(2.0))


def test_the_live_view_says_which_size_runs(tmp_path):
    class Recording(LiveView):
        def prepare(self, run):
            self.widgets = self._build(run)
            self.statuses = []

        def _refresh(self, run, row, image_rgb01):
            super()._refresh(run, row, image_rgb01)
            self.statuses.append((self.widgets["status"].value, image_rgb01.shape))

    view = Recording(display_every=1)
    staged_run(view).start().wait()
    assert view.statuses[0][0].startswith("48×32 px (size 1 of 2) · iteration 1/6")
    assert view.statuses[0][1] == (32, 48, 3)
    assert view.statuses[-1][0].startswith("96×64 px (size 2 of 2) · iteration 6/6")
    assert view.statuses[-1][1] == (64, 96, 3)
    assert all(Status.parse(status) for status, _ in view.statuses)


def test_the_progress_bar_says_which_size_runs(capsys):
    staged_run(ProgressBar()).start().wait()
    shown = capsys.readouterr().out
    assert "stylising 48×32 px (size 1 of 2)" in shown and "stylising 96×64 px (size 2 of 2)" in shown, shown
    assert "6/6" in shown, shown
