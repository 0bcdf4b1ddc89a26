"""Reading VGG-19 weights: Keras's .h5 and both MatConvNet .mat releases, by field name, and random features.

No TensorFlow here: the readers return numpy arrays, and nst.model builds the network from them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import scipy.io

from nst.errors import WeightsFileError, one_line
from nst.paths import PRETRAINED_DIR
from nst.sources import WEIGHTS_SOURCES, checksum_problem
from nst.vgg19 import VGG19_BLOCKS, VGG19_CONV_NAMES, VGG_MEAN_RGB_255

_FETCH_HINT = "get the real weights with `python nst_utils.py download` (or `make weights`)"


@dataclasses.dataclass(frozen=True)
class VGGWeights:
    """VGG-19 conv filters for RGB input, the mean pixel they expect, and where they came from."""

    kernels: dict[str, np.ndarray]  # conv name -> (3, 3, in, out) float32, [height, width, in, out]; conv1_1 in = R,G,B
    biases: dict[str, np.ndarray]  # conv name -> (out,) float32
    mean_rgb_255: np.ndarray  # (3,) float32 mean pixel, RGB, 0-255 scale: the model feeds 255 * x - mean
    source: str  # short human description, e.g. "Keras h5: /path/file.h5"
    kind: str  # "keras-h5", "matconvnet-mat" or "random"


def _verify_published_checksum(path: Path) -> None:
    """Raise WeightsFileError if `path` has a published file's name but is not a genuine copy of that file."""
    for source in WEIGHTS_SOURCES.values():
        if path.name != source.filename:
            continue
        problem = checksum_problem(path, source)
        if problem:
            size = path.stat().st_size
            short = source.size_bytes is not None and size < source.size_bytes
            raise WeightsFileError(
                f"{path}: {problem} ({size:,} bytes{', download incomplete?' if short else ''}) does not match the "
                f"published {source.key} weights; re-download with `python nst_utils.py download {source.key}` "
                "(or rename the file if it is a deliberate other export)"
            )


def _check_vgg19_convs(path: Path, shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]], found: str) -> None:
    """Raise WeightsFileError unless `shapes` (conv name -> kernel and bias shape) chain like VGG-19's 16 convs."""
    missing = [name for name in VGG19_CONV_NAMES if name not in shapes]
    if missing:
        n_found = len(VGG19_CONV_NAMES) - len(missing)
        guess = " (VGG-16?)" if n_found == 13 else ""
        raise WeightsFileError(
            f"{path}: not VGG-19: {n_found} of VGG-19's 16 conv layers{guess}, missing {', '.join(missing[:4])}"
            f"{', ...' if len(missing) > 4 else ''} ({found}); {_FETCH_HINT}"
        )
    in_channels = 3  # conv1_1 sees the 3 colour channels; every later conv sees the previous conv's outputs
    for name in VGG19_CONV_NAMES:
        kernel_shape, bias_shape = shapes[name]
        if len(kernel_shape) != 4 or kernel_shape[:3] != (3, 3, in_channels) or bias_shape != kernel_shape[3:]:
            raise WeightsFileError(
                f"{path}: {name} has kernel {tuple(kernel_shape)} and bias {tuple(bias_shape)}, expected "
                f"(3, 3, {in_channels}, K) [height, width, in, out] and (K,); the file is corrupt or not VGG-19"
            )
        in_channels = kernel_shape[3]


def _mat_item(value):
    """Unwrap the 1x1 cells and structs that loadmat returns as 1-element object arrays."""
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.item()
    return value


def _mat_str(value) -> str:
    """A MATLAB char field (loadmat gives a 1-element array of str) as a Python str; '' if empty."""
    flat = np.ravel(value)
    return str(flat[0]) if flat.size else ""


