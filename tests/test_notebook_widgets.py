"""The live view's α slider steers a running optimisation, through the same comm messages a browser sends.

A real ipykernel runs the notebook's code cells up to the full run's `run.start()`, with α lowered to 0.01 the way
papermill injects parameters (style dominates; the content cost climbs). Then, as "Run All" does, the next cell
(the one that waits for the run) is sent and left running. From then on the test acts only as a frontend would:
it reads the status widget's updates on iopub, sends the α slider's widget a comm_msg "update" to 1e5, and clicks
the stop button with a comm_msg. Afterwards the kernel must show that alpha_var took the new value while the run
went on, that the compiled step used it without being retraced, and that the content cost fell clearly. It runs
once with each optimiser: Adam (the default, the notebook's train_step) and L-BFGS (nst_utils.LBFGS, which starts
again when the slider changes the cost).

Runs are deterministic on the CPU (seeded noise, seeded random VGG features): only the iteration at which the
message lands can vary, so the assertions bound that window instead of assuming an exact iteration.
"""

import contextlib
import re
import time
from collections.abc import Callable

import numpy as np
import pytest
from ci_sizes import CI_ENVIRONMENT
from kernel_fixture import PROJECT_DIR, Status, TestKernel, isolated_env, notebook_code_cells

pytestmark = pytest.mark.slow

ALPHA_START = 0.01  # injected after the parameters cell: β = 40 dominates, the content cost climbs
ALPHA_NEW = 1e5  # the slider's maximum (10**5): content dominates
CHANGE_AT = 30  # the slider moves once the status shows this iteration (the content cost is still climbing there)
RESPONSE_ITERATIONS = 40  # iterations watched after the status shows the new α
MAX_LAG = 30  # iterations within which the status must show the new α
# The compiled function each optimiser's run calls, and how often it may be traced (Adam: twice counts the optimiser
# variables made on the first call). `step` is the run cell's optimiser: train_step, or an nst_utils.LBFGS.
STEP_FUNCTIONS = {"adam": ("run.step", 2), "lbfgs": ("run.step._value_and_gradient", 1)}  # the full size's


@pytest.fixture
def kernel(tmp_path):
    env = isolated_env(
        tmp_path,
        NST_MAX_SIDE_PX=CI_ENVIRONMENT["NST_MAX_SIDE_PX"],  # the CI size
        NST_ITERATIONS="400",  # far more than the test waits for: the run is still going when the slider moves
        NST_LIVE_VIEW="1",
        NST_OUTPUT_DIR=str(tmp_path / "output"),
    )
    kernel = TestKernel(tmp_path / "kernel", cwd=PROJECT_DIR / "notebooks", env=env)
    try:
        yield kernel
    finally:
        with contextlib.suppress(Exception):  # a failed stop must not keep the kernel from being shut down
            kernel.km.interrupt_kernel()  # ends a wait cell that may still be running
            kernel.execute("if 'run' in globals():\n    run.stop()\n    run.wait(timeout_s=30)", timeout_s=40)
        kernel.shutdown()


def run_notebook_until_start(kernel: TestKernel, cells: list, optimizer: str) -> int:
    """Execute the code cells in order, α and the optimiser set after the parameters cell, up to the full run's
    `run.start()` (a line of its own; the trial runs before it are `trial_run.start()`)."""
    for index, cell in enumerate(cells):
        kernel.execute(cell.source, timeout_s=180)
        if "parameters" in cell.metadata.get("tags", []):  # as papermill's injected-parameters cell does
            kernel.execute(f"alpha = {ALPHA_START!r}\noptimizer = {optimizer!r}")
        if re.search(r"^run\.start\(\)", cell.source, re.M):  # the full run's, not a trial run's
            return index
    raise AssertionError("no code cell calls run.start()")


