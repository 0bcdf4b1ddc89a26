"""nst.run: StyleTransferRun's thread, pause, stop, wait, wait_async, NaN rollback, interrupts and listeners.

Toy steps (tests/toy_runs.py) keep these fast. On Python 3.11 a Thread.join() interrupted by Ctrl-C marks the
still-running thread as finished, so a wait() built on join() returned before the run had stopped and saved.
"""

import asyncio
import csv
import os
import signal
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from toy_runs import slow_run, toy_run

from nst.errors import NSTError
from nst.images import load_image
from nst.run import BLOW_UP_FACTOR, LOSS_NAMES, RunListener, StyleTransferRun


def wait_for_history(run: StyleTransferRun, length: int, timeout_s: float = 30) -> None:
    """Wait until the run has finished `length` iterations."""
    deadline = time.monotonic() + timeout_s
    while len(run.history) < length:
        assert time.monotonic() < deadline, f"the run finished only {len(run.history)} iterations in {timeout_s} s"
        time.sleep(0.01)


def assert_stopped_and_saved(run: StyleTransferRun) -> None:
    assert run.done
    assert run.message.startswith("stopped at iteration"), run.message
    assert run.final_path.is_file()
    assert run.history and run.history[-1]["iteration"] < run.iterations


class Recorder(RunListener):
    """A listener that records every call it gets, with the thread it came from."""

    def __init__(self):
        self.calls = []

    def on_start(self, run, image_rgb01):
        self.calls.append(("start", None, np.array(image_rgb01), threading.current_thread()))

    def on_iteration(self, run, row, image_rgb01):
        self.calls.append(("iteration", dict(row), np.array(image_rgb01), threading.current_thread()))

    def on_end(self, run, image_rgb01):
        self.calls.append(("end", None, np.array(image_rgb01), threading.current_thread()))


# ---------------------------------------------------------------------------- listeners


def test_a_custom_listener_gets_start_each_iteration_and_end(tmp_path):
    recorder = Recorder()
    run, image, _ = toy_run(tmp_path, iterations=4, listeners=[recorder])
    start_image = image[0].numpy()
    run.start().wait()
    kinds = [kind for kind, *_ in recorder.calls]
    assert kinds == ["start", "iteration", "iteration", "iteration", "iteration", "end"]
    np.testing.assert_array_equal(recorder.calls[0][2], start_image)
    for index, (_, row, image_rgb01, _) in enumerate(recorder.calls[1:-1], start=1):
        assert row["iteration"] == index
        assert set(row) == {"iteration", *LOSS_NAMES, "alpha", "beta", "seconds", "height_px", "width_px"}
        assert (row["height_px"], row["width_px"]) == (32, 32)
        assert row["alpha"] == 1.0 and row["beta"] == 2.0 and row["seconds"] >= 0.0
        assert row["total"] == pytest.approx(row["alpha"] * row["content"] + row["beta"] * row["style"], rel=1e-6)
        assert image_rgb01.shape == (32, 32, 3) and image_rgb01.dtype == np.float32
    assert [row for _, row, *_ in recorder.calls[1:-1]] == run.history
    np.testing.assert_array_equal(recorder.calls[-2][2], image[0].numpy())  # the image after the last iteration
    np.testing.assert_array_equal(recorder.calls[-1][2], image[0].numpy())  # on_end: the last good image
    assert all(thread is not threading.current_thread() for *_, thread in recorder.calls), "calls come from the run"
    assert run.message == "finished 4 iterations" and run.error is None
    assert run.run_dir is None and not list(tmp_path.iterdir()), "with listeners of its own, no run folder is made"


def test_listeners_hear_the_end_once_when_the_run_fails(tmp_path):
    recorder = Recorder()
    run, _, _ = toy_run(tmp_path, iterations=10, blow_up_at=3, listeners=[recorder])
    with pytest.raises(NSTError, match="lower learning_rate"):
        run.start().wait()
    kinds = [kind for kind, *_ in recorder.calls]
    assert kinds == ["start", "iteration", "iteration", "end"]
    assert np.isfinite(recorder.calls[-1][2]).all()


def test_a_listener_that_fails_while_finishing_still_ends_the_wait(tmp_path):
    class Broken(RunListener):
        def on_end(self, run, image_rgb01):
            raise RuntimeError("the disk went away")

    recorder = Recorder()
    run, _, _ = toy_run(tmp_path, iterations=2, listeners=[Broken(), recorder])
    with pytest.raises(RuntimeError, match="the disk went away"):
        run.start().wait(timeout_s=30)
    assert run.done and "failed while finishing: RuntimeError: the disk went away" in run.message
    assert [kind for kind, *_ in recorder.calls][-1] == "end", "the other listeners still finish"


