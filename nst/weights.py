"""Reading VGG-19 weights: Keras's .h5 and both MatConvNet .mat releases, by field name, and random features;
which weights a run uses (weights=None: the file in pretrained-model/, else Keras's fetched on first use).

No TensorFlow here: the readers return numpy arrays, and nst.model builds the network from them. check_weights
does the readers' checks without reading the filters, so a command refuses a bad file before a kernel starts.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import scipy.io

from nst.errors import WeightsFileError, one_line
from nst.paths import PRETRAINED_DIR, path_kind
from nst.sources import WEIGHTS_SOURCES, checksum_problem, weights_source
from nst.vgg19 import VGG19_BLOCKS, VGG19_CONV_NAMES, VGG_MEAN_RGB_255

_FETCH_HINT = "get the real weights with `python nst_utils.py download` (or `make weights`)"
WEIGHTS_ENV = "NST_WEIGHTS"  # what weights=None means instead: "random" (tests, CI, offline) or a weights file


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
    for source in map(weights_source, WEIGHTS_SOURCES):
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


def _keras_h5_datasets(file: h5py.File, path: Path) -> dict[str, tuple[h5py.Dataset, h5py.Dataset]]:
    """conv name -> (kernel, bias) datasets of an open Keras VGG-19 weights file, checked without reading them."""
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
        if kernel.dtype.kind != "f" or bias.dtype.kind != "f":
            raise WeightsFileError(
                f"{path}: layer {keras_name} holds {kernel.dtype} and {bias.dtype} values, not floating-point "
                f"filters; the file is corrupt or not VGG-19: {_FETCH_HINT}"
            )
        shapes[name], datasets[name] = (kernel.shape, bias.shape), (kernel, bias)
    found = ", ".join(layer_names[:3]) + (", ..." if len(layer_names) > 3 else "")
    _check_vgg19_convs(path, shapes, found=f"{len(layer_names)} layers: {found}")
    return datasets


def _keras_h5_weights(datasets: dict, path: Path, conv_names: Sequence[str]) -> VGGWeights:
    """Conv filters from the datasets of a Keras VGG-19 weights file, conv1_1 flipped from BGR to RGB."""
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


def _read_keras_h5(path: Path, conv_names: Sequence[str] | None) -> VGGWeights | None:
    """Conv filters from Keras's vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5, conv1_1 flipped to RGB; with
    `conv_names` None the file is only checked (its structure and shapes, no filter read) and None returned."""
    try:
        with h5py.File(path, "r") as file:
            datasets = _keras_h5_datasets(file, path)
            return None if conv_names is None else _keras_h5_weights(datasets, path, conv_names)
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
    suffix = _check_before_parsing(path, verify_checksum)
    reader = _read_matconvnet if suffix == ".mat" else _read_keras_h5
    return reader(path, conv_names)


def check_weights_file(path: Path | str, verify_checksum: bool = True) -> Path:
    """Every check read_vgg19_weights makes, without reading the filters where the format allows (TensorFlow is not
    needed either): WeightsFileError in one line for a file that is no VGG-19 weights file; else the absolute path.

    A Keras .h5 is checked from its structure and shapes; a .mat that is not a verified published copy is read
    (its structure cannot be seen without parsing it all), a verified one is taken as it is."""
    path = Path(path).expanduser().absolute()
    suffix = _check_before_parsing(path, verify_checksum)
    if suffix != ".mat":
        _read_keras_h5(path, None)
    elif not (verify_checksum and any(path.name == source.filename for source in WEIGHTS_SOURCES.values())):
        _read_matconvnet(path, ())
    return path


def _check_before_parsing(path: Path, verify_checksum: bool) -> str:
    """The file's suffix, after the checks that need no parser: a regular file of a weights type, not empty, not a
    web page, and, with a published name and `verify_checksum`, the published bytes."""
    kind = path_kind(path)
    if kind != "a file":
        what = {None: "no such file", "a folder": "is a directory, not a weights file"}.get(kind, f"is {kind}")
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
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            head = file.read(256).lstrip()
    except OSError as err:
        raise WeightsFileError(f"{path}: cannot be read ({err.strerror or err}); check its permissions") from None
    if size == 0:
        raise WeightsFileError(f"{path}: the file is empty (0 bytes); delete it and {_FETCH_HINT}")
    if head.startswith(b"<"):  # <!DOCTYPE html>, <html>, <?xml: never a .mat or HDF5 header
        raise WeightsFileError(
            f"{path}: is a web page (HTML/XML, {size:,} bytes), not weights: the server sent an error or login page; "
            f"delete it and {_FETCH_HINT}"
        )
    if verify_checksum:
        _verify_published_checksum(path)
    return suffix


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
    """The published VGG-19 weights files present in `directory` (default pretrained-model/): Keras .h5 first.

    Anything under a published name counts, a folder or a dangling link too: the reader then says what is wrong."""
    directory = Path(PRETRAINED_DIR if directory is None else directory)
    candidates = [directory / source.filename for source in WEIGHTS_SOURCES.values()]  # dict order: keras, matconvnet
    return [path for path in candidates if path_kind(path) is not None]


def _random_weights_notice(directory: Path | None, seed: int) -> str:
    """Two lines telling the user the model is not pretrained, and how to fix that."""
    where = ", not pretrained ones" if directory is None else f" because {directory} holds no VGG-19 weights file"
    first = f"Note: using random-feature VGG-19 filters (seed {seed}){where}; style transfer will look weaker."
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


def weights_setting(weights):
    """`weights`, where None is read from $NST_WEIGHTS if set: "random", or the path of a weights file or folder."""
    if weights is not None:
        return weights
    value = os.environ.get(WEIGHTS_ENV, "").strip()
    if value and value != "random" and path_kind(Path(value).expanduser()) is None:
        raise WeightsFileError(
            f"{WEIGHTS_ENV}={value}: no such file or folder; set it to random or to a VGG-19 weights file, or unset it"
        )
    return value or None


def _first_usable(folder: Path, use):
    """use(path) for the first published weights file in `folder` that it accepts (bad ones before it are reported on
    stdout); None if `folder` holds none; the first one's WeightsFileError if every one is bad."""
    errors: list[WeightsFileError] = []
    for path in find_weights_files(folder):
        try:
            found = use(path)
        except WeightsFileError as exc:  # try the next published file; report this one if none works
            errors.append(exc)
            continue
        for error in errors:
            print(f"Skipped a bad weights file: {error}")
        return found
    if errors:  # a broken download must be fixed, not silently replaced by random filters
        raise errors[0]
    return None


