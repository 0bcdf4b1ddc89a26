"""The model: a frozen VGG-19 that maps an RGB batch in [0, 1] to its activations, in fp32 or bf16."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import keras

from nst.frozen_conv import FrozenConv2DReLU
from nst.model_options import PRECISIONS
from nst.vgg19 import vgg19_layer_names
from nst.weights import VGGWeights, resolve_weights


class VGGFeatureModel(keras.Model):
    """A functional Keras model image_rgb01 -> {layer name: activation} that records where its weights came from."""

    def __init__(self, inputs, outputs, weights_source: str, weights_kind: str, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.weights_source = weights_source  # e.g. "Keras h5: /path/file.h5"
        self.weights_kind = weights_kind  # "keras-h5", "matconvnet-mat" or "random"

    def summary(self, line_length=None, positions=None, print_fn=None, **kwargs):
        """Keras's summary, then one line saying which weights the model holds."""
        super().summary(line_length=line_length, positions=positions, print_fn=print_fn, **kwargs)
        (print_fn or print)(f"Weights: {self.weights_source}")


def load_vgg_model(
    weights: Path | str | VGGWeights | None = None,
    pooling: str = "avg",
    output_layers: Sequence[str] | str | None = None,
    *,
    seed: int = 0,
    verify_checksum: bool = True,
    precision: str = "fp32",
) -> VGGFeatureModel:
    """Frozen VGG-19: RGB batch (N, H, W, 3) in [0, 1], H and W >= 32 -> {layer name: activation after ReLU/pool}.

    weights: a .h5/.mat path, a directory to search, "random", VGGWeights, or None (search pretrained-model/,
    else random filters with `seed`). pooling: "avg" (Gatys et al.) or "max". output_layers: names from
    vgg19_layer_names() (default all); layers deeper than the deepest one asked for are not built.
    precision: "fp32", "bf16" (Keras mixed_bfloat16: bf16 convolutions, float32 variables, activations cast back
    to float32 at the outputs, so Grams and costs stay in float32) or "auto" (see choose_precision).
    """
    precision, reason = choose_precision(precision)
    if "slower here" in reason:
        warnings.warn(reason, stacklevel=2)
    dtype = "mixed_bfloat16" if precision == "bf16" else "float32"
    if pooling not in ("avg", "max"):
        raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
    all_names = vgg19_layer_names()
    if isinstance(output_layers, str):
        output_layers = [output_layers]
    wanted = list(dict.fromkeys(all_names if output_layers is None else output_layers))  # de-duplicated, in order
    unknown = [name for name in wanted if name not in all_names]
    if unknown or not wanted:
        raise ValueError(f"unknown VGG-19 layer name(s) {unknown or '(none given)'}; valid: {', '.join(all_names)}")
    build_names = all_names[: 1 + max(all_names.index(name) for name in wanted)]
    vgg = resolve_weights(weights, [name for name in build_names if name.startswith("conv")], seed, verify_checksum)

    image_rgb01 = keras.Input(shape=(None, None, 3), dtype="float32", name="image_rgb01")
    # VGG was trained on 0-255 pixels minus the mean pixel. Done in float32 even under a bfloat16 policy,
    # where 255 * x - 123.68 would lose about a grey level.
    x = keras.layers.Rescaling(255.0, offset=-vgg.mean_rgb_255, dtype="float32", name="rgb255_minus_mean")(image_rgb01)
    pool_layer = keras.layers.AveragePooling2D if pooling == "avg" else keras.layers.MaxPooling2D
    layers = []
    for name in build_names:
        if name.startswith("conv"):
            # its backward pass differentiates the image alone; a model output is kept anyway, so its sign is read
            # from it, any other layer keeps a boolean mask (nst/frozen_conv.py)
            conv = FrozenConv2DReLU(
                vgg.kernels[name], vgg.biases[name], keep_output=name in wanted, name=name, dtype=dtype
            )
            layers.append(conv)
        else:
            layers.append(pool_layer(pool_size=2, strides=2, name=name, dtype=dtype))
    features = {}
    for layer in layers:
        x = features[layer.name] = layer(x)
    outputs = {name: features[name] for name in wanted}
    if precision == "bf16":
        outputs = {name: keras.ops.cast(value, "float32") for name, value in outputs.items()}
    model = VGGFeatureModel(
        image_rgb01,
        outputs,
        weights_source=vgg.source,
        weights_kind=vgg.kind,
        name="vgg19_" + vgg.kind.replace("-", "_"),
    )
    model.trainable = False
    model.precision = precision
    return model


def bf16_hardware() -> tuple[bool, str]:
    """Whether this machine runs bfloat16 faster than float32 (a GPU, or a CPU with AVX512-BF16 or AMX), and why."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return True, "GPU found: bf16 runs on its tensor cores"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        flags = set(next(line for line in cpuinfo.splitlines() if line.startswith("flags")).split())
    except (OSError, StopIteration):
        flags = set()
    native = sorted(flags & {"avx512_bf16", "amx_bf16"})
    if native:
        return True, f"CPU has {', '.join(native)}: oneDNN runs bf16 natively"
    return False, "no bf16 speed-up on this CPU (no AVX512-BF16 or AMX): bf16 is emulated and slower than fp32"


def choose_precision(precision: str, optimizer: str = "adam") -> tuple[str, str]:
    """("fp32" or "bf16", why): "auto" picks bf16 where the hardware runs it natively, except for L-BFGS; "bf16" is
    used whatever the hardware, with a warning in the reason where it is emulated.

    L-BFGS stays in fp32 under "auto": it drives the cost so low that bf16's rounding of the activations is a large
    part of what is left, and it fits that error. In bf16 its result was 6.5 % worse judged by the fp32 network, its
    own bf16 cost 8 % too low; Adam's default run ended within 1 % (docs/benchmarks.md, measured with emulated bf16).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(map(repr, PRECISIONS))}")
    if precision == "fp32":
        return "fp32", "fp32 as asked"
    fast, reason = bf16_hardware()
    if precision == "auto" and fast and optimizer == "lbfgs":
        return "fp32", f"precision auto: fp32 for L-BFGS, which fits bf16's rounding error (bf16 is native: {reason})"
    if precision == "auto":
        return ("bf16" if fast else "fp32"), f"precision auto: {'bf16' if fast else 'fp32'}, {reason}"
    return "bf16", ("bf16 as asked" if fast else f"bf16 as asked, but slower here: {reason}")
