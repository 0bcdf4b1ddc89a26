"""The live view's α slider steers a running optimisation, through the same comm messages a browser sends.

A real ipykernel runs the notebook's code cells up to the full run's `run.start()`, with α lowered to 0.01 the way
papermill injects parameters (style dominates; the content cost rises). While the run goes on in its background
thread, the client sends the α slider's widget a `comm_msg` "update" to 1e5, then clicks the stop button the same
way. The kernel must have assigned alpha_var, the compiled train_step must use the new α without being retraced,
and the content cost must fall clearly afterwards.

Runs are deterministic on the CPU (seeded noise, seeded random VGG features): only the iteration at which the
message lands varies, so the assertions bound that window instead of assuming an exact iteration.
"""

import contextlib
import time

import numpy as np
import pytest
from kernel_fixture import PROJECT_DIR, TestKernel, isolated_env, notebook_code_cells

pytestmark = pytest.mark.slow

ALPHA_START = 0.01  # injected after the parameters cell: β = 40 dominates, the content cost climbs
ALPHA_NEW = 1e5  # the slider's maximum (10**5): content dominates
CHANGE_AFTER = 30  # iterations run before the slider moves (the content cost is still climbing there)
RESPONSE_ITERATIONS = 40  # iterations run after the slider moves
POLL_S = 0.2


@pytest.fixture
def kernel(tmp_path):
    env = isolated_env(
        tmp_path,
        NST_MAX_SIDE_PX="64",
        NST_ITERATIONS="400",  # far more than the test waits for: the run is still going when the slider moves
        NST_LIVE_VIEW="1",
        NST_OUTPUT_DIR=str(tmp_path / "output"),
    )
    kernel = TestKernel(tmp_path / "kernel", cwd=PROJECT_DIR / "notebooks", env=env)
    try:
        yield kernel
    finally:
        with contextlib.suppress(Exception):  # a failed stop must not keep the kernel from being shut down
            kernel.execute("if 'run' in globals():\n    run.stop()\n    run.wait(timeout_s=30)", timeout_s=40)
        kernel.shutdown()


def run_notebook_until_start(kernel: TestKernel) -> None:
    """Execute the code cells in order, α overridden after the parameters cell, up to the one that starts the run."""
    for cell in notebook_code_cells():
        kernel.execute(cell.source, timeout_s=180)
        if "parameters" in cell.metadata.get("tags", []):
            kernel.execute(f"alpha = {ALPHA_START!r}")  # as papermill's injected-parameters cell does
        if "run.start()" in cell.source:
            return
    raise AssertionError("no code cell calls run.start()")


def wait_for_iterations(kernel: TestKernel, count: int, timeout_s: float = 90) -> int:
    deadline = time.monotonic() + timeout_s
    while (done := kernel.evaluate("len(run.history)")) < count:
        assert kernel.evaluate("run.done") is False, f"the run ended early: {kernel.evaluate('run.message')}"
        assert time.monotonic() < deadline, f"only {done} of {count} iterations after {timeout_s} s"
        time.sleep(POLL_S)
    return done


def test_alpha_slider_message_steers_the_running_optimisation(kernel):
    run_notebook_until_start(kernel)
    tracing_count = kernel.evaluate("train_step.experimental_get_tracing_count()")
    assert kernel.evaluate("float(alpha_var.numpy())") == pytest.approx(ALPHA_START)
    slider_id = kernel.evaluate("run.alpha_slider.model_id")
    assert kernel.evaluate("run.alpha_slider.value") == pytest.approx(ALPHA_START)

    wait_for_iterations(kernel, CHANGE_AFTER)
    before = kernel.evaluate("len(run.history)")  # rows up to here were computed with the old α
    kernel.send_comm_msg(slider_id, {"method": "update", "state": {"value": ALPHA_NEW}, "buffer_paths": []})
    deadline = time.monotonic() + 10  # the shell channel handles the comm message before the next request
    while kernel.evaluate("float(alpha_var.numpy())") != ALPHA_NEW:
        assert time.monotonic() < deadline, "the slider's comm message never reached alpha_var"
        time.sleep(POLL_S)
    after = kernel.evaluate("len(run.history)")  # rows after the next one were computed with the new α
    assert not kernel.evaluate("run.done"), "the run ended before the slider moved: raise NST_ITERATIONS"
    assert kernel.evaluate("run.alpha_slider.value") == ALPHA_NEW

    wait_for_iterations(kernel, after + RESPONSE_ITERATIONS)
    kernel.send_comm_msg(
        kernel.evaluate("run._widgets['stop'].model_id"), {"method": "custom", "content": {"event": "click"}}
    )
    kernel.execute("run.wait(timeout_s=30)", timeout_s=40)
    assert kernel.evaluate("run.done")
    assert kernel.evaluate("run.message").startswith("stopped at iteration")
    history = kernel.evaluate("list(run.history)")
    status = kernel.evaluate("run._widgets['status'].value")

    assert kernel.evaluate("train_step.experimental_get_tracing_count()") == tracing_count, "train_step was retraced"
    assert tracing_count <= 2, "train_step traced more than once (twice counts Adam's variables made on first call)"

    old, new = float(np.float32(ALPHA_START)), float(np.float32(ALPHA_NEW))
    alphas = [row["alpha"] for row in history]
    assert alphas[:before] == [old] * before
    assert alphas[after:] == [new] * (len(history) - after)
    assert sorted(alphas, key=lambda a: a == new) == alphas, "α went back to the old value"
    assert "α = 1e+05" in status, status

    # The compiled step reads alpha_var: J = α·J_content + β·J_style with the row's α, before and after the change.
    # (The row just after `after` may have started before the assignment, so it is left out.)
    for row in history[:before] + history[after + 1 :]:
        expected = row["alpha"] * row["content"] + row["beta"] * row["style"]
        assert row["total"] == pytest.approx(expected, rel=1e-3), row

    content = np.array([row["content"] for row in history])
    at_change = content[after - 1]
    assert content[before - 1] >= 0.9 * content[before - 11], f"content cost was already falling: {content[:before]}"
    later = content[after - 1 + RESPONSE_ITERATIONS]
    assert later < 0.6 * at_change, (
        f"content cost {at_change:.4g} at the change, {later:.4g} {RESPONSE_ITERATIONS} iterations later: "
        f"raising α did not pull the image towards the content; content costs {np.round(content, 3).tolist()}"
    )
