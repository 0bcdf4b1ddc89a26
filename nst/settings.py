"""Settings: every setting of a run, written once with its default and meaning, checked in one place.

The notebook's parameters cell holds the same names as plain assignments (papermill replaces them), and the cell
after it builds `Settings.from_namespace(globals())`. The command line parses each `-p NAME VALUE` into the type
declared here, and checks the whole Settings before a kernel starts. No TensorFlow here.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import os
import typing
from collections.abc import Mapping

from nst.errors import SettingsError
from nst.images import is_real
from nst.initial import INITIAL_IMAGE_KINDS
from nst.model_options import OPTIMIZERS, POOLINGS, PRECISIONS
from nst.paths import OUTPUT_DIR, SAMPLE_CONTENT_PATH, SAMPLE_STYLE_PATH
from nst.vgg19 import MIN_SHORT_SIDE_PX, vgg19_layer_names

PRESERVE_COLOURS_MODES = (None, "luminance", "histogram")
MAX_COST_WEIGHT = 1e12  # far above any useful α or β (the sliders end at 1e5), far below float32 overflow (3.4e38)
MAX_ITERATIONS = 100_000  # far beyond any useful run (the picture stops changing within a few hundred)
DEFAULT_STYLE_LAYERS = (("conv1_1", 0.2), ("conv2_1", 0.2), ("conv3_1", 0.2), ("conv4_1", 0.2), ("conv5_1", 0.2))
# What iterations, coarse_to_fine and coarse_iterations are when left None, for each optimiser. Adam's were chosen by
# the picture judge on random features (docs/benchmarks.md, round 3), with the course's learning rate, which was made
# with real weights. L-BFGS's are the README's: 20 iterations at full size, 61 s (judged 1.527 / 0.867 on the sample
# pair, the course's recipe 1.527 / 0.897); 40 drive the random-feature cost lower and eat the photo (1.468 / 0.772),
# and coarse to fine loses it (3 sizes: 1.702 / 0.587). docs/benchmark_results_avx512-bf16.md has these rows.
OPTIMISER_SCHEDULES = {
    "adam": {"coarse_to_fine": 2, "coarse_iterations": 100, "iterations": 10},
    "lbfgs": {"coarse_to_fine": 1, "coarse_iterations": 20, "iterations": 20},
}
# Above 1024 px Adam's schedule has one more size per doubling, until the first is at most this long: a large
# picture is composed at 257-512 px, near the judged run's 400 px, and refined for `iterations` at each
# later size. At 100×75 the content layer's grid was too coarse to hold the photo; at 480×270 it holds it: 1920×1080
# took 9.4-9.8 min against two sizes' 16 (AVX2, fp32), judged 1.602 / 0.894 against 1.813 / 0.912, but with the
# stained glass 3.706 / 0.861 against 3.545 / 0.863, and softer seen pixel for pixel (docs/benchmarks.md, round 3,
# sixth session). Tuned on random features; a grid's size in pixels is the
# same with real weights.
FIRST_SIZE_MAX_SIDE_PX = 512
_STYLE_IMAGES_EXAMPLE = "e.g. style_images=[('style_a.jpg', 0.7), ('style_b.jpg', 0.3)]"
_STYLE_MASKS_EXAMPLE = "e.g. style_masks=['images/raccoon_leaves_mask.png']"


def default_sizes(max_side_px: int, fewest: int) -> int:
    """How many sizes a run left to its optimiser's schedule has at `max_side_px`: `fewest`, its schedule's; and for
    coarse to fine (fewest > 1) more, each half the next, until the first is at most FIRST_SIZE_MAX_SIDE_PX on its
    long side (Adam at 400 px: 2 sizes; 1920: 3, from 480 px; 3840: 4)."""
    sizes = fewest
    while sizes > 1 and max_side_px / 2 ** (sizes - 1) > FIRST_SIZE_MAX_SIDE_PX:
        sizes += 1
    return sizes


class SettingsMethods:
    """What every settings dataclass shares (Settings here, VideoSettings for notebook 02)."""

    PARAMETERS: typing.ClassVar[str] = "the parameters"  # how the unknown-name message calls them

    @classmethod
    def from_namespace(cls, namespace: Mapping):
        """The settings from the variables of that name in `namespace` (a notebook's globals()); others are ignored."""
        return cls(**{name: namespace[name] for name in field_names(cls) if name in namespace})

    def asdict(self) -> dict:
        """The settings as plain JSON values (params.json, and papermill's parameters)."""
        return {name: _plain(value) for name, value in dataclasses.asdict(self).items()}


@dataclasses.dataclass(frozen=True)
class Settings(SettingsMethods):
    """Every setting of a run. Built from keyword arguments (or a notebook's namespace) and checked at once."""

    content_path: str = str(SAMPLE_CONTENT_PATH)  # the photo to repaint
    style_path: str = str(SAMPLE_STYLE_PATH)  # the painting whose style we borrow
    # None: style_path alone; or (path, weight) pairs to blend several styles (weights are normalised to sum to 1)
    style_images: tuple[tuple[str, float], ...] | None = None
    # None: each style paints everywhere; or one greyscale mask per style image, white where that style paints
    # (an entry None: that style paints everywhere)
    style_masks: tuple[str | None, ...] | None = None
    style_scale: float = 1.0  # size of the style image relative to the content's (below 1: finer strokes)
    max_side_px: int = 400  # long side of G, in pixels (aspect ratio kept)
    # None: the optimiser's own (OPTIMISER_SCHEDULES): Adam 100 at half size + 10 (more sizes above 1024 px),
    # L-BFGS 20 at full size only
    iterations: int | None = None  # iterations at each size after the smallest, full size last
    optimizer: str = "adam"  # "adam" (the course's, this notebook's train_step) or "lbfgs"
    coarse_to_fine: int | None = None  # number of sizes, each twice the previous, ending at max_side_px (1: full only)
    coarse_iterations: int | None = None  # iterations at the smallest size (Adam's trial steps are the first three)
    precision: str = "auto"  # "auto" (bf16 where native, but fp32 for L-BFGS and elsewhere), "fp32" or "bf16"
    learning_rate: float = 0.01  # Adam step size, in [0, 1] pixel units: the course's
    alpha: float = 10.0  # α, weight of the content cost
    beta: float = 40.0  # β, weight of the style cost
    content_layer: str = "conv4_2"  # one deep layer holds the content
    style_layers: tuple[tuple[str, float], ...] = DEFAULT_STYLE_LAYERS  # (layer name, coefficient λ) pairs
    # share of noise in the initial image (0: the content image itself). The course's is 0.6; from 0.5 the default
    # was as good as its recipe on 7 of 10 judged pairs, from 0.6 on 2 (docs/benchmarks.md, "A start with more of
    # the photo")
    noise_ratio: float = 0.5
    init: str = "noisy_content"  # starting image: "noisy_content" (the course's), "content", "style" or "noise"
    tv_weight: float = 0.0  # weight of the smoothness (total-variation) cost; 0 keeps the original recipe
    preserve_colours: str | None = None  # None, "luminance" (keep the photo's colours) or "histogram"
    seed: int = 0  # seeds the initial noise
    save_every: int = 5  # iterations between snapshots written to the run folder
    weights: str | None = None  # a VGG-19 weights file, "random", or None: pretrained-model/'s, fetched on first use
    pooling: str = "avg"  # "avg" (Gatys et al.) or "max"
    output_root: str = str(OUTPUT_DIR)  # each run gets a new folder here
    run_dir: str | None = None  # None: a new folder under output_root
    live_view: bool = True  # widgets in JupyterLab; False: a progress bar

    def __post_init__(self):
        _check(self)

    @property
    def styles(self) -> tuple[tuple[str, float], ...]:
        """The style images as (path, weight) pairs, weights summing to 1: style_images, or style_path alone."""
        return self.style_images or ((self.style_path, 1.0),)

    @property
    def deepest_layer(self) -> str:
        """The deepest VGG-19 layer the costs read: the model is built no further."""
        names = vgg19_layer_names()
        return max([self.content_layer, *(name for name, _ in self.style_layers)], key=names.index)


def field_names(settings_class: type = Settings) -> tuple[str, ...]:
    """The names of the settings, in the order of the parameters cell."""
    return tuple(field.name for field in dataclasses.fields(settings_class))


def parse_setting(name: str, text: str, settings_class: type = Settings):
    """A command-line value for setting `name` of `settings_class`, parsed into its declared type; SettingsError in
    one line if it can't."""
    names = field_names(settings_class)
    if name not in names:
        raise SettingsError(f"unknown parameter {name}; {settings_class.PARAMETERS} are {', '.join(names)}")
    kind = typing.get_type_hints(settings_class)[name]
    allows_none = type(None) in typing.get_args(kind)
    if allows_none and text.strip() in ("None", "none", ""):
        return None
    base = next((arg for arg in typing.get_args(kind) if arg is not type(None)), kind) if allows_none else kind
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = text  # a bare word such as adam or conv4_2
    if base is str:
        return value if isinstance(value, str) else text
    if base is bool:
        if value in (True, False, 0, 1) and not isinstance(value, float):
            return bool(value)
        raise SettingsError(f"{name}={text!r}: expected True or False")
    if base is int:
        if is_real(value) and math.isfinite(value) and float(value).is_integer():
            return int(value)
        raise SettingsError(f"{name}={text!r}: expected a whole number, e.g. {getattr(settings_class, name)}")
    if base is float:
        if is_real(value):
            return float(value)
        raise SettingsError(f"{name}={text!r}: expected a number, e.g. {getattr(settings_class, name)}")
    if base == tuple[str | None, ...]:  # paths: a bare one is a list of one; checked by Settings itself
        return (value,) if isinstance(value, str) else value
    if isinstance(value, (list, tuple)):  # pairs: checked by Settings itself
        return value
    example = "\"[('conv1_1', 1.0), ('conv3_1', 0.5)]\"" if name == "style_layers" else _STYLE_IMAGES_EXAMPLE
    raise SettingsError(f"{name}={text!r}: expected a list of (name, number) pairs, {example}")


def _plain(value):
    """Tuples as lists, recursively: what JSON and papermill write faithfully."""
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return value


def _set(settings: Settings, name: str, value) -> None:
    object.__setattr__(settings, name, value)  # a frozen dataclass normalises its own fields once


def _check(s: Settings) -> None:
    """Every check, with one-line messages that name the value and the fix; normalises pairs to tuples."""
    valid = vgg19_layer_names()
    for name in ("content_path", "style_path", "output_root"):
        if not isinstance(getattr(s, name), (str, os.PathLike)):
            raise SettingsError(f"{name}={getattr(s, name)!r}: expected a path")
        _set(s, name, os.fspath(getattr(s, name)))
    for name, value in (("alpha", s.alpha), ("beta", s.beta)):
        if not (is_real(value) and math.isfinite(value) and value >= 0):
            raise SettingsError(f"{name}={value!r}: the cost weights α and β must be finite numbers ≥ 0")
        if value > MAX_COST_WEIGHT:
            raise SettingsError(
                f"{name}={value!r}: at most {MAX_COST_WEIGHT:g}, or the weighted cost overflows float32; "
                "only the ratio of alpha and beta matters"
            )
    if s.alpha == 0 and s.beta == 0:
        raise SettingsError("alpha=0 and beta=0: with both weights 0 there is nothing to optimise; make one positive")
    if s.content_layer not in valid:
        raise SettingsError(
            f"content_layer={s.content_layer!r} is not a VGG-19 layer; choose one of {', '.join(valid)}"
        )
    _set(s, "style_layers", _style_layers(s.style_layers, valid))
    _whole(s, "save_every", 1, None, "must be a whole number ≥ 1 (iterations between snapshots)")
    _whole(s, "seed", 0, None, "must be a whole number ≥ 0")
    if not (is_real(s.learning_rate) and math.isfinite(s.learning_rate) and s.learning_rate > 0):
        raise SettingsError(f"learning_rate={s.learning_rate!r}: must be a positive number (0.01 is the course's)")
    if isinstance(s.max_side_px, bool) or not is_real(s.max_side_px) or not float(s.max_side_px).is_integer():
        raise SettingsError(f"max_side_px={s.max_side_px!r}: must be a whole number ≥ {MIN_SHORT_SIDE_PX} (pixels)")
    if s.max_side_px < MIN_SHORT_SIDE_PX:
        raise SettingsError(f"max_side_px={s.max_side_px!r}: must be a whole number ≥ {MIN_SHORT_SIDE_PX} (pixels)")
    _set(s, "max_side_px", int(s.max_side_px))
    if s.optimizer not in OPTIMIZERS:
        raise SettingsError(f"optimizer={s.optimizer!r}: choose 'adam' (the course's) or 'lbfgs'")
    for name, value in OPTIMISER_SCHEDULES[s.optimizer].items():
        if getattr(s, name) is None:
            _set(s, name, default_sizes(s.max_side_px, value) if name == "coarse_to_fine" else value)
    _whole(s, "iterations", 0, MAX_ITERATIONS, "must be a whole number ≥ 0 (None: the optimiser's own)")
    _whole(
        s, "coarse_to_fine", 1, None, "number of sizes, a whole number ≥ 1 (1: full size only; None: the optimiser's)"
    )
    _whole(s, "coarse_iterations", 0, MAX_ITERATIONS, "must be a whole number ≥ 0 (None: the optimiser's own)")
    if s.precision not in PRECISIONS:
        raise SettingsError(f"precision={s.precision!r}: choose 'auto', 'fp32' or 'bf16'")
    if s.pooling not in POOLINGS:
        raise SettingsError(f"pooling={s.pooling!r}: choose 'avg' (Gatys et al.) or 'max'")
    if s.init not in INITIAL_IMAGE_KINDS:
        raise SettingsError(f"init={s.init!r} is unknown; choose one of {', '.join(INITIAL_IMAGE_KINDS)}")
    if s.preserve_colours not in PRESERVE_COLOURS_MODES:
        raise SettingsError(f"preserve_colours={s.preserve_colours!r}: use None, 'luminance' or 'histogram'")
    if not (is_real(s.tv_weight) and math.isfinite(s.tv_weight) and s.tv_weight >= 0):
        raise SettingsError(f"tv_weight={s.tv_weight!r}: must be a number ≥ 0 (0 turns the smoothness cost off)")
    if not (is_real(s.style_scale) and math.isfinite(s.style_scale) and s.style_scale > 0):
        raise SettingsError(
            "style_scale must be a finite number above 0 (1: the content's size, 0.5: half of it), "
            f"got {s.style_scale!r}"
        )
    if not (is_real(s.noise_ratio) and 0.0 <= s.noise_ratio <= 1.0):
        raise SettingsError(f"noise_ratio={s.noise_ratio!r}: must be between 0 (the content image) and 1 (pure noise)")
    if s.style_images:
        _set(s, "style_images", normalise_style_weights(s.style_images))
    if s.style_masks is not None:
        _set(s, "style_masks", _style_masks(s.style_masks, len(s.styles), bool(s.style_images)))
    for name in ("weights", "run_dir"):
        value = getattr(s, name)
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise SettingsError(f"{name}={value!r}: expected a path, or None")
        _set(s, name, None if value is None else os.fspath(value))
    if not isinstance(s.live_view, (bool, int)):
        raise SettingsError(f"live_view={s.live_view!r}: expected True or False")
    _set(s, "live_view", bool(s.live_view))


def _whole(s: Settings, name: str, low: int, high: int | None, meaning: str) -> None:
    value = getattr(s, name)
    if isinstance(value, bool) or not is_real(value) or not math.isfinite(value) or not float(value).is_integer():
        raise SettingsError(f"{name}={value!r}: {meaning}")
    if value < low:
        raise SettingsError(f"{name}={value!r}: {meaning}")
    if high is not None and value > high:
        raise SettingsError(f"{name}={value!r}: at most {high:,}; the picture stops changing long before that")
    _set(s, name, int(value))


def _style_layers(style_layers, valid) -> tuple[tuple[str, float], ...]:
    try:
        pairs = tuple((str(name), float(coefficient)) for name, coefficient in style_layers)
        if any(not isinstance(name, str) for name, _ in style_layers):
            raise TypeError
    except (TypeError, ValueError):
        raise SettingsError(
            f"style_layers={style_layers!r}: expected a list of (layer_name, coefficient) pairs, "
            'e.g. [("conv1_1", 0.2), ("conv2_1", 0.2)]'
        ) from None
    unknown = [name for name, _ in pairs if name not in valid]
    if unknown:
        raise SettingsError(f"style_layers: {', '.join(unknown)} is not a VGG-19 layer; choose from {', '.join(valid)}")
    if not pairs or any(not math.isfinite(c) or c < 0 for _, c in pairs) or not any(c > 0 for _, c in pairs):
        raise SettingsError(
            f"style_layers={list(pairs)!r}: coefficients must be ≥ 0 with at least one positive "
            "(the default is 0.2 each)"
        )
    return pairs


def _style_masks(style_masks, n_styles: int, blended: bool) -> tuple[str | None, ...]:
    """The mask paths as a tuple of str (None: that style paints everywhere), one per style; SettingsError naming
    what is wrong otherwise."""
    if isinstance(style_masks, (str, os.PathLike)):
        style_masks = (style_masks,)
    paths = (str, os.PathLike, type(None))
    if not isinstance(style_masks, (list, tuple)) or not all(isinstance(path, paths) for path in style_masks):
        raise SettingsError(
            f"style_masks={style_masks!r}: expected a list of mask image paths, one per style, {_STYLE_MASKS_EXAMPLE}"
        )
    if len(style_masks) != n_styles:
        plural = "s" if n_styles != 1 else ""
        styles = f"{n_styles} style image{plural} in style_images" if blended else "1 style image (style_path)"
        raise SettingsError(
            f"style_masks has {len(style_masks)} mask{'s' if len(style_masks) != 1 else ''} for {styles}: give one "
            "mask per style image, in the same order, or style_masks=None to paint every style everywhere"
        )
    return tuple(None if path is None else os.fspath(path) for path in style_masks)


def normalise_style_weights(style_images) -> tuple[tuple[str, float], ...]:
    """((path, weight), ...) with weights summing to 1, from a path, a list of paths or a list of (path, weight).

    Bare paths weigh 1 before normalising; a weight of 0 is kept (the caller may skip it).
    """
    if isinstance(style_images, (str, os.PathLike)) or (
        isinstance(style_images, tuple) and _is_weighted_style(style_images)
    ):
        style_images = [style_images]
    if not isinstance(style_images, (list, tuple)) or not style_images:
        raise SettingsError(
            f"style_images={style_images!r}: pass a style image path, or several, {_STYLE_IMAGES_EXAMPLE}"
        )
    pairs = []
    for entry in style_images:
        if isinstance(entry, (str, os.PathLike)):
            path, weight = entry, 1.0
        elif _is_weighted_style(entry):
            path, weight = entry[0], float(entry[1])
        else:
            raise SettingsError(
                f"style_images entry {entry!r} is neither a path nor a (path, weight) pair; {_STYLE_IMAGES_EXAMPLE}"
            )
        if not math.isfinite(weight) or weight < 0:
            raise SettingsError(
                f"style weight {weight!r} for {path}: weights must be finite and 0 or more; {_STYLE_IMAGES_EXAMPLE}"
            )
        pairs.append((os.fspath(path), weight))
    largest = max(weight for _, weight in pairs)
    if largest == 0:
        raise SettingsError(f"all style weights are 0 in {style_images!r}: give at least one style a weight above 0")
    total = math.fsum(weight / largest for _, weight in pairs)  # scaled first, so huge weights cannot overflow
    return tuple((path, weight / largest / total) for path, weight in pairs)


def _is_weighted_style(entry) -> bool:
    """Whether `entry` is a (path, weight) pair with a real-number weight."""
    return (
        isinstance(entry, (tuple, list))
        and len(entry) == 2
        and isinstance(entry[0], (str, os.PathLike))
        and is_real(entry[1])
    )