def _read_matconvnet(path: Path, conv_names: Sequence[str]) -> VGGWeights:
    """Conv filters and mean pixel from a MatConvNet imagenet-vgg-verydeep-19.mat, old or current release."""
    # struct_as_record=False gives structs whose fields are read by name (layer.weights), so the field order,
    # which differs between the two releases, never matters. squeeze_me=False keeps kernel shapes intact.
    try:
        mat = scipy.io.loadmat(path, squeeze_me=False, struct_as_record=False)
    except Exception as exc:  # any parser failure means a truncated or foreign file
        raise WeightsFileError(
            f"{path}: cannot be read as a MATLAB file ({one_line(exc)}); it is truncated or not a .mat: "
            f"delete it and {_FETCH_HINT}"
        ) from None
    if "layers" not in mat:
        variables = ", ".join(sorted(key for key in mat if not key.startswith("__"))) or "none"
        raise WeightsFileError(
            f"{path}: no 'layers' variable (found: {variables}), so not a MatConvNet model; {_FETCH_HINT}"
        )
    layers = {}
    for cell in np.ravel(mat["layers"]):
        layer = _mat_item(cell)
        name = _mat_str(getattr(layer, "name", ""))
        if name in VGG19_CONV_NAMES:  # fc6-fc8 are also of type 'conv': select by name, stop at conv5_4
            layers[name] = layer
    shapes, arrays = {}, {}
    for name, layer in layers.items():
        cells = np.ravel(getattr(layer, "weights", np.empty(0, dtype=object)))
        if cells.size != 2:
            fields = ", ".join(getattr(layer, "_fieldnames", []))
            raise WeightsFileError(
                f"{path}: layer {name} has no (kernel, bias) 'weights' field (fields: {fields}); "
                f"not a MatConvNet release this loader knows: {_FETCH_HINT}"
            )
        kernel, bias = np.asarray(cells[0]), np.ravel(cells[1])  # bias is (1, K) in old, (K, 1) in current
        shapes[name], arrays[name] = (kernel.shape, bias.shape), (kernel, bias)
    _check_vgg19_convs(path, shapes, found=f"{np.size(mat['layers'])} layers in all")

    # Mean pixel: meta.normalization.averageImage (1x1x3, current) or normalization.averageImage (224x224x3, old).
    release = "current" if "meta" in mat else "old"
    normalization = (
        getattr(_mat_item(mat["meta"]), "normalization", None) if "meta" in mat else mat.get("normalization")
    )
    average_image = np.asarray(getattr(_mat_item(normalization), "averageImage", []), dtype=np.float64)
    if average_image.size == 3:
        mean = average_image.ravel()
    elif average_image.size and average_image.shape[-1] == 3:
        mean = average_image.reshape(-1, 3).mean(axis=0)  # a constant image: its per-channel mean is the pixel
    else:
        mean = np.asarray(VGG_MEAN_RGB_255)
    # MatConvNet's import already flipped conv1_1 from Caffe's BGR to RGB; kernels are [H, W, in, out]: no transpose.
    return VGGWeights(
        kernels={name: np.asarray(arrays[name][0], np.float32) for name in conv_names},
        biases={name: np.asarray(arrays[name][1], np.float32) for name in conv_names},
        mean_rgb_255=mean.astype(np.float32),
        source=f"MatConvNet .mat ({release} release): {path}",
        kind="matconvnet-mat",
    )


