"""nst.optimisers: L-BFGS driven through minimise(max_iterations, on_iteration), and the coarse-to-fine sizes.

minimise calls on_iteration(costs) after each iteration in the caller's thread (no second thread), and raises
OptimisationConverged when scipy stops for real. The tests drive it directly or through StyleTransferRun.
"""

import csv
import itertools
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from nst.errors import OptimisationConverged
from nst.images import resize_image
from nst.optimisers import LBFGS, coarse_sizes
from nst.run import StyleTransferRun


def toy_costs(target):
    """A coupled quadratic cost (neighbouring pixels interact), so L-BFGS needs several iterations."""

    def compute_costs(image):
        content = tf.reduce_sum(tf.square(image - target))
        style = tf.reduce_sum(tf.square(image[:, 1:] - 0.9 * image[:, :-1]))
        return {"total": content + 10.0 * style, "content": content, "style": style}

    return compute_costs


def ignore(costs) -> None:
    """An on_iteration that does nothing."""


def assert_no_thread_left(threads_before: set, timeout_s: float = 5) -> None:
    """No thread other than those alive before is left (the run's own thread ends just after it finishes)."""
    deadline = time.monotonic() + timeout_s
    while set(threading.enumerate()) - threads_before and time.monotonic() < deadline:
        time.sleep(0.01)
    left = set(threading.enumerate()) - threads_before
    assert not left, f"threads still alive after the run: {[thread.name for thread in left]}"
    assert not any("lbfgs" in thread.name.lower() for thread in threading.enumerate()), "L-BFGS needs no thread"


def test_lbfgs_reduces_a_toy_cost_and_respects_the_bounds():
    target = tf.constant(np.random.default_rng(0).uniform(-0.5, 1.5, (1, 8, 12, 3)), tf.float32)  # partly outside
    image = tf.Variable(np.full((1, 8, 12, 3), 0.5, np.float32))
    lbfgs = LBFGS(toy_costs(target), image)
    threads_before = set(threading.enumerate())
    seen_in = []

    def on_iteration(costs):
        totals.append(costs["total"])
        seen_in.append(threading.current_thread())

    totals = []
    lbfgs.minimise(5, on_iteration)
    assert len(totals) == 5, "minimise returns after max_iterations iterations"
    assert all(a > b for a, b in itertools.pairwise(totals)), totals
    assert image.numpy().min() >= 0.0 and image.numpy().max() <= 1.0
    assert lbfgs.evaluations >= 5
    assert seen_in == [threading.current_thread()] * 5, "on_iteration runs in the caller's thread"
    assert_no_thread_left(threads_before)


def test_on_iteration_sees_the_costs_of_the_image_already_assigned():
    target = tf.constant(np.random.default_rng(7).uniform(0, 1, (1, 6, 6, 3)), tf.float32)
    compute_costs = toy_costs(target)
    image = tf.Variable(np.full((1, 6, 6, 3), 0.5, np.float32))
    checked = []

    def on_iteration(costs):
        now = compute_costs(image)
        assert costs["total"] == pytest.approx(float(now["total"]), rel=1e-5)
        checked.append(costs)

    LBFGS(compute_costs, image).minimise(4, on_iteration)
    assert len(checked) == 4


def test_whatever_on_iteration_raises_ends_minimise():
    image = tf.Variable(np.full((1, 6, 6, 3), 0.5, np.float32))
    lbfgs = LBFGS(toy_costs(tf.constant(0.1, shape=(1, 6, 6, 3))), image)
    calls = []

    def stop_at_two(costs):
        calls.append(costs)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lbfgs.minimise(100, stop_at_two)
    assert len(calls) == 2


def test_lbfgs_matches_an_independent_scipy_run():
    import scipy.optimize

    target = np.random.default_rng(1).uniform(0, 1, (1, 4, 4, 3)).astype(np.float32)
    image = tf.Variable(np.zeros_like(target))
    lbfgs = LBFGS(toy_costs(tf.constant(target)), image)
    with pytest.raises(OptimisationConverged):
        lbfgs.minimise(200, ignore)

    def f(x):
        x = x.reshape(target.shape)
        d = x[:, 1:] - 0.9 * x[:, :-1]
        grad = 2 * (x - target)
        grad[:, 1:] += 20 * d
        grad[:, :-1] -= 18 * d
        return np.sum((x - target) ** 2) + 10 * np.sum(d**2), grad.ravel()

    expected = scipy.optimize.minimize(f, np.zeros(target.size), jac=True, method="L-BFGS-B", bounds=[(0, 1)] * 48)
    np.testing.assert_allclose(image.numpy().ravel(), expected.x, atol=1e-3)