class StatusWatcher:
    """Reads the status widget's state updates from iopub, as the browser receives them."""

    def __init__(self, kernel: TestKernel, status_model_id: str):
        self.kernel, self.model_id = kernel, status_model_id
        self.seen: list[Status] = []

    def until(self, wanted: Callable[[Status], bool], give_up: Callable[[Status], bool], why: str, timeout_s=90):
        deadline = time.monotonic() + timeout_s
        while True:
            msg = self.kernel.next_iopub(deadline)
            content = msg["content"]
            if msg["msg_type"] != "comm_msg" or content.get("comm_id") != self.model_id:
                continue
            status = Status.parse(content["data"].get("state", {}).get("value", ""))
            if status is None:
                continue
            self.seen.append(status)
            if wanted(status):
                return status
            assert not give_up(status), f"{why}; status lines seen: {self.seen}"


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_alpha_slider_steers_the_run_while_the_wait_cell_runs(kernel, optimizer):
    cells = notebook_code_cells()
    start_index = run_notebook_until_start(kernel, cells, optimizer)
    step_function, max_traces = STEP_FUNCTIONS[optimizer]
    assert kernel.evaluate("settings.optimizer") == optimizer, "the settings cell reads the injected optimizer"
    assert kernel.evaluate("float(alpha_var.numpy())") == pytest.approx(ALPHA_START)
    assert kernel.evaluate("run.alpha_slider.value") == pytest.approx(ALPHA_START)
    ids = kernel.evaluate(
        "{'alpha': run.alpha_slider.model_id, 'stop': run._widgets['stop'].model_id, "
        "'status': run._widgets['status'].model_id}"
    )
    wait_cell = cells[start_index + 1].source
    assert "run.wait" in wait_cell, f"the cell after run.start() is expected to wait for the run:\n{wait_cell}"
    wait_request = kernel.submit(wait_cell)  # as "Run All" does: from now on the kernel is busy with this cell

    statuses = StatusWatcher(kernel, ids["status"])
    never = "the run ended, or the status stopped updating"
    before = statuses.until(lambda s: s.iteration >= CHANGE_AT, lambda s: False, never).iteration
    kernel.send_comm_msg(ids["alpha"], {"method": "update", "state": {"value": ALPHA_NEW}, "buffer_paths": []})
    changed = statuses.until(
        lambda s: s.alpha == ALPHA_NEW,
        lambda s: s.iteration > before + MAX_LAG,
        f"the status still shows the old α {MAX_LAG} iterations after the slider moved: the slider's message was "
        "not handled while the wait cell ran (is the kernel blocked in it?)",
    )
    after = changed.iteration  # its row read the new α after its step: every later step used the new α
    assert changed.total_matches(), f"the status line's J is not α·content + β·style: {changed}"
    last = statuses.until(lambda s: s.iteration >= after + RESPONSE_ITERATIONS, lambda s: False, never)
    assert last.total_matches() and last.alpha == ALPHA_NEW, last
    kernel.send_comm_msg(ids["stop"], {"method": "custom", "content": {"event": "click"}})
    printed = kernel.collect(wait_request, wait_cell, timeout_s=60)
    assert "stopped at iteration" in printed, printed

    # Now the kernel is free again: check what happened inside it.
    assert kernel.evaluate("run.done")
    assert kernel.evaluate("float(alpha_var.numpy())") == ALPHA_NEW
    assert kernel.evaluate("run.alpha_slider.value") == ALPHA_NEW
    traced = kernel.evaluate(f"{step_function}.experimental_get_tracing_count()")
    assert 1 <= traced <= max_traces, f"{step_function} traced {traced} times: the new α must not retrace it"
    history = kernel.evaluate("list(run.history)")
    assert len(history) >= after + RESPONSE_ITERATIONS

    old, new = float(np.float32(ALPHA_START)), float(np.float32(ALPHA_NEW))
    alphas = [row["alpha"] for row in history]
    assert alphas[:before] == [old] * before, "α changed before the slider moved"
    assert alphas[after - 1 :] == [new] * (len(history) - after + 1), "α is not the slider's value after the change"
    assert sorted(alphas, key=lambda a: a == new) == alphas, "α went back to the old value"

    # The compiled step reads alpha_var: J = α·J_content + β·J_style with each row's α, before and after the change.
    for row in history[:before] + history[after:]:
        expected = row["alpha"] * row["content"] + row["beta"] * row["style"]
        assert row["total"] == pytest.approx(expected, rel=1e-3), row

    content = np.array([row["content"] for row in history])
    reference = content[before - 1]  # the last iteration surely run with the old α
    assert reference >= 0.9 * content[before - 11], f"the content cost was already falling: {content[:before]}"
    later = content[after - 1 + RESPONSE_ITERATIONS]
    assert later < 0.6 * reference, (
        f"content cost {reference:.4g} at iteration {before}, {later:.4g} at iteration {after + RESPONSE_ITERATIONS}: "
        f"raising α did not pull the image towards the content; content costs {np.round(content, 3).tolist()}"
    )
