"""Faster optimisation: the L-BFGS step, coarse-to-fine sizes, the memory estimate, bf16, and the benchmark."""

import csv
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import nst_utils

PROJECT_DIR = Path(__file__).resolve().parents[1]


def toy_costs(target):
    """A coupled quadratic cost (neighbouring pixels interact), so L-BFGS needs several iterations."""

    def compute_costs(image):
        content = tf.reduce_sum(tf.square(image - target))
        style = tf.reduce_sum(tf.square(image[:, 1:] - 0.9 * image[:, :-1]))
        return {"total": content + 10.0 * style, "content": content, "style": style}

    return compute_costs


def test_lbfgs_reduces_a_toy_cost_and_respects_the_bounds():
    target = tf.constant(np.random.default_rng(0).uniform(-0.5, 1.5, (1, 8, 12, 3)), tf.float32)  # partly outside
    image = tf.Variable(np.full((1, 8, 12, 3), 0.5, np.float32))
    step = nst_utils.LBFGSStep(toy_costs(target), image)
    totals = [step()["total"] for _ in range(5)]
    step.close()
    assert all(a > b for a, b in itertools.pairwise(totals)), totals
    assert image.numpy().min() >= 0.0 and image.numpy().max() <= 1.0
    assert step.evaluations >= 5


def test_lbfgs_matches_an_independent_scipy_run():
    import scipy.optimize

    target = np.random.default_rng(1).uniform(0, 1, (1, 4, 4, 3)).astype(np.float32)
    image = tf.Variable(np.zeros_like(target))
    step = nst_utils.LBFGSStep(toy_costs(tf.constant(target)), image)
    with pytest.raises(nst_utils.OptimisationConverged):
        for _ in range(200):
            step()

    def f(x):
        x = x.reshape(target.shape)
        d = x[:, 1:] - 0.9 * x[:, :-1]
        grad = 2 * (x - target)
        grad[:, 1:] += 20 * d
        grad[:, :-1] -= 18 * d
        return np.sum((x - target) ** 2) + 10 * np.sum(d**2), grad.ravel()

    expected = scipy.optimize.minimize(f, np.zeros(target.size), jac=True, method="L-BFGS-B", bounds=[(0, 1)] * 48)
    np.testing.assert_allclose(image.numpy().ravel(), expected.x, atol=1e-3)


def test_the_run_loop_drives_lbfgs_and_stop_ends_it(tmp_path):
    target = tf.constant(np.random.default_rng(2).uniform(0, 1, (1, 32, 32, 3)), tf.float32)
    image = tf.Variable(np.zeros((1, 32, 32, 3), np.float32))
    step = nst_utils.LBFGSStep(toy_costs(target), image)
    run = nst_utils.StyleTransferRun(step, image, 10**6, tmp_path / "run", live_view=False)
    run.start()
    while len(run.history) < 3:
        run.wait(0.05)
    run.stop()
    run.wait()
    assert run.message.startswith("stopped at iteration")
    assert step._thread is not None and not step._thread.is_alive(), "the L-BFGS worker must end with the run"
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert len(rows) >= 3 and float(rows[-1]["total"]) < float(rows[0]["total"])
    assert (tmp_path / "run" / "final.png").exists()


def test_a_converged_lbfgs_run_ends_cleanly(tmp_path):
    image = tf.Variable(np.zeros((1, 32, 32, 3), np.float32))
    step = nst_utils.LBFGSStep(toy_costs(tf.constant(0.3, shape=(1, 32, 32, 3))), image)
    run = nst_utils.StyleTransferRun(step, image, 500, tmp_path / "run", live_view=False)
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
    step = nst_utils.LBFGSStep(compute_costs, image)
    for _ in range(5):
        step()
    weight.assign(100.0)
    after = [step()]  # without the restart, scipy's stop would end the optimisation here
    with pytest.raises(nst_utils.OptimisationConverged):  # the quadratic converges for real in the end
        for _ in range(500):
            after.append(step())
    assert step.restarts == 1, "one restart for one move of the sliders"
    assert len(after) > 3 and after[-1]["total"] < after[0]["total"]
    undisturbed = tf.Variable(np.full((1, 16, 16, 3), 0.5, np.float32))  # the weight does not move the minimum
    reference = nst_utils.LBFGSStep(costs, undisturbed)
    with pytest.raises(nst_utils.OptimisationConverged):
        for _ in range(500):
            reference()
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
        step = nst_utils.LBFGSStep(compute_costs, image, first_step_rms=first_step_rms)
        step()
        step.close()
        evaluations[first_step_rms] = step.evaluations
        if first_step_rms is not None:
            moved_rms = float(np.sqrt(np.mean((image.numpy() - 0.5) ** 2)))
            assert moved_rms == pytest.approx(first_step_rms, rel=0.01)
    assert evaluations[0.1] == 2 < evaluations[None], evaluations  # the start, then one accepted step


