"""Optimisers for the run loop: L-BFGS-B (scipy) on the pixels, and the coarse-to-fine sizes.

Adam needs nothing here: the notebook's own `train_step` does one Adam iteration per call, and StyleTransferRun
calls it. L-BFGS owns its loop instead (scipy's minimize), so it runs inside the run's thread and its per-iteration
callback drives the run: no second thread, no queues.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from nst.errors import OptimisationConverged
from nst.vgg19 import MIN_SHORT_SIDE_PX


class _Enough(Exception):
    """Ends scipy's loop once the run's iterations are done."""


class LBFGS:
    """L-BFGS-B on the pixels of `image` (a tf.Variable (1, H, W, 3) in [0, 1]), for StyleTransferRun.

    Values and gradients come from `compute_costs(image) -> {"total", "content", "style"}` in a tf.function
    (float32); scipy works in float64 with the bounds [0, 1]. compute_costs is evaluated afresh each time, so α/β
    variables moved by the sliders take effect at the next evaluation. A moved slider changes the cost under scipy's
    feet, and scipy may then stop (it compares costs from before and after the move): when scipy stops and the image
    it started from no longer costs what it did, L-BFGS starts again from the current image with a fresh curvature
    memory. Otherwise the stop is real, and minimise raises OptimisationConverged.

    L-BFGS-B's first iteration knows no curvature yet: it steps as if the Hessian were the identity, which for a cost
    of this size means a jump to the bounds and several evaluations of line search back. scipy therefore sees the
    cost divided by a constant chosen so that this first step moves the pixels by `first_step_rms` (root mean square,
    in [0, 1] units; None: scipy's own choice). From the second iteration L-BFGS measures the curvature itself and
    the constant changes nothing. At 400×300 this saves about four evaluations in twenty iterations.
    """

    def __init__(
        self,
        compute_costs: Callable[[object], Mapping],
        image,
        *,
        max_corrections: int = 10,
        first_step_rms: float | None = 0.1,
    ):
        import tensorflow as tf

        self.image = image
        self.max_corrections = int(max_corrections)  # L-BFGS memory: pairs of (step, gradient change) kept
        self.first_step_rms = first_step_rms
        self.evaluations = 0  # value-and-gradient evaluations so far (an iteration takes one or more)
        self.restarts = 0  # times the cost changed under scipy (a slider moved) and L-BFGS started again
        self.scipy_message = ""  # scipy's reason for its last stop
        self._shape = tuple(image.shape)
        self._last: tuple[np.ndarray, dict] | None = None  # the last point evaluated and its costs

        @tf.function(input_signature=[tf.TensorSpec(self._shape, tf.float32)])
        def value_and_gradient(image_rgb01):
            with tf.GradientTape() as tape:
                tape.watch(image_rgb01)
                costs = compute_costs(image_rgb01)
            return costs, tape.gradient(costs["total"], image_rgb01)

        self._value_and_gradient = value_and_gradient

    def evaluate(self, x_float64: np.ndarray) -> tuple[float, np.ndarray]:
        """Total cost and its gradient at a flat float64 image, as scipy wants them."""
        import tensorflow as tf

        costs, gradient = self._value_and_gradient(tf.constant(x_float64.reshape(self._shape), tf.float32))
        self.evaluations += 1
        self._last = (x_float64.copy(), {name: float(value) for name, value in costs.items()})
        return float(costs["total"]), gradient.numpy().astype(np.float64).ravel()

    def minimise(self, max_iterations: int, on_iteration: Callable[[Mapping], None]) -> None:
        """Up to `max_iterations` iterations from the current image, calling `on_iteration(costs)` after each with
        the costs of the new image (already assigned to `image`). Raises OptimisationConverged if scipy stops first.
        Whatever on_iteration raises ends the minimisation and propagates."""
        import scipy.optimize

        done = 0

        def after_iteration(intermediate_result) -> None:
            nonlocal done
            x = intermediate_result.x
            if self._last is None or not np.array_equal(self._last[0], x):
                self.evaluate(x)  # rare: scipy accepted a point other than the last one evaluated
            self.image.assign(x.reshape(self._shape).astype(np.float32))
            done += 1
            on_iteration(self._last[1])
            if done >= max_iterations:
                raise _Enough

        while done < max_iterations:
            x0 = self.image.numpy().astype(np.float64).ravel()
            start_total, start_gradient = self.evaluate(x0)
            pending = [(start_total, start_gradient)]  # scipy's first call asks for x0 again: answered from here
            scale = 1.0  # scipy sees the cost / scale, so that its first step has an RMS of first_step_rms
            if self.first_step_rms is not None:
                scale = float(np.sqrt(np.mean(start_gradient**2))) / self.first_step_rms or 1.0

            def scaled_cost(x, x0=x0, pending=pending, scale=scale):
                total, gradient = pending.pop() if pending and np.array_equal(x, x0) else self.evaluate(x)
                return total / scale, gradient / scale

            try:
                result = scipy.optimize.minimize(
                    scaled_cost,
                    x0,
                    jac=True,
                    method="L-BFGS-B",
                    bounds=scipy.optimize.Bounds(0.0, 1.0),
                    callback=after_iteration,
                    options={"maxiter": 10**9, "maxfun": 10**9, "maxcor": self.max_corrections, "ftol": 0, "gtol": 0},
                )
            except _Enough:
                return
            self.scipy_message = str(result.message)
            total_now, _ = self.evaluate(x0)
            if np.isclose(total_now, start_total, rtol=1e-5, atol=0.0):
                raise OptimisationConverged(f"L-BFGS stopped: {self.scipy_message}")
            self.restarts += 1  # α/β moved under scipy: start again from the current image


def coarse_sizes(height_px: int, width_px: int, levels: int, factor: float = 2.0) -> list[tuple[int, int]]:
    """Sizes (height_px, width_px) for coarse to fine, coarsest first and ending at (height_px, width_px).

    Each level is `factor` times smaller than the next, aspect ratio kept; levels whose short side would drop below
    MIN_SHORT_SIDE_PX are left out.
    """
    if int(levels) != levels or levels < 1:
        raise ValueError(f"levels={levels!r}: must be a whole number ≥ 1 (1: no coarse levels)")
    sizes = [(int(height_px), int(width_px))]
    for level in range(1, int(levels)):
        scale = factor**-level
        size = (round(height_px * scale), round(width_px * scale))
        if min(size) < MIN_SHORT_SIDE_PX:
            break
        sizes.insert(0, size)
    return sizes
