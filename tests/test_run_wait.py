"""StyleTransferRun.wait() and wait_async(): an interrupt stops the run, and they return only once final.png is saved.

A fake train step (no model) keeps these fast. On Python 3.11 a Thread.join() interrupted by Ctrl-C marks the
still-running thread as finished, so a wait() built on join() returned before the run had stopped and saved.
"""

import asyncio
import os
import signal
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

import nst_utils


def slow_run(tmp_path, iterations: int = 100_000) -> nst_utils.StyleTransferRun:
    image = tf.Variable(np.full((1, 32, 32, 3), 0.5, np.float32))
    alpha = tf.Variable(10.0)

    def train_step():
        time.sleep(0.005)
        return {"total": tf.constant(1.0), "content": tf.constant(0.5), "style": tf.constant(0.5)}

    return nst_utils.StyleTransferRun(
        train_step, image, iterations, tmp_path / "run", alpha=alpha, live_view=False, save_every=10**6
    )


def assert_stopped_and_saved(run: nst_utils.StyleTransferRun) -> None:
    assert run.done
    assert run.message.startswith("stopped at iteration"), run.message
    assert run.final_path.is_file()
    assert run.history and run.history[-1]["iteration"] < run.iterations


def test_interrupted_wait_stops_the_run_and_returns_after_the_final_image(tmp_path, capsys):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # SIGINT raises KeyboardInterrupt
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
