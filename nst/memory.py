"""The memory a run needs, estimated before anything long starts, and the check that refuses what would not fit.

No TensorFlow here, so the command line can check a size before it starts a kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nst.errors import NSTError
from nst.vgg19 import MIN_SHORT_SIDE_PX, VGG19_BLOCKS, vgg19_layer_names

# Bytes per activation value kept during one value-and-gradient evaluation, relative to the forward activations:
# the model outputs stay for the backward pass, the other conv layers keep a boolean mask (nst/frozen_conv.py), and
# the backward pass adds gradients of the largest layers. Fitted on the AVX512-BF16 machine (oneDNN on;
# docs/benchmarks.md, "The style's Gram, not its activations") since the style targets are kept as their Gram
# (nst/style_targets.py), to the kernel's peak RSS of the finished default run at 3840×2160, 17.56 GB (bf16; 1920×1080:
# 4.34 GB), estimated at 18.8 GB; short runs (trial, one full-size iteration, every later cell) peaked lower, fp32
# or bf16: 14.92 and 4.58 GB at most. Before, when the style's activations were kept, the finished runs peaked at
# 20.97 and 6.67 GB. Since the stand-ins' Gram is summed block by block, the finished 3840×2160 run peaked at
# 14.44 GB: the estimate is left 30 % above it. Small sizes are overestimated (400×300: 3.5 GB against about
# 1.2 GB), which is harmless.
MEMORY_ACTIVATION_FACTOR = 1.45
MEMORY_BASE_BYTES = 3_300_000_000  # TensorFlow, the kernel, the weights, the images and the style targets
# L-BFGS adds float64 arrays the size of the image: scipy's L-BFGS-B keeps 2 × 10 correction vectors and its work
# arrays, and nst.optimisers.LBFGS the gradient and copies of x. Measured on the notebook with L-BFGS at 1920×1080,
# fp32: 7.63 and 7.89 GB peak RSS in two runs against Adam's 5.48 GB, 346–388 bytes for each of 6.2 million values
# (docs/benchmarks.md); MEMORY_BASE_BYTES's cushion covers the rest.
LBFGS_BYTES_PER_IMAGE_VALUE = 350
# Style images larger than the content (style_scale > 1): their targets are computed in one forward pass, which
# holds all of that image's activations at once. Measured at 1920×1080 with style_scale 2 (the style at 3840×2160),
# the kernel peaked at 12.10 GB against 5.48 GB with style_scale 1 (when the style's activations were still kept):
# about what that pass takes (10.7 GB of activations; inferred from that match, not isolated). What is kept after
# the pass is each style layer's Gram stand-in (nst/style_targets.py): 2.4 MB a style, whatever its size, left out.
OPTIMIZER_NAMES = {"adam": "Adam", "lbfgs": "L-BFGS"}
OPTIMIZERS = tuple(OPTIMIZER_NAMES)


def activation_values(height_px: int, width_px: int, deepest_layer: str = "conv5_1") -> dict[str, int]:
    """The number of float values in each layer's activation up to `deepest_layer`, in network order."""
    names = vgg19_layer_names()
    if deepest_layer not in names:
        raise ValueError(f"deepest_layer={deepest_layer!r} is not a VGG-19 layer; choose one of {', '.join(names)}")
    h, w = int(height_px), int(width_px)
    channels = dict(zip([f"conv{b}" for b in range(1, 6)], [c for c, _ in VGG19_BLOCKS], strict=True))
    values = {}
    for name in names[: names.index(deepest_layer) + 1]:
        if name.startswith("pool"):
            h, w = h // 2, w // 2
            values[name] = h * w * channels["conv" + name[4]]
        else:
            values[name] = h * w * channels[name.split("_")[0]]
    return values


def estimate_memory_bytes(
    height_px: int,
    width_px: int,
    deepest_layer: str = "conv5_1",
    optimizer: str = "adam",
    style_sizes_px: Sequence[tuple[int, int]] = (),
) -> int:
    """Peak memory (bytes) of a run optimising G at height_px × width_px through `deepest_layer` with `optimizer`,
    its style images at `style_sizes_px` ((height_px, width_px) each; none given: one at the content's size).

    The sum of every layer's float32 activations up to `deepest_layer`, times MEMORY_ACTIVATION_FACTOR (what the
    backward pass keeps and the gradients it makes), plus MEMORY_BASE_BYTES; for "lbfgs", plus its float64 arrays
    (LBFGS_BYTES_PER_IMAGE_VALUE for each of the image's 3 · H · W values). Or, if larger, the pass that computes
    the largest style image's targets (its kept targets, the Gram stand-ins, are a few MB: left out).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r}: choose one of {', '.join(map(repr, OPTIMIZERS))}")
    image_values = 3 * height_px * width_px
    optimiser_bytes = LBFGS_BYTES_PER_IMAGE_VALUE * image_values if optimizer == "lbfgs" else 0
    run_bytes = MEMORY_BASE_BYTES + MEMORY_ACTIVATION_FACTOR * _forward_bytes(height_px, width_px, deepest_layer)
    largest = max(style_sizes_px, key=lambda size: size[0] * size[1], default=(height_px, width_px))
    style_pass_bytes = MEMORY_BASE_BYTES + _forward_bytes(*largest, deepest_layer)
    return int(max(run_bytes + optimiser_bytes, style_pass_bytes))


def _forward_bytes(height_px: int, width_px: int, deepest_layer: str) -> int:
    """Bytes of the image and every layer's float32 activation up to `deepest_layer`."""
    return 4 * (3 * height_px * width_px + sum(activation_values(height_px, width_px, deepest_layer).values()))


