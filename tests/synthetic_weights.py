"""Tiny synthetic VGG weight files laid out exactly like the published ones (see shared notes on weights).

Real channel widths divided by `widths_divisor` keep the files small (divisor 16: 4, 8, 16, 32, 32 channels);
conv1_1 keeps its 3 input channels. Kernels are (3, 3, in, out) float32 in RGB order.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import scipy.io

VGG19_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))  # (output channels, convs) per block
VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
MEAN_RGB_255 = (123.68, 116.779, 103.939)
FC_WIDTH = 8  # tiny stand-in for fc6/fc7's 4096 units
N_CLASSES = 10  # tiny stand-in for ImageNet's 1000 classes

Weights = dict[str, tuple[np.ndarray, np.ndarray]]  # conv name -> (kernel (3, 3, in, out), bias (out,)), RGB order


def make_weights(seed: int = 0, widths_divisor: int = 16, blocks=VGG19_BLOCKS) -> Weights:
    """Random He-scaled kernels and small random biases for every conv of `blocks`, in network order."""
    rng = np.random.default_rng(seed)
    weights: Weights = {}
    in_channels = 3
    for block, (width, n_convs) in enumerate(blocks, start=1):
        out_channels = max(1, width // widths_divisor)
        for i in range(1, n_convs + 1):
            std = np.sqrt(2.0 / (9 * in_channels))
            kernel = (rng.standard_normal((3, 3, in_channels, out_channels)) * std).astype(np.float32)
            bias = rng.normal(0.0, 0.5, out_channels).astype(np.float32)
            weights[f"conv{block}_{i}"] = (kernel, bias)
            in_channels = out_channels
    return weights


# ---------------------------------------------------------------------------- MatConvNet .mat


def _struct(**fields) -> np.ndarray:
    """A MATLAB 1x1 struct with fields in the given order, as savemat writes it."""
    record = np.empty((1, 1), dtype=[(name, object) for name in fields])
    for name, value in fields.items():
        record[0, 0][name] = value
    return record


def _cell(*items) -> np.ndarray:
    """A MATLAB 1xN cell array."""
    cell = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        cell[0, i] = item
    return cell


def _row(*values) -> np.ndarray:
    return np.array([values], dtype=np.float64)


def _layer_sequence(weights: Weights) -> list[tuple[str, str, object]]:
    """(kind, name, payload) for conv/relu/pool layers of `weights`, then fc6 relu6 fc7 relu7 fc8 prob."""
    layers = []
    blocks = sorted({int(name[4]) for name in weights})
    for block in blocks:
        convs = [name for name in weights if name.startswith(f"conv{block}_")]
        for name in convs:
            layers.append(("conv", name, weights[name]))
            layers.append(("relu", "relu" + name[4:], None))
        layers.append(("pool", f"pool{block}", None))
    last_width = weights[list(weights)[-1]][0].shape[-1]
    rng = np.random.default_rng(1)
    fc6 = (rng.standard_normal((7, 7, last_width, FC_WIDTH)).astype(np.float32), np.zeros(FC_WIDTH, np.float32))
    fc7 = (rng.standard_normal((1, 1, FC_WIDTH, FC_WIDTH)).astype(np.float32), np.zeros(FC_WIDTH, np.float32))
    fc8 = (rng.standard_normal((1, 1, FC_WIDTH, N_CLASSES)).astype(np.float32), np.zeros(N_CLASSES, np.float32))
    layers += [("conv", "fc6", fc6), ("relu", "relu6", None), ("conv", "fc7", fc7), ("relu", "relu7", None)]
    layers += [("conv", "fc8", fc8), ("softmax", "prob", None)]
    return layers


def _matconvnet_layer(kind: str, name: str, payload, release: str) -> np.ndarray:
    """One layer struct with the field names and order of the given MatConvNet release."""
    if kind == "conv":
        kernel, bias = payload
        if release == "old":
            return _struct(
                weights=_cell(kernel, bias[None, :]),
                pad=_row(1, 1, 1, 1) * (kernel.shape[0] // 2),
                type="conv",
                name=name,
                stride=_row(1, 1),
            )
        return _struct(
            name=name,
            type="conv",
            weights=_cell(kernel, bias[:, None]),
            size=_row(*kernel.shape),
            pad=_row(1, 1, 1, 1) * (kernel.shape[0] // 2),
            stride=_row(1, 1),
            precious=False,
            dilate=_row(1, 1),
            opts=np.empty((0, 0), dtype=object),
        )
    if kind == "relu":
        return (
            _struct(type="relu", name=name)
            if release == "old"
            else _struct(name=name, type="relu", leak=0.0, precious=False)
        )
    if kind == "pool":
        if release == "old":
            return _struct(
                name=name, stride=_row(2, 2), pad=_row(0, 0, 0, 0), type="pool", method="max", pool=_row(2, 2)
            )
        return _struct(
            name=name,
            type="pool",
            method="max",
            pool=_row(2, 2),
            stride=_row(2, 2),
            pad=_row(0, 0, 0, 0),
            precious=False,
            opts=np.empty((0, 0), dtype=object),
        )
    return (
        _struct(type="softmax", name=name) if release == "old" else _struct(name=name, type="softmax", precious=False)
    )


def write_matconvnet_mat(path, weights: Weights, release: str = "current", mean_rgb=MEAN_RGB_255) -> Path:
    """Write `weights` as a MatConvNet imagenet-vgg-verydeep-19.mat of the "current" or "old" (beta16) release."""
    assert release in ("current", "old")
    path = Path(path)
    sequence = _layer_sequence(weights)
    layers = np.empty((1, len(sequence)), dtype=object)
    for i, (kind, name, payload) in enumerate(sequence):
        layers[0, i] = _matconvnet_layer(kind, name, payload, release)
    class_names = _cell(*[f"n{i:08d}" for i in range(N_CLASSES)])
    descriptions = _cell(*[f"class {i}" for i in range(N_CLASSES)])
    if release == "old":
        average_image = np.broadcast_to(np.asarray(mean_rgb, np.float32), (224, 224, 3)).copy()  # constant image
        contents = {
            "layers": layers,
            "classes": _struct(name=class_names, description=descriptions),
            "normalization": _struct(
                averageImage=average_image,
                keepAspect=True,
                border=_row(32, 32),
                imageSize=_row(224, 224, 3),
                interpolation="bilinear",
            ),
        }
    else:
        average_image = np.asarray(mean_rgb, np.float32).reshape(1, 1, 3)
        contents = {
            "layers": layers,
            "meta": _struct(
                inputs=_struct(name="data", size=_row(224, 224, 3, 10)),
                classes=_struct(name=class_names, description=descriptions),
                normalization=_struct(
                    imageSize=_row(224, 224, 3),
                    averageImage=average_image,
                    keepAspect=True,
                    border=_row(32, 32),
                    cropSize=0.875,
                    interpolation="bilinear",
                ),
            ),
        }
    scipy.io.savemat(path, contents)
    return path


# ---------------------------------------------------------------------------- Keras .h5


def write_keras_h5(path, weights: Weights) -> Path:
    """Write `weights` as Keras's vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 (conv1_1 stored BGR)."""
    path = Path(path)
    layer_names = []
    with h5py.File(path, "w") as file:
        blocks = sorted({int(name[4]) for name in weights})
        for block in blocks:
            for name in [n for n in weights if n.startswith(f"conv{block}_")]:
                keras_name = f"block{block}_conv{name[6:]}"
                kernel, bias = weights[name]
                if name == "conv1_1":
                    kernel = kernel[:, :, ::-1, :]  # Keras's VGG takes BGR input
                group = file.create_group(keras_name)
                weight_names = [f"{keras_name}_W_1:0", f"{keras_name}_b_1:0"]
                group.attrs["weight_names"] = np.array(weight_names, dtype="S")
                group.create_dataset(weight_names[0], data=np.ascontiguousarray(kernel, np.float32))
                group.create_dataset(weight_names[1], data=bias.astype(np.float32))
                layer_names.append(keras_name)
            pool_name = f"block{block}_pool"
            file.create_group(pool_name).attrs["weight_names"] = np.array([], dtype="S")
            layer_names.append(pool_name)
        file.attrs["layer_names"] = np.array(layer_names, dtype="S")
    return path