def test_the_run_loop_drives_lbfgs_and_stop_ends_it(tmp_path, monkeypatch):
    import tqdm

    monkeypatch.setattr(tqdm.tqdm, "monitor_interval", 0)  # the progress bar's own helper thread, not L-BFGS's
    target = tf.constant(np.random.default_rng(2).uniform(0, 1, (1, 32, 32, 3)), tf.float32)
    image = tf.Variable(np.zeros((1, 32, 32, 3), np.float32))
    lbfgs = LBFGS(toy_costs(target), image)
    threads_before = set(threading.enumerate())
    run = StyleTransferRun(lbfgs, image, 10**6, tmp_path / "run", live_view=False)
    evaluate = lbfgs.evaluate

    def evaluate_then_stop_after_3_iterations(x_float64):
        # Stop from inside the run, as a button would between iterations: a test thread polling the run
        # raced L-BFGS, which converges on this toy cost in about 28 iterations, a fraction of a second.
        if len(run.history) >= 3:
            run.stop()
        return evaluate(x_float64)

    lbfgs.evaluate = evaluate_then_stop_after_3_iterations
    run.start().wait()
    assert run.message.startswith("stopped at iteration"), run.message
    assert_no_thread_left(threads_before)  # the L-BFGS loop ends with the run, in the run's own thread
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert len(rows) >= 3 and float(rows[-1]["total"]) < float(rows[0]["total"])
    assert (tmp_path / "run" / "final.png").exists()


def test_a_converged_lbfgs_run_ends_cleanly(tmp_path):
    image = tf.Variable(np.zeros((1, 32, 32, 3), np.float32))
    lbfgs = LBFGS(toy_costs(tf.constant(0.3, shape=(1, 32, 32, 3))), image)
    run = StyleTransferRun(lbfgs, image, 500, tmp_path / "run", live_view=False)
    run.start().wait()
    assert run.error is None and "L-BFGS stopped" in run.message


def test_lbfgs_keeps_going_when_a_slider_changes_the_cost():
    """Both sliders up 100×: scipy's line search fails against its old cost and stops; L-BFGS must start again."""
    target = tf.constant(np.random.default_rng(5).uniform(0, 1, (1, 16, 16, 3)), tf.float32)
    weight = tf.Variable(1.0)  # stands for α and β moved together
    costs = toy_costs(target)

    def compute_costs(image):
        return {name: weight * value for name, value in costs(image).items()}

    image = tf.Variable(np.full((1, 16, 16, 3), 0.5, np.float32))
    lbfgs = LBFGS(compute_costs, image)
    seen = []

    def on_iteration(costs_now):
        seen.append(dict(costs_now))
        if len(seen) == 5:
            weight.assign(100.0)  # the slider moves after the 5th iteration, as a user's would mid-run

    # without the restart, scipy's stop would end the optimisation right after the move
    with pytest.raises(OptimisationConverged):  # the quadratic converges for real in the end
        lbfgs.minimise(5 + 1 + 500, on_iteration)
    after = seen[5:]
    assert lbfgs.restarts == 1, "one restart for one move of the sliders"
    assert len(after) > 3 and after[-1]["total"] < after[0]["total"]
    undisturbed = tf.Variable(np.full((1, 16, 16, 3), 0.5, np.float32))  # the weight does not move the minimum
    reference = LBFGS(costs, undisturbed)
    with pytest.raises(OptimisationConverged):
        reference.minimise(500, ignore)
    np.testing.assert_allclose(image.numpy(), undisturbed.numpy(), atol=1e-3)


def test_lbfgs_first_step_has_the_asked_size():
    """A steep cost: scipy's own first step jumps to the bounds and searches back; ours moves by first_step_rms."""
    target = 0.5 + 0.3 * np.random.default_rng(6).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)

    def compute_costs(image):
        content = 1e6 * tf.reduce_sum(tf.square(image - target))
        return {"total": content, "content": content, "style": tf.constant(0.0)}

    evaluations = {}
    for first_step_rms in (None, 0.1):
        image = tf.Variable(np.full((1, 16, 16, 3), 0.5, np.float32))
        lbfgs = LBFGS(compute_costs, image, first_step_rms=first_step_rms)
        lbfgs.minimise(1, ignore)
        evaluations[first_step_rms] = lbfgs.evaluations
        if first_step_rms is not None:
            moved_rms = float(np.sqrt(np.mean((image.numpy() - 0.5) ** 2)))
            assert moved_rms == pytest.approx(first_step_rms, rel=0.01)
    assert evaluations[0.1] == 2 < evaluations[None], evaluations  # the start, then one accepted step


def test_coarse_sizes_halve_and_keep_the_aspect_ratio():
    assert coarse_sizes(300, 400, levels=3) == [(75, 100), (150, 200), (300, 400)]
    assert coarse_sizes(1080, 1920, levels=2) == [(540, 960), (1080, 1920)]
    assert coarse_sizes(48, 64, levels=3) == [(48, 64)]  # below 32 px is left out
    with pytest.raises(ValueError, match="levels"):
        coarse_sizes(300, 400, levels=0)


def test_resize_image_upsamples_a_coarse_result_within_0_1():
    small = np.random.default_rng(3).random((15, 20, 3)).astype(np.float32)
    big = resize_image(small, 30, 40)
    assert big.shape == (30, 40, 3) and big.min() >= 0.0 and big.max() <= 1.0
    assert resize_image(small, 60, 80).shape == (60, 80, 3)
    np.testing.assert_allclose(big.mean(), small.mean(), atol=0.02)