def available_memory_bytes() -> int:
    """Memory the system can give a new allocation now (psutil's `available`, else MemAvailable)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
        raise NSTError("cannot tell how much memory is available (no psutil, no /proc/meminfo)") from None


def _own_resident_bytes() -> int:
    """The resident memory of this process now; 0 without psutil (then nothing is counted twice, only cautiously)."""
    try:
        import psutil
    except ImportError:
        return 0
    return int(psutil.Process().memory_info().rss)


def check_memory(
    height_px: int,
    width_px: int,
    deepest_layer: str = "conv5_1",
    available_bytes: int | None = None,
    optimizer: str = "adam",
    style_sizes_px: Sequence[tuple[int, int]] = (),
    in_running_process: bool = False,
):
    """Refuse, before anything long starts, a size whose estimated memory would not fit; returns the estimate.

    in_running_process: the check runs in the process that will run the optimisation (the notebook's kernel), whose
    memory so far (TensorFlow, the images) is part of the estimate, so it counts as available too.
    """
    available = available_memory_bytes() if available_bytes is None else int(available_bytes)
    if in_running_process:
        available += _own_resident_bytes()
    needed = estimate_memory_bytes(height_px, width_px, deepest_layer, optimizer, style_sizes_px)
    if needed <= available:
        return needed
    advice = fitting_advice(height_px, width_px, deepest_layer, available, optimizer, style_sizes_px)
    styles = _styles_phrase(height_px, width_px, style_sizes_px)
    raise NSTError(
        f"{width_px}×{height_px} px{styles} through {deepest_layer} with {OPTIMIZER_NAMES[optimizer]} needs about "
        f"{needed / 1e9:.1f} GB, but only {available / 1e9:.1f} GB is available; {advice}"
    )


def _styles_phrase(height_px: int, width_px: int, style_sizes_px: Sequence[tuple[int, int]]) -> str:
    """' (style 3840×2160 px)' when a style image is larger than the content (its targets' pass may be what does not
    fit), else ''."""
    if max((h * w for h, w in style_sizes_px), default=0) <= height_px * width_px:
        return ""
    sizes = ", ".join(f"{w}×{h}" for h, w in style_sizes_px)
    return f" (style{'s' if len(style_sizes_px) > 1 else ''} {sizes} px)"


def fitting_max_side(
    height_px: int,
    width_px: int,
    deepest_layer: str,
    available_bytes: int,
    optimizer: str = "adam",
    style_sizes_px: Sequence[tuple[int, int]] = (),
) -> int | None:
    """The largest long side (a multiple of 16 px, aspect kept) whose estimate fits in `available_bytes`, or None.

    The style images shrink with the content, as style_scale makes them.
    """
    long_side = max(height_px, width_px)

    def needed(side: int) -> int:
        scaled = [(round(h * side / long_side), round(w * side / long_side)) for h, w in style_sizes_px]
        size = round(height_px * side / long_side), round(width_px * side / long_side)
        return estimate_memory_bytes(*size, deepest_layer, optimizer, scaled)

    fitting = long_side
    while fitting > MIN_SHORT_SIDE_PX and needed(fitting) > available_bytes:
        fitting = int(fitting * 0.9)
    return fitting // 16 * 16 if fitting > MIN_SHORT_SIDE_PX else None


def fitting_advice(
    height_px: int,
    width_px: int,
    deepest_layer: str,
    available_bytes: int,
    optimizer: str = "adam",
    style_sizes_px: Sequence[tuple[int, int]] = (),
) -> str:
    """'use max_side_px=N or less', or what to do when even the smallest size does not fit."""
    fitting = fitting_max_side(height_px, width_px, deepest_layer, available_bytes, optimizer, style_sizes_px)
    styles = ", or a smaller style_scale" if _styles_phrase(height_px, width_px, style_sizes_px) else ""
    if fitting is None:
        return f"free some memory (even the smallest size does not fit){styles}"
    return f"use max_side_px={fitting} or less{styles}"