def test_a_run_needs_a_folder_or_listeners():
    image = tf.Variable(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="pass run_dir"):
        StyleTransferRun(lambda: {}, image, 1)


# ---------------------------------------------------------------------------- the loop


def test_changing_alpha_mid_run_reaches_the_running_step(tmp_path):
    run, _, alpha = toy_run(tmp_path, iterations=400)
    run.start()
    wait_for_history(run, 3)
    alpha.assign(7.0)
    run.wait()
    assert run.history[0]["alpha"] == 1.0 and run.history[-1]["alpha"] == 7.0


def test_a_nan_cost_restores_the_last_good_image_and_says_what_to_do(tmp_path):
    run, image, _ = toy_run(tmp_path, iterations=10, blow_up_at=4)
    with pytest.raises(NSTError, match="lower learning_rate"):
        run.start().wait()
    assert len(run.history) == 3, "iterations 1-3 were good"
    assert np.isfinite(image.numpy()).all()
    assert "iteration 4" in run.message and "lower learning_rate" in run.message
    assert np.isfinite(load_image(run.final_path, max_side_px=None)).all()


def test_nan_pixels_are_rolled_back_like_a_nan_cost(tmp_path):
    image = tf.Variable(np.full((1, 8, 8, 3), 0.5, np.float32))
    calls = []

    def step():
        calls.append(1)
        if len(calls) == 3:
            image.assign(tf.fill(image.shape, np.nan))
        else:
            image.assign_add(tf.fill(image.shape, 0.01))
        return {"total": 1.0, "content": 0.5, "style": 0.5}

    recorder = Recorder()
    run = StyleTransferRun(step, image, 10, listeners=[recorder])
    with pytest.raises(NSTError, match="pixels became NaN at iteration 3"):
        run.start().wait()
    assert len(run.history) == 2
    np.testing.assert_allclose(image.numpy(), 0.52, atol=1e-6)  # the image after iteration 2
    np.testing.assert_allclose(recorder.calls[-1][2], 0.52, atol=1e-6)


def run_with_contents(contents: list[float], **kwargs) -> tuple[StyleTransferRun, tf.Variable]:
    """A run whose step moves the image by 0.01 and reports the given content costs (α = β = 1, style 0)."""
    image = tf.Variable(np.full((1, 8, 8, 3), 0.5, np.float32))
    costs = iter(contents)

    def step():
        image.assign_add(tf.fill(image.shape, 0.01))
        content = next(costs)
        return {"total": content, "content": content, "style": 0.0}

    run = StyleTransferRun(step, image, len(contents), alpha=tf.Variable(1.0), beta=tf.Variable(1.0), **kwargs)
    return run, image


def test_a_cost_that_blows_up_is_rolled_back_and_names_the_learning_rate():
    start, jump = 1.0, 1.5 * BLOW_UP_FACTOR
    run, image = run_with_contents([start, 0.9, jump * start, 0.5], learning_rate=0.5, listeners=[])
    with pytest.raises(
        NSTError,
        match=rf"the cost blew up from {start:.3g} .*to {jump:.3g} at iteration 3: restored the image from iteration 1",
    ) as error:
        run.start().wait()
    assert "lower learning_rate (now 0.5, e.g. halve it)" in str(error.value)
    assert len(run.history) == 2
    # the cost of iteration 3 is that of the image after iteration 2 (a step reports the image it started from)
    np.testing.assert_allclose(image.numpy(), 0.51, atol=1e-6)  # the image after iteration 1


def test_a_cost_that_rises_but_stays_below_the_blow_up_goes_on():
    contents = [1.0, 0.1, 0.9 * BLOW_UP_FACTOR * 0.1, 0.05]  # 9× the best so far, yet below the start
    run, _ = run_with_contents(contents, listeners=[])
    run.start().wait()
    assert run.error is None and [row["content"] for row in run.history] == contents


def paused_toy_run(tmp_path):
    """A long toy run, started and paused after 2 iterations; returns it and its history length once paused."""
    run, _, _ = toy_run(tmp_path, iterations=100_000)
    run.start()
    wait_for_history(run, 2)
    run.pause()
    time.sleep(0.2)
    return run, len(run.history)