def test_coarse_sizes_halve_and_keep_the_aspect_ratio():
    assert nst_utils.coarse_sizes(300, 400, levels=3) == [(75, 100), (150, 200), (300, 400)]
    assert nst_utils.coarse_sizes(1080, 1920, levels=2) == [(540, 960), (1080, 1920)]
    assert nst_utils.coarse_sizes(48, 64, levels=3) == [(48, 64)]  # below 32 px is left out
    with pytest.raises(ValueError, match="levels"):
        nst_utils.coarse_sizes(300, 400, levels=0)


def test_resize_image_upsamples_batches_and_images_within_0_1():
    small = np.random.default_rng(3).random((1, 15, 20, 3)).astype(np.float32)
    big = nst_utils.resize_image(small, 30, 40)
    assert big.shape == (1, 30, 40, 3) and big.min() >= 0.0 and big.max() <= 1.0
    assert nst_utils.resize_image(small[0], 60, 80).shape == (60, 80, 3)
    np.testing.assert_allclose(big.mean(), small.mean(), atol=0.02)


def test_memory_estimate_grows_with_size_and_depth():
    sizes = [(48, 64), (300, 400), (768, 1024), (1080, 1920)]
    estimates = [nst_utils.estimate_memory_bytes(h, w, "conv5_1") for h, w in sizes]
    assert estimates == sorted(estimates) and len(set(estimates)) == len(estimates)
    assert nst_utils.estimate_memory_bytes(300, 400, "conv1_1") < nst_utils.estimate_memory_bytes(300, 400, "conv5_1")
    assert nst_utils.estimate_memory_bytes(1080, 1920) < 16e9, "1920×1080 must fit a 24 GB machine"


def test_a_size_that_does_not_fit_is_refused_with_a_smaller_max_side():
    available = nst_utils.estimate_memory_bytes(768, 1024)
    assert nst_utils.check_memory(768, 1024, available_bytes=available) == available
    with pytest.raises(nst_utils.NSTError, match=r"4000×3000 px .* needs about .* GB.*max_side_px=\d+") as err:
        nst_utils.check_memory(3000, 4000, available_bytes=available)
    suggested = int(str(err.value).split("max_side_px=")[1].split()[0])
    assert 400 <= suggested <= 1024
    assert nst_utils.estimate_memory_bytes(round(3000 * suggested / 4000), suggested) <= available


def test_bf16_model_gives_finite_outputs_close_to_fp32():
    image = np.random.default_rng(4).random((1, 48, 64, 3)).astype(np.float32)
    layers = ["conv1_1", "conv3_1", "conv4_2"]
    fp32 = nst_utils.load_vgg_model_at_precision("fp32", weights="random", output_layers=layers)(image)
    with pytest.warns(UserWarning, match="no bf16 speed-up") if not nst_utils.bf16_hardware()[0] else _nothing():
        bf16_model = nst_utils.load_vgg_model_at_precision("bf16", weights="random", output_layers=layers)
    bf16 = bf16_model(image)
    for name in layers:
        assert bf16[name].dtype == tf.float32, "bf16 activations must come back as float32 for the Gram matrices"
        assert np.isfinite(bf16[name].numpy()).all()
        relative = np.linalg.norm(bf16[name] - fp32[name]) / np.linalg.norm(fp32[name])
        assert relative < 0.03, f"{name}: bf16 differs from fp32 by {relative:.3%}"


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def test_speed_options_are_checked_in_one_line():
    good = dict(optimizer="lbfgs", coarse_to_fine=2, coarse_iterations=10, precision="fp32")
    nst_utils.check_speed_options(**good)
    for bad, words in (({"optimizer": "sgd"}, "optimizer"), ({"coarse_to_fine": 0}, "coarse_to_fine"),
                       ({"precision": "fp16"}, "precision")):  # fmt: skip
        with pytest.raises(ValueError, match=words):
            nst_utils.check_speed_options(**{**good, **bad})


@pytest.mark.slow
def test_benchmark_quick_mode_runs_end_to_end(tmp_path):
    out = tmp_path / "results.md"
    done = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "bench" / "benchmark.py"), "--quick", "--repeats", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    text = out.read_text()
    for words in (
        "ours ÷ reference",
        "GFLOP/s",
        "bf16",
        "Time to target",
        "L-BFGS",
        "coarse to fine",
        "peak RSS",
        "The default run",
    ):
        assert words in text, f"{words!r} missing from the benchmark's report"


def test_the_notebook_does_not_shadow_its_optimizer_setting():
    """`optimizer` is a setting ("lbfgs"/"adam"); a later cell rebinding it would silently switch optimisers."""
    import nbformat

    notebook = nbformat.read(PROJECT_DIR / "notebooks" / "01_neural_style_transfer.ipynb", as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
            for name in ("optimizer", "precision", "coarse_to_fine", "iterations"):
                assert f"\n{name} = " not in f"\n{cell.source}", f"a cell rebinds the setting {name}:\n{cell.source}"
