"""The run loop: an optimiser drives iterations in a background thread; listeners save, show and report them.

StyleTransferRun owns the thread, pause, stop, wait and the NaN rollback, and the sizes of a coarse-to-fine run
(its stages). Everything else is a listener with the hooks on_start, on_stage, on_iteration and on_end, the way
Keras callbacks are: the run folder (nst.run_folder), the progress bar and the live view (nst.live_view).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from nst.errors import NSTError, OptimisationConverged
from nst.images import resize_image

LOSS_NAMES = ("total", "content", "style")  # the scalars a step returns, in this order of display
# A cost this many times the starting image's (at the current α and β) is a blow-up: the step is too large.
# Measured at 64 px: Adam at learning rate 1 or more jumps to about 27× the start and stays there; at 0.05 it
# oscillates up to 7× above its best so far on tiny noise images, but never comes back above the start.
BLOW_UP_FACTOR = 10.0
FLOAT32_MAX = 3.4028234663852886e38


class Stage(NamedTuple):
    """One size of a run: `iterations` iterations of `step` on `image`, a tf.Variable (1, H, W, 3) of that size.

    `step` is a function () -> costs that does one iteration (Adam's train_step) or an optimiser with `minimise`
    (nst.optimisers.LBFGS). A stage after the first starts from the previous stage's result, resized to its size.
    """

    step: object
    image: object
    iterations: int


class RunListener:
    """Hooks a StyleTransferRun calls from its thread. Images are (H, W, 3) float32 numpy arrays in [0, 1]."""

    def on_start(self, run: StyleTransferRun, image_rgb01: np.ndarray) -> None:
        """Before the first iteration; `image_rgb01` is the starting image."""

    def on_stage(self, run: StyleTransferRun, image_rgb01: np.ndarray) -> None:
        """When a stage (a size) begins, the first one included: run.stage_index, run.size_px say which."""

    def on_iteration(self, run: StyleTransferRun, row: Mapping, image_rgb01: np.ndarray) -> None:
        """After each good iteration: `row` holds iteration, the costs, alpha, beta and seconds."""

    def on_end(self, run: StyleTransferRun, image_rgb01: np.ndarray) -> None:
        """Once, however the run ended; `image_rgb01` is the last good image. run.message says how it ended."""


class _RunEnded(Exception):
    """Raised from the per-iteration callback to end the optimiser's loop: stop pressed, or the cost diverged."""


class StyleTransferRun:
    """Runs an optimiser for `iterations` iterations in a background thread, telling its listeners after each.

    `step` is either a function () -> {"total", "content", "style"} that does one iteration (Adam's train_step), or
    an optimiser with `minimise(max_iterations, on_iteration)` that drives its own loop and calls on_iteration(costs)
    after each iteration (nst.optimisers.LBFGS). `image` is the tf.Variable (1, H, W, 3) it updates.

    Coarse to fine: pass a list of Stage, smallest size first, instead of step, image and iterations. Each stage
    after the first starts from the previous one's result, resized; the sliders, pause, stop and the rollback work
    in every stage, and however the run ends, the last stage's image (the full size) holds the result.
    `history`: rows of iterations already run on the first stage's image (a trial): the run continues their
    numbering, writes them first, and counts them against the first stage's iterations.

    The thread keeps the notebook responsive: widget events (the α/β sliders, pause, stop) reach the kernel while
    the optimisation runs. `wait()` blocks until the run ends; Ctrl-C or an interrupt during `wait()` stops the run
    cleanly. Without `listeners`, the run writes its run folder (RunFolder) and shows the live view or a progress bar.
    """

    def __init__(
        self,
        step,
        image=None,
        iterations: int | None = None,
        run_dir=None,
        *,
        save_every: int = 100,
        alpha=None,
        beta=None,
        live_view: bool = True,
        display_every: int = 10,
        params: Mapping | None = None,
        listeners: Sequence[RunListener] | None = None,
        learning_rate: float | None = None,
        history: Sequence[Mapping] = (),
    ):
        if isinstance(step, (list, tuple)) and (image is not None or iterations is not None):
            raise TypeError("with a list of stages, pass no image or iterations (and run_dir by name)")
        stages = (
            [Stage(*stage) for stage in step] if isinstance(step, (list, tuple)) else [Stage(step, image, iterations)]
        )
        counts = [stage.iterations for stage in stages]
        if not stages or any(count is None or int(count) < 0 for count in counts):
            shown = counts[0] if len(counts) == 1 else counts
            raise ValueError(f"iterations={shown}: {'each ' if len(counts) > 1 else ''}must be 0 or more")
        self.stages = [stage._replace(iterations=int(stage.iterations)) for stage in stages]
        self.stage_index = 0  # the stage (size) running now
        self.step = self.stages[0].step
        self.image = self.stages[0].image  # tf.Variable (1, H, W, 3), RGB in [0, 1]: the current stage's
        self.iterations = max(sum(stage.iterations for stage in self.stages), len(history))  # every stage's
        self.alpha = alpha  # tf.Variable read by the step, or None
        self.beta = beta
        self.learning_rate = learning_rate  # named in the message when the cost diverges
        if listeners is None:
            from nst.live_view import LiveView, ProgressBar
            from nst.run_folder import RunFolder

            if run_dir is None:
                raise ValueError("pass run_dir (a new folder, e.g. from make_run_dir) or your own listeners")
            view = LiveView(display_every) if live_view else ProgressBar()
            listeners = [RunFolder(run_dir, save_every=save_every, params=params), view]
        self.listeners = list(listeners)
        self.history: list[dict] = [dict(row) for row in history]  # one dict per finished iteration
        self.prior_iterations = len(self.history)  # rows handed over (a trial's), not run by this run
        self.message = ""  # how the run ended, one line
        self.error: BaseException | None = None
        self.started_s: float | None = None  # time.perf_counter() at the start
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._finished = threading.Event()  # set once every listener has finished (final.png is saved)
        self._thread: threading.Thread | None = None
        self._last_good_image = None  # (1, H, W, 3) numpy: what the NaN rollback restores
        self._image_before_last_step = None  # one further back: where costs measured before a step belong
        self._costs_before_step = False  # whether the optimiser reports the costs of the image it started from
        self._stage_start_row = 0  # index into history of the current stage's first row: its starting cost
        self._step_start_s = 0.0
        self._step_weights = (float("nan"), float("nan"))  # α and β as the current step began

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> StyleTransferRun:
        """Start the optimisation in a background thread; listeners that need it (the run folder) check first."""
        if self._thread is not None:
            raise RuntimeError("this run has already been started; make a new StyleTransferRun")
        for listener in self.listeners:
            if hasattr(listener, "prepare"):
                listener.prepare(self)  # in the caller's thread, so an unwritable folder fails the cell at once
        self._thread = threading.Thread(target=self._loop, name="style-transfer", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout_s: float | None = None) -> StyleTransferRun:
        """Block until the run ends (or `timeout_s` passes); an interrupt stops the run and keeps its work."""
        if self._thread is None:
            raise RuntimeError("call start() first")
        try:
            self._finished.wait(timeout_s)
        except KeyboardInterrupt:
            self.stop()
            self._wait_for_the_end()
            print(f"Interrupted: {self.message}")
            raise
        if self.error is not None and self._finished.is_set():
            raise self.error  # a failed or diverged run fails the cell (and `make run`), after saving its work
        return self

    async def wait_async(self, poll_s: float = 0.1) -> StyleTransferRun:
        """`await run.wait_async()` in a notebook cell: wait() that leaves the live view's widgets working.

        A cell blocked in wait() holds the kernel, so with "Run All" the sliders, pause and stop would act only
        after the run; while a cell awaits, ipykernel (7.x) still handles widget messages. An interrupt stops the
        run and keeps its work, as with wait().
        """
        import asyncio

        if self._thread is None:
            raise RuntimeError("call start() first")
        try:
            while not self._finished.is_set():
                await asyncio.sleep(poll_s)
        except (KeyboardInterrupt, asyncio.CancelledError):  # ipykernel turns an interrupt into a cancellation
            self.stop()
            self._wait_for_the_end()
            print(f"Interrupted: {self.message}")
            raise
        if self.error is not None:
            raise self.error
        return self

    def _wait_for_the_end(self) -> None:
        """After stop(): wait until final.png is saved, whatever further interrupts arrive meanwhile."""
        while True:
            try:
                self._finished.wait()  # an Event, not Thread.join: a join cut short by Ctrl-C can lie
                return
            except KeyboardInterrupt:
                continue

    def pause(self) -> None:
        """Pause after the current iteration."""
        self._running.clear()

    def resume(self) -> None:
        """Resume a paused run."""
        self._running.set()

    def stop(self) -> None:
        """Stop after the current iteration; the image so far is saved as final.png."""
        self._stop.set()
        self._running.set()

    @property
    def done(self) -> bool:
        """True once the run has ended and every listener has finished."""
        return self._finished.is_set()

    @property
    def size_px(self) -> tuple[int, int]:
        """(height_px, width_px) of the stage running now."""
        return tuple(int(n) for n in self.image.shape[1:3])

    @property
    def final_size_px(self) -> tuple[int, int]:
        """(height_px, width_px) of the last stage: the size of the result."""
        return tuple(int(n) for n in self.stages[-1].image.shape[1:3])

    def report_problem(self, error: BaseException, text: str) -> None:
        """For listeners' on_end: record a failure (the first one wins) and add `text` to the message."""
        self.error = self.error or error
        self.message += f"; {text}"

    # The run folder's and the live view's handles, for the notebook and the tests.
    @property
    def run_dir(self):
        """The run folder (a pathlib.Path), or None without a RunFolder listener."""
        return getattr(self._listener_named("RunFolder"), "run_dir", None)

    @property
    def final_path(self):
        """Where the final image is (or will be) saved."""
        return self.run_dir / "final.png"

    @property
    def saved_paths(self) -> list:
        """The snapshots and final image written so far, oldest first."""
        return getattr(self._listener_named("RunFolder"), "saved_paths", [])

    @property
    def alpha_slider(self):
        """The live view's α slider (ipywidgets FloatLogSlider); None before start(), without live view or α."""
        return getattr(self._listener_named("LiveView"), "widgets", {}).get("alpha_slider")

    @property
    def beta_slider(self):
        """The live view's β slider; None before start(), without live view or β."""
        return getattr(self._listener_named("LiveView"), "widgets", {}).get("beta_slider")

    @property
    def _widgets(self) -> dict | None:
        return getattr(self._listener_named("LiveView"), "widgets", None)

    def _listener_named(self, class_name: str):
        return next((item for item in self.listeners if type(item).__name__ == class_name), None)

    # -- the loop --------------------------------------------------------------------------------
    def _loop(self) -> None:
        self._last_good_image = self._image_before_last_step = self.image.numpy()
        self.started_s = self._step_start_s = time.perf_counter()
        self._step_weights = (_value(self.alpha), _value(self.beta))  # as the first step will read them
        finished = 0
        try:
            for listener in self.listeners:
                listener.on_start(self, self._last_good_image[0])
            self._check_controls()
            for index, stage in enumerate(self.stages):
                self._enter_stage(index)
                iterations = stage.iterations - (self.prior_iterations if index == 0 else 0)
                optimiser = stage.step if hasattr(stage.step, "minimise") else _OneStepPerCall(stage.step)
                self._costs_before_step = getattr(optimiser, "costs_before_step", False)
                optimiser.minimise(max(iterations, 0), self._after_iteration)
            self.message = f"finished {self.iterations} iterations"
        except _RunEnded:
            pass  # self.message says why
        except OptimisationConverged as err:  # e.g. L-BFGS met its tolerance: a normal end, not a failure
            self.message = f"{err} after {len(self.history)} iterations"
        except BaseException as err:  # any failure still saves the last good image below
            finished = len(self.history)
            self.error = err
            self.message = f"failed at iteration {finished + 1}: {type(err).__name__}: {err}"
        finally:
            self._finish()

    def _enter_stage(self, index: int) -> None:
        """Make stage `index` the current one; from the second on, its image starts from the last good image."""
        stage = self.stages[index]
        if index > 0:
            stage.image.assign(resize_image(self._last_good_image[0], *stage.image.shape[1:3])[np.newaxis])
        self.stage_index, self.step, self.image = index, stage.step, stage.image
        self._last_good_image = self._image_before_last_step = self.image.numpy()
        self._stage_start_row = len(self.history) if index > 0 else 0
        for listener in self.listeners:
            listener.on_stage(self, self._last_good_image[0])
        self._check_controls()

    def _after_iteration(self, costs: Mapping) -> None:
        """The optimiser's per-iteration callback: roll back a diverged image, tell the listeners, obey the controls."""
        losses = {name: float(value) for name, value in costs.items()}
        image_now = self.image.numpy()
        iteration = len(self.history) + 1
        what = self._divergence(losses, image_now)
        if what:
            # A step that reports the costs of the image it started from (Adam's train_step) has shown that the
            # image after the previous iteration is the bad one: go one further back. Bad pixels are this step's.
            one_further = self._costs_before_step and not what.startswith("the image's pixels")
            if one_further:
                self._last_good_image = self._image_before_last_step
            self.image.assign(self._last_good_image)
            restored = max(iteration - 2, 0) if one_further else iteration - 1
            self.message = f"{what} at iteration {iteration}: restored the image from iteration {restored}; "
            self.message += self._divergence_fix(losses)
            self.error = NSTError(self.message)
            raise _RunEnded
        self._image_before_last_step, self._last_good_image = self._last_good_image, image_now
        now_s = time.perf_counter()
        row = {
            "iteration": iteration,
            **{name: losses.get(name, float("nan")) for name in LOSS_NAMES},
            "alpha": self._step_weights[0],  # the weights as the step began: what its costs were weighed with
            "beta": self._step_weights[1],
            "seconds": now_s - self._step_start_s,
            "height_px": image_now.shape[1],
            "width_px": image_now.shape[2],
        }
        self.history.append(row)
        for listener in self.listeners:
            listener.on_iteration(self, row, image_now[0])
        self._check_controls()
        self._step_start_s = time.perf_counter()
        self._step_weights = (_value(self.alpha), _value(self.beta))

    def _divergence(self, losses: Mapping, image_now) -> str:
        """What went wrong, if the cost is NaN or infinite, the pixels NaN, or the cost blew up; else ''."""
        if not all(math.isfinite(v) for v in losses.values()):
            return f"the cost became {losses['total']}"
        if not np.isfinite(image_now).all():
            return "the image's pixels became NaN"
        if self.alpha is None or self.beta is None or not self.history or "content" not in losses:
            return ""
        if len(self.history) <= self._stage_start_row:
            return ""  # a new stage's first cost: a new size has costs of its own
        alpha, beta = self._step_weights
        weighted = alpha * losses["content"] + beta * losses["style"]
        first = self.history[self._stage_start_row]  # the stage's first row
        start = alpha * first["content"] + beta * first["style"]  # the stage's starting cost, at today's α and β
        if start > 0 and weighted > BLOW_UP_FACTOR * start:
            return f"the cost blew up from {start:.3g} at the start to {weighted:.3g}"
        return ""

    def _divergence_fix(self, losses: Mapping) -> str:
        """The fix: smaller weights where α·J or β·J overflowed float32, else a smaller learning rate."""
        alpha, beta = self._step_weights
        parts = [alpha * losses.get("content", 0.0), beta * losses.get("style", 0.0)]
        if math.isinf(losses["total"]) and any(abs(part) > FLOAT32_MAX for part in parts if math.isfinite(part)):
            return (
                f"alpha={alpha:g} and beta={beta:g} overflow float32 in the total cost; "
                "use weights below 1e12 and run again"
            )
        now = "" if self.learning_rate is None else f"now {self.learning_rate:g}, "
        return f"lower learning_rate ({now}e.g. halve it) and run again"

    def _check_controls(self) -> None:
        """Wait while paused; end the loop if stop was pressed."""
        self._running.wait()
        if self._stop.is_set():
            self.message = f"stopped at iteration {len(self.history)} of {self.iterations}"
            raise _RunEnded

    def _finish(self) -> None:
        """Every listener's on_end, each guarded, and then wake wait(): it must never hang.

        A run that ended before its last stage leaves its image, resized to the last stage's size, in that stage's
        image: the result always has the full size."""
        try:
            last = self.stages[-1].image
            if self.image is not last and self._last_good_image is not None:
                self._last_good_image = resize_image(self._last_good_image[0], *last.shape[1:3])[np.newaxis]
                last.assign(self._last_good_image)
                self.image = last
            for listener in self.listeners:
                try:
                    listener.on_end(self, self._last_good_image[0])
                except BaseException as err:  # never leave wait() hanging, whatever failed while finishing
                    self.report_problem(err, f"failed while finishing: {type(err).__name__}: {err}")
        finally:
            self._finished.set()


class _OneStepPerCall:
    """A step function () -> costs as an optimiser: one call per iteration. Like Adam's train_step, the step
    reports the costs of the image it started from."""

    costs_before_step = True

    def __init__(self, step: Callable[[], Mapping]):
        self.step = step

    def minimise(self, max_iterations: int, on_iteration: Callable[[Mapping], None]) -> None:
        for _ in range(max_iterations):
            on_iteration(self.step())


def _value(variable) -> float:
    return float("nan") if variable is None else float(variable.numpy())
