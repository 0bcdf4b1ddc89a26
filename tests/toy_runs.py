"""Runs on toy steps (no model) for the run-loop tests: fast, deterministic, and with costs a reader can follow."""

import time

import numpy as np
import tensorflow as tf

from nst.run import StyleTransferRun


def toy_run(tmp_path, iterations=5, learning_rate=0.1, blow_up_at=None, **kwargs):
    """A run whose step pulls a 32x32 image towards grey; `blow_up_at` makes the costs NaN from that iteration on.

    Returns (run, image, alpha); the run writes its folder to tmp_path / "run" unless `listeners` are passed.
    """
    image = tf.Variable(np.zeros((1, 32, 32, 3), np.float32))
    alpha = tf.Variable(1.0)
    beta = tf.Variable(2.0)
    calls = tf.Variable(0)

    @tf.function
    def train_step():
        calls.assign_add(1)
        with tf.GradientTape() as tape:
            content = tf.reduce_mean(tf.square(image - 0.5))
            if blow_up_at is not None:  # as a diverged image does: NaN activations make every cost NaN
                content += tf.where(calls >= blow_up_at, np.nan, 0.0)
            style = tf.reduce_mean(tf.square(image - 0.25))
            total = alpha * content + beta * style
        grad = tape.gradient(total, image)
        image.assign(tf.clip_by_value(image - learning_rate * grad, 0.0, 1.0))
        return {"total": total, "content": content, "style": style}

    run_dir = None if "listeners" in kwargs else tmp_path / "run"
    kwargs.setdefault("live_view", False)
    run = StyleTransferRun(train_step, image, iterations, run_dir, alpha=alpha, beta=beta, **kwargs)
    return run, image, alpha


def slow_run(tmp_path, iterations: int = 100_000) -> StyleTransferRun:
    """A run whose fake step sleeps 5 ms: long enough to interrupt, with a run folder in tmp_path / "run"."""
    image = tf.Variable(np.full((1, 32, 32, 3), 0.5, np.float32))
    alpha = tf.Variable(10.0)

    def train_step():
        time.sleep(0.005)
        return {"total": tf.constant(1.0), "content": tf.constant(0.5), "style": tf.constant(0.5)}

    return StyleTransferRun(
        train_step, image, iterations, tmp_path / "run", alpha=alpha, live_view=False, save_every=10**6
    )