def test_stop_and_pause_keep_the_work_done(tmp_path):
    run, paused_at = paused_toy_run(tmp_path)
    time.sleep(0.2)
    assert len(run.history) <= paused_at + 1, "a paused run keeps stepping"
    run.stop()
    run.wait()
    assert "stopped at iteration" in run.message
    assert run.final_path.exists()
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert len(rows) == len(run.history)


def test_resume_continues_a_paused_run(tmp_path):
    run, paused_at = paused_toy_run(tmp_path)
    run.resume()
    wait_for_history(run, paused_at + 3)
    run.stop()
    run.wait()
    assert "stopped at iteration" in run.message


def test_bad_iteration_settings_name_the_value(tmp_path):
    with pytest.raises(ValueError, match="iterations=-1"):
        toy_run(tmp_path, iterations=-1)
    with pytest.raises(ValueError, match="save_every=0"):
        toy_run(tmp_path, save_every=0)


def test_a_run_starts_once_and_waits_only_once_started(tmp_path):
    run, _, _ = toy_run(tmp_path, iterations=1)
    with pytest.raises(RuntimeError, match="call start"):
        run.wait()
    run.start().wait()
    with pytest.raises(RuntimeError, match="already been started"):
        run.start()


# ---------------------------------------------------------------------------- wait and interrupts


def test_an_interrupt_while_waiting_stops_the_run_and_keeps_its_work(tmp_path, capsys):
    run, _, _ = toy_run(tmp_path, iterations=100_000)
    run.start()
    wait_for_history(run, 2)
    real_wait = run._finished.wait
    interrupts = []

    def interrupted_wait(timeout=None):
        if not interrupts:
            interrupts.append(1)
            raise KeyboardInterrupt  # what Ctrl-C / "interrupt kernel" does to the waiting cell
        return real_wait(timeout)

    run._finished.wait = interrupted_wait
    with pytest.raises(KeyboardInterrupt):
        run.wait()
    assert run.done and run.final_path.exists()
    assert "Interrupted: stopped at iteration" in capsys.readouterr().out
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == len(run.history) + 1


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt, as in a kernel, even where pytest started with SIGINT ignored (nohup, &)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_interrupted_wait_stops_the_run_and_returns_after_the_final_image(tmp_path, capsys, sigint_raises):
    run = slow_run(tmp_path).start()
    # A real SIGINT, as a kernel interrupt sends: it wakes the main thread from a blocking wait, as Ctrl-C does.
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run.wait(timeout_s=30)
    finally:
        timer.cancel()
        run.stop()
    assert_stopped_and_saved(run)
    assert f"Interrupted: {run.message}" in capsys.readouterr().out
    run.wait(timeout_s=5)  # waiting again returns at once and raises nothing


def test_cancelled_wait_async_stops_the_run_and_returns_after_the_final_image(tmp_path, capsys):
    run = slow_run(tmp_path).start()

    async def interrupted_cell():
        task = asyncio.ensure_future(run.wait_async(poll_s=0.01))
        await asyncio.sleep(0.3)
        task.cancel()  # what ipykernel does to an awaiting cell on an interrupt
        await task

    try:
        with pytest.raises(asyncio.CancelledError):
            asyncio.run(interrupted_cell())
    finally:
        run.stop()
    assert_stopped_and_saved(run)
    assert f"Interrupted: {run.message}" in capsys.readouterr().out


def test_wait_async_returns_the_finished_run(tmp_path):
    run = slow_run(tmp_path, iterations=5).start()
    assert asyncio.run(run.wait_async(poll_s=0.01)) is run
    assert run.done and run.message.startswith("finished 5 iterations")
    assert [row["iteration"] for row in run.history] == [1, 2, 3, 4, 5]


def test_wait_async_raises_the_runs_error(tmp_path):
    run, _, _ = toy_run(tmp_path, iterations=10, blow_up_at=2)
    run.start()
    with pytest.raises(NSTError, match="lower learning_rate"):
        asyncio.run(run.wait_async(poll_s=0.01))


# ---------------------------------------------------------------------------- coarse to fine: stages


def moving_step(image, amount: float, content_costs=None):
    """A step that adds `amount` to every pixel and reports a content cost (the next of `content_costs`, or 1)."""
    costs = iter(content_costs or [])

    def step():
        image.assign(tf.clip_by_value(image + amount, 0.0, 1.0))
        content = next(costs, 1.0)
        return {"total": content, "content": content, "style": 0.0}

    return step