def _h5_str(value) -> str:
    """An HDF5 string attribute item (bytes or str) as str."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _keras_h5_weights(file: h5py.File, path: Path, conv_names: Sequence[str]) -> VGGWeights:
    """Conv filters from an open Keras VGG-19 weights file, conv1_1 flipped from BGR to RGB."""
    if "layer_names" not in file.attrs:
        raise WeightsFileError(
            f"{path}: no root attribute 'layer_names', so not a Keras VGG-19 weights file (Keras 3 `.weights.h5` "
            f"files are another format); use {WEIGHTS_SOURCES['keras'].filename}: {_FETCH_HINT}"
        )
    layer_names = [_h5_str(name) for name in file.attrs["layer_names"]]
    shapes, datasets = {}, {}
    for keras_name in layer_names:
        match = re.fullmatch(r"block(\d)_conv(\d)", keras_name)
        if match is None:  # pools (no weights) and any top layers
            continue
        name = f"conv{match[1]}_{match[2]}"
        group = file[keras_name]
        weights = [group[_h5_str(weight_name)] for weight_name in group.attrs["weight_names"]]
        kernel = next((w for w in weights if w.ndim == 4), None)  # blockX_convY_W_1:0, (3, 3, in, out)
        bias = next((w for w in weights if w.ndim == 1), None)  # blockX_convY_b_1:0, (out,)
        if kernel is None or bias is None:
            raise WeightsFileError(f"{path}: layer {keras_name} lacks a 4-D kernel and a 1-D bias; {_FETCH_HINT}")
        shapes[name], datasets[name] = (kernel.shape, bias.shape), (kernel, bias)
    found = ", ".join(layer_names[:3]) + (", ..." if len(layer_names) > 3 else "")
    _check_vgg19_convs(path, shapes, found=f"{len(layer_names)} layers: {found}")
    kernels = {name: np.asarray(datasets[name][0], np.float32) for name in conv_names}
    if "conv1_1" in kernels:
        # Keras's VGG expects BGR input; reversing conv1_1's input channels makes it the same RGB network as the .mat.
        kernels["conv1_1"] = np.ascontiguousarray(kernels["conv1_1"][:, :, ::-1, :])
    return VGGWeights(
        kernels=kernels,
        biases={name: np.asarray(datasets[name][1], np.float32) for name in conv_names},
        mean_rgb_255=np.asarray(VGG_MEAN_RGB_255, np.float32),  # the file has no mean pixel
        source=f"Keras h5: {path}",
        kind="keras-h5",
    )


def _read_keras_h5(path: Path, conv_names: Sequence[str]) -> VGGWeights:
    """Conv filters from Keras's vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5, conv1_1 flipped to RGB."""
    try:
        with h5py.File(path, "r") as file:
            return _keras_h5_weights(file, path, conv_names)
    except WeightsFileError:
        raise
    except Exception as exc:  # any HDF5 failure means a truncated or foreign file
        raise WeightsFileError(
            f"{path}: cannot be read as HDF5 ({one_line(exc)}); it is truncated or not a Keras weights file: "
            f"delete it and {_FETCH_HINT}"
        ) from None


def read_vgg19_weights(
    path: Path | str, verify_checksum: bool = True, conv_names: Sequence[str] | None = None
) -> VGGWeights:
    """Read VGG-19 conv filters (RGB order) and mean pixel from a Keras .h5 or MatConvNet .mat file.

    `conv_names` selects which convs to return (default all 16); the whole file is still checked to be VGG-19.
    `verify_checksum` compares a file carrying a published name with that file's published md5.
    """
    path = Path(path)
    conv_names = VGG19_CONV_NAMES if conv_names is None else tuple(conv_names)
    if not path.is_file():
        what = "is a directory, not a weights file" if path.is_dir() else "no such file"
        raise WeightsFileError(f"{path}: {what}; {_FETCH_HINT}")
    suffix = path.suffix.lower()
    if suffix not in (".h5", ".hdf5", ".mat"):
        near = next((s.filename for s in WEIGHTS_SOURCES.values() if path.name.startswith(s.filename)), None)
        if suffix in (".part", ".crdownload", ".tmp"):
            fix = f"this looks like an unfinished download: {_FETCH_HINT}"
        elif near is not None:
            fix = f"rename it to {near}"
        else:
            fix = f"pass a Keras .h5 or MatConvNet .mat VGG-19 file, or {_FETCH_HINT}"
        raise WeightsFileError(f"{path}: unknown weights file type '{path.suffix}'; {fix}")
    size = path.stat().st_size
    if size == 0:
        raise WeightsFileError(f"{path}: the file is empty (0 bytes); delete it and {_FETCH_HINT}")
    with path.open("rb") as file:
        head = file.read(256).lstrip()
    if head.startswith(b"<"):  # <!DOCTYPE html>, <html>, <?xml: never a .mat or HDF5 header
        raise WeightsFileError(
            f"{path}: is a web page (HTML/XML, {size:,} bytes), not weights: the server sent an error or login page; "
            f"delete it and {_FETCH_HINT}"
        )
    if verify_checksum:
        _verify_published_checksum(path)
    reader = _read_matconvnet if suffix == ".mat" else _read_keras_h5
    return reader(path, conv_names)


