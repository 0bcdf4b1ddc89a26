"""What a run shows: the live view in JupyterLab (image, loss curve, α/β sliders, pause, stop) or a progress bar."""

from __future__ import annotations

import io
import sys
import time

from nst.images import png_bytes
from nst.run import LOSS_NAMES, RunListener


def loss_curve_png(history: list[dict], width_px: int = 480, height_px: int = 300) -> bytes:
    """Plot total, content and style cost per iteration (log scale) and return the figure as PNG bytes."""
    from matplotlib.figure import Figure  # Figure, not pyplot: safe off the main thread, no global state

    dpi = 100
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    ax = fig.add_subplot()
    iterations = [row["iteration"] for row in history]
    for name in LOSS_NAMES:
        values = [row[name] for row in history]
        if any(v > 0 for v in values):
            ax.plot(iterations, values, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cost")
    ax.legend(loc="upper right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def weight_slider(variable, description: str, min_exponent: float = -3.0, max_exponent: float = 5.0):
    """A log-scale slider bound to a tf.Variable: moving it assigns the variable (a compiled step reads it live)."""
    import ipywidgets as widgets

    slider = widgets.FloatLogSlider(
        value=float(variable.numpy()),
        base=10,
        min=min_exponent,
        max=max_exponent,
        step=0.05,
        description=description,
        continuous_update=False,
        readout_format=".3g",
        style={"description_width": "initial"},
        layout=widgets.Layout(width="420px"),
    )
    slider.observe(lambda change: variable.assign(change["new"]), names="value")
    return slider


def size_label(run) -> str:
    """Which size is running, e.g. "200×150 px (size 2 of 3)", or "400×300 px" for a run of one size."""
    height_px, width_px = run.size_px
    stages = f" (size {run.stage_index + 1} of {len(run.stages)})" if len(run.stages) > 1 else ""
    return f"{width_px}×{height_px} px{stages}"


class ProgressBar(RunListener):
    """A tqdm bar over the iterations, with the costs: what a headless run (make run) shows."""

    def __init__(self):
        self._bar = None

    def on_start(self, run, image_rgb01) -> None:
        from tqdm import tqdm

        done = len(run.history)  # a trial's iterations, handed over
        self._bar = tqdm(
            total=run.iterations, initial=done, desc="stylising", unit="it", mininterval=5.0, file=sys.stdout
        )

    def on_stage(self, run, image_rgb01) -> None:
        self._bar.set_description(f"stylising {size_label(run)}")

    def on_iteration(self, run, row, image_rgb01) -> None:
        self._bar.update(1)
        self._bar.set_postfix({k: f"{row[k]:.3g}" for k in LOSS_NAMES}, refresh=False)

    def on_end(self, run, image_rgb01) -> None:
        if self._bar is not None:
            self._bar.close()


class LiveView(RunListener):
    """The image and the cost curves, updated in place every `display_every` iterations, with α/β sliders bound to
    the run's variables and pause and stop buttons. Shown when the run starts, in the cell that starts it."""

    def __init__(self, display_every: int = 10):
        self.display_every = max(1, int(display_every))
        self.widgets: dict = {}

    def prepare(self, run) -> None:
        """Build and display the widgets in the caller's thread (the cell that starts the run)."""
        from IPython.display import display

        self.widgets = self._build(run)
        display(self.widgets["box"])

    def on_stage(self, run, image_rgb01) -> None:
        if self.widgets and run.history:  # show the new size at once, with the last row's figures
            self._refresh(run, run.history[-1], image_rgb01)

    def on_iteration(self, run, row, image_rgb01) -> None:
        if row["iteration"] % self.display_every == 0 or row["iteration"] == 1:
            self._refresh(run, row, image_rgb01)

    def on_end(self, run, image_rgb01) -> None:
        if not self.widgets:
            return
        if run.history:
            self._refresh(run, run.history[-1], image_rgb01)
        self.widgets["status"].value += f"<br><b>{run.message}</b>"

    def _build(self, run) -> dict:
        import ipywidgets as widgets

        view = {
            "image": widgets.Image(value=png_bytes(run.image.numpy()[0]), format="png"),
            "curve": widgets.Image(format="png"),
            "status": widgets.HTML(value="starting…"),
        }
        view["alpha_slider"] = None if run.alpha is None else weight_slider(run.alpha, "α (content weight)")
        view["beta_slider"] = None if run.beta is None else weight_slider(run.beta, "β (style weight)")
        sliders = [slider for slider in (view["alpha_slider"], view["beta_slider"]) if slider is not None]
        view["sliders"] = sliders
        pause = widgets.ToggleButton(description="pause", icon="pause", value=False)
        pause.observe(lambda change: run.pause() if change["new"] else run.resume(), names="value")
        stop = widgets.Button(description="stop", icon="stop", button_style="danger")
        stop.on_click(lambda _button: run.stop())
        view["pause"], view["stop"] = pause, stop
        controls = widgets.VBox([*sliders, widgets.HBox([pause, stop]), view["status"]])
        # align_items: a flex row stretches its items to the tallest one, which distorted the image or the curve
        pictures = widgets.HBox([view["image"], view["curve"]], layout=widgets.Layout(align_items="flex-start"))
        view["box"] = widgets.VBox([pictures, controls])
        return view

    def _refresh(self, run, row, image_rgb01) -> None:
        view = self.widgets
        view["image"].value = png_bytes(image_rgb01)
        view["curve"].value = loss_curve_png(run.history)
        elapsed_s = time.perf_counter() - run.started_s
        speed = (row["iteration"] - run.prior_iterations) / elapsed_s if elapsed_s > 0 else float("nan")
        view["status"].value = (
            f"{size_label(run)} · iteration {row['iteration']}/{run.iterations} · {speed:.2f} it/s · "
            f"α = {row['alpha']:.3g} · β = {row['beta']:.3g} · "
            f"J = {row['total']:.4g} (content {row['content']:.4g}, style {row['style']:.4g})"
        )