def write_all_formats(folder, weights: Weights) -> dict[str, Path]:
    """The same weights as current .mat, old .mat and Keras .h5 in `folder`, under names the checksum check skips."""
    folder = Path(folder)
    return {
        "current": write_matconvnet_mat(folder / "current.mat", weights, release="current"),
        "old": write_matconvnet_mat(folder / "old.mat", weights, release="old"),
        "h5": write_keras_h5(folder / "keras.h5", weights),
    }


# ---------------------------------------------------------------------------- Bad files


def write_vgg16_mat(path, widths_divisor: int = 16) -> Path:
    """A current-release .mat of VGG-16 (13 convs: no conv3_4, conv4_4, conv5_4)."""
    return write_matconvnet_mat(path, make_weights(widths_divisor=widths_divisor, blocks=VGG16_BLOCKS))


def write_vgg16_h5(path, widths_divisor: int = 16) -> Path:
    """A Keras notop .h5 of VGG-16 (13 convs)."""
    return write_keras_h5(path, make_weights(widths_divisor=widths_divisor, blocks=VGG16_BLOCKS))


def write_resnet_like_h5(path) -> Path:
    """A Keras-2-style .h5 of another network: layer names conv1_conv, conv1_bn, ... and no VGG layers."""
    path = Path(path)
    with h5py.File(path, "w") as file:
        group = file.create_group("conv1_conv")
        group.attrs["weight_names"] = np.array([b"conv1_conv/kernel:0", b"conv1_conv/bias:0"])
        group.create_dataset("conv1_conv/kernel:0", data=np.zeros((7, 7, 3, 4), np.float32))
        group.create_dataset("conv1_conv/bias:0", data=np.zeros(4, np.float32))
        file.create_group("conv1_bn").attrs["weight_names"] = np.array([], dtype="S")
        file.attrs["layer_names"] = np.array([b"conv1_conv", b"conv1_bn"])
    return path


def write_html(path) -> Path:
    """An HTML error page saved under a weights file name, as a failed download leaves it."""
    path = Path(path)
    path.write_text("<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n")
    return path


def write_truncated(path, source, keep_fraction: float = 0.3) -> Path:
    """The first `keep_fraction` of file `source`'s bytes, as an interrupted download leaves it."""
    data = Path(source).read_bytes()
    path = Path(path)
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def with_bad_kernel(weights: Weights, name: str = "conv2_1") -> Weights:
    """A copy of `weights` whose `name` kernel is stored (out, in, height, width), the Caffe layout."""
    bad = dict(weights)
    kernel, bias = weights[name]
    bad[name] = (np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), bias)
    return bad