def resolve_weights(
    weights: Path | str | VGGWeights | None, conv_names: Sequence[str], seed: int, verify_checksum: bool
) -> VGGWeights:
    """VGGWeights for `weights`: already read, "random", a file, a directory to search, or None: $NST_WEIGHTS if set,
    else the file in pretrained-model/, else Keras's fetched there now (random features, said in one line on stderr,
    when it cannot be)."""
    if isinstance(weights, VGGWeights):
        return weights
    setting = weights_setting(weights)
    if isinstance(setting, str) and setting == "random":
        print(_random_weights_notice(None, seed))
        return random_vgg19_weights(seed, conv_names)

    def read(path: Path) -> VGGWeights:
        return read_vgg19_weights(path, verify_checksum, conv_names)

    location = Path(PRETRAINED_DIR if setting is None else setting).expanduser()
    if setting is not None and not location.is_dir():
        return read(location)
    found = _first_usable(location, read)
    if found is None and setting is None:
        from nst.download import fetch_on_first_use

        fetched = fetch_on_first_use(location, once_per_process=False)  # run again, the cell tries again
        found = None if fetched is None else read(fetched)
    if found is not None:
        return found
    print(_random_weights_notice(location, seed))
    return random_vgg19_weights(seed, conv_names)


def check_weights(weights) -> str | None:
    """A run's `weights` setting checked before its kernel starts, without the network or TensorFlow: WeightsFileError
    in one line for a file that is no weights file. Returns what the kernel is to get: "random", or an absolute path (a
    checked file, or a folder without one); None when Keras's file is to be fetched first (weights_for_kernel)."""
    setting = weights_setting(weights)
    if isinstance(setting, str) and setting == "random":
        return "random"
    if setting is None:
        found = _first_usable(PRETRAINED_DIR, check_weights_file)
        return None if found is None else str(found)
    location = Path(setting).expanduser().absolute()
    if path_kind(location) is None:
        raise WeightsFileError(
            f"weights={setting}: no such file or folder; pass a VGG-19 .h5 or .mat file, a folder holding one, "
            "'random', or None"
        )
    if not location.is_dir():
        return str(check_weights_file(location))
    return str(_first_usable(location, check_weights_file) or location)


def weights_for_kernel(checked: str | None) -> str:
    """What check_weights returned; for None, Keras's file fetched into pretrained-model/ now: its path, or "random"
    after one line on stderr that says why (offline, a proxy's page, a wrong checksum) and how to fetch it later."""
    if checked is not None:
        return checked
    from nst.download import fetch_on_first_use

    fetched = fetch_on_first_use(PRETRAINED_DIR)
    return "random" if fetched is None else str(fetched)