def random_vgg19_weights(seed: int = 0, conv_names: Sequence[str] | None = None) -> VGGWeights:
    """Random-feature VGG-19: He-normal filters (std sqrt(2 / (3*3*in))), zero biases, ImageNet mean pixel."""
    conv_names = VGG19_CONV_NAMES if conv_names is None else tuple(conv_names)
    widths = [width for width, n_convs in VGG19_BLOCKS for _ in range(n_convs)]  # output channels per conv
    kernels, biases = {}, {}
    for index, name in enumerate(VGG19_CONV_NAMES):
        if name not in conv_names:
            continue
        in_channels = 3 if index == 0 else widths[index - 1]
        # One generator per layer, seeded by (seed, layer): a layer's filters never depend on which others are built.
        rng = np.random.default_rng((seed, index))
        std = np.float32(np.sqrt(2.0 / (3 * 3 * in_channels)))  # He et al.: keeps activation scale through ReLUs
        kernels[name] = rng.standard_normal((3, 3, in_channels, widths[index]), dtype=np.float32) * std
        biases[name] = np.zeros(widths[index], np.float32)
    return VGGWeights(
        kernels=kernels,
        biases=biases,
        mean_rgb_255=np.asarray(VGG_MEAN_RGB_255, np.float32),
        source=f"random-feature VGG-19 (He-normal, seed {seed}) — not pretrained",
        kind="random",
    )


def find_weights_files(directory: Path | str | None = None) -> list[Path]:
    """The published VGG-19 weights files present in `directory` (default pretrained-model/): Keras .h5 first."""
    directory = Path(PRETRAINED_DIR if directory is None else directory)
    candidates = [directory / source.filename for source in WEIGHTS_SOURCES.values()]  # dict order: keras, matconvnet
    return [path for path in candidates if path.is_file()]


def _random_weights_notice(directory: Path | None, seed: int) -> str:
    """Two lines telling the user the model is not pretrained, and how to fix that."""
    where = "as asked" if directory is None else f"because {directory} holds no VGG-19 weights file"
    first = f"Note: using random-feature VGG-19 filters (seed {seed}) {where}; style transfer will look weaker."
    hints = []
    if directory is not None and directory.is_dir():
        for path in sorted(directory.iterdir()):
            near = next((s.filename for s in WEIGHTS_SOURCES.values() if path.name.startswith(s.filename)), None)
            if path.suffix in (".part", ".crdownload"):
                hints.append(f"{path.name}, an unfinished download")
            elif near is not None:
                hints.append(f"{path.name}: rename it to {near}")
    fix = f"Found {'; '.join(hints)}. Or get" if hints else "Get"
    return f"{first}\n{fix} the real weights with `python nst_utils.py download` (or `make weights`)."


def resolve_weights(
    weights: Path | str | VGGWeights | None, conv_names: Sequence[str], seed: int, verify_checksum: bool
) -> VGGWeights:
    """VGGWeights for `weights`: already read, "random", a file, or a directory to search (None: pretrained-model/)."""
    if isinstance(weights, VGGWeights):
        return weights
    if isinstance(weights, str) and weights == "random":
        print(_random_weights_notice(None, seed))
        return random_vgg19_weights(seed, conv_names)
    location = Path(PRETRAINED_DIR if weights is None else weights)
    if not location.is_dir():
        return read_vgg19_weights(location, verify_checksum, conv_names)
    errors: list[WeightsFileError] = []
    for path in find_weights_files(location):
        try:
            found = read_vgg19_weights(path, verify_checksum, conv_names)
        except WeightsFileError as exc:  # try the next published file; report this one if none works
            errors.append(exc)
            continue
        for error in errors:
            print(f"Skipped a bad weights file: {error}")
        return found
    if errors:  # a broken download must be fixed, not silently replaced by random filters
        raise errors[0]
    print(_random_weights_notice(location, seed))
    return random_vgg19_weights(seed, conv_names)