class StageRecorder(Recorder):
    def on_stage(self, run, image_rgb01):
        self.calls.append(("stage", run.size_px, np.array(image_rgb01), threading.current_thread()))


def two_stages(coarse_iterations=3, full_iterations=2, **full_step):
    """A 32x48 stage that brightens by 0.1 a step, then a 64x96 stage (the full size) that brightens by 0.01."""
    coarse = tf.Variable(np.zeros((1, 32, 48, 3), np.float32))
    full = tf.Variable(np.zeros((1, 64, 96, 3), np.float32))
    stages = [
        (moving_step(coarse, 0.1), coarse, coarse_iterations),
        (moving_step(full, 0.01, **full_step), full, full_iterations),
    ]
    return stages, coarse, full


def test_stages_run_smallest_first_and_each_starts_from_the_last_result(tmp_path):
    stages, coarse, full = two_stages()
    recorder = StageRecorder()
    run = StyleTransferRun(stages, listeners=[recorder], alpha=tf.Variable(1.0), beta=tf.Variable(1.0))
    assert run.iterations == 5
    run.start().wait()
    kinds = [(kind, size) for kind, size, *_ in recorder.calls if kind == "stage"]
    assert kinds == [("stage", (32, 48)), ("stage", (64, 96))]
    rows = run.history
    assert [row["iteration"] for row in rows] == [1, 2, 3, 4, 5]
    assert [(row["height_px"], row["width_px"]) for row in rows] == [(32, 48)] * 3 + [(64, 96)] * 2
    np.testing.assert_allclose(coarse.numpy(), 0.3, atol=1e-6)
    np.testing.assert_allclose(full.numpy(), 0.32, atol=1e-5)  # 0.3 upsampled, then two steps of 0.01
    assert recorder.calls[-1][2].shape == (64, 96, 3), "on_end: the result at full size"
    assert run.message == "finished 5 iterations"


def test_stopping_during_a_coarse_stage_keeps_the_result_at_full_size(tmp_path):
    coarse = tf.Variable(np.zeros((1, 32, 48, 3), np.float32))
    full = tf.Variable(np.zeros((1, 64, 96, 3), np.float32))
    step = moving_step(coarse, 0.1)
    calls = []

    def stopping_step():
        calls.append(1)
        if len(calls) == 2:
            run.stop()
        return step()

    run = StyleTransferRun(
        [(stopping_step, coarse, 5), (moving_step(full, 0.01), full, 5)], run_dir=tmp_path / "run", live_view=False
    )
    run.start().wait()
    assert_stopped_and_saved(run)
    final = load_image(run.final_path, max_side_px=None)
    assert final.shape == (64, 96, 3)
    np.testing.assert_allclose(full.numpy(), 0.2, atol=1e-6)  # the coarse image after 2 steps, upsampled into G
    np.testing.assert_allclose(final, 0.2, atol=1 / 255)


def test_a_trial_s_rows_are_the_first_of_the_run_and_count(tmp_path):
    stages, coarse, _ = two_stages(coarse_iterations=3, full_iterations=2)
    trial = StyleTransferRun(*stages[0][:2], 2, listeners=[])
    trial.start().wait()
    run = StyleTransferRun(stages, run_dir=tmp_path / "run", history=trial.history, live_view=False)
    assert run.iterations == 5
    run.start().wait()
    assert [row["iteration"] for row in run.history] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(coarse.numpy(), 0.3, atol=1e-6), "2 trial steps and 1 more make the coarse stage's 3"
    with (tmp_path / "run" / "metrics.csv").open() as file:
        assert [int(row["iteration"]) for row in csv.DictReader(file)] == [1, 2, 3, 4, 5]


def test_a_blow_up_is_judged_against_the_cost_at_the_start_of_its_stage():
    # The full size starts at a cost 100x lower than the coarse one did: a jump of 20x within it is a blow-up,
    # though it stays far below the coarse stage's start.
    stages, _, _ = two_stages(coarse_iterations=2, full_iterations=4, content_costs=[1.0, 0.9, 20.0, 0.5])
    stages[0] = (moving_step(stages[0][1], 0.1, [100.0, 90.0]), stages[0][1], 2)
    run = StyleTransferRun(stages, listeners=[], alpha=tf.Variable(1.0), beta=tf.Variable(1.0), learning_rate=0.1)
    with pytest.raises(NSTError, match=r"blew up from 1 at the start to 20 at iteration 5"):
        run.start().wait()
    assert len(run.history) == 4
