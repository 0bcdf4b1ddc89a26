"""VideoSettings: every setting of a video run (notebook 02), its default and its check. No TensorFlow.

The notebook's parameters cell holds the same names as plain assignments (papermill replaces them); the cell after
it builds `VideoSettings.from_namespace(globals())`. The settings shared with a still image (weights, layers,
α, β, size, start) are checked by nst.settings.Settings itself, so each check is written once.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing

from nst import settings as still
from nst.errors import SettingsError
from nst.images import is_real
from nst.paths import IMAGES_DIR, OUTPUT_DIR, PROJECT_DIR, SAMPLE_STYLE_PATH
from nst.video import FLOW_METHODS

VIDEO_NOTEBOOK_PATH = PROJECT_DIR / "notebooks" / "02_video_style_transfer.ipynb"
SAMPLE_CLIP_PATH = IMAGES_DIR / "sample_clip.mp4"  # made by images/make_sample_clip.py from the sample photo
MAX_GAMMA = 1e12  # as for α and β: far above any useful weight, far below float32 overflow
# The settings a still image has too, checked by nst.settings.Settings.
SHARED = (
    "style_path",
    "max_side_px",
    "alpha",
    "beta",
    "content_layer",
    "style_layers",
    "noise_ratio",
    "init",
    "seed",
    "precision",
    "weights",
    "pooling",
    "output_root",
    "run_dir",
    "live_view",
)


@dataclasses.dataclass(frozen=True)
class VideoSettings(still.SettingsMethods):
    """Every setting of a video run. Built from keyword arguments (or the notebook's namespace), checked at once."""

    PARAMETERS: typing.ClassVar[str] = "the video's parameters"

    input_path: str = str(SAMPLE_CLIP_PATH)  # a video file, a folder of frames named in order, or a still image
    style_path: str = str(SAMPLE_STYLE_PATH)  # the painting whose style we borrow
    max_side_px: int = 256  # long side of each stylised frame, in pixels (aspect ratio kept)
    max_frames: int | None = None  # stylise only the first max_frames frames; None: all
    fps: float | None = None  # frames per second of out.mp4; None: the clip's (12 for a folder of frames)
    first_iterations: int = 20  # L-BFGS iterations on the first frame, which starts from noise
    # A warm start is close to its minimum in pixels whatever the weights; on random features it gets as low as 20
    # iterations from noise in about 4 (the notebook measures it on every run), so 8 leaves a margin for real ones.
    later_iterations: int = 8  # L-BFGS iterations on each later frame, which starts from its predecessor
    alpha: float = 10.0  # α, weight of the content cost
    beta: float = 40.0  # β, weight of the style cost
    # Tuned on random features, where β·J_style ≈ 1e4 and γ·J_temporal ≈ 20 for a drift of 0.01: a gentle pull.
    # Real weights give J_style another size; what carries over is the ratio, so judge γ against β·J_style.
    gamma: float = 2e5  # γ, weight of the temporal cost (0: frames tied only by the warm start)
    warm_start: bool = True  # start frame t from the warped stylised frame t−1 (False: from noise, like frame 0)
    flow_method: str = "dis"  # optical flow: "dis" (OpenCV's DIS) or "farneback"
    compare_frames: int = 6  # frames stylised three ways for the consistency figure (0: no comparison)
    content_layer: str = "conv4_2"  # one deep layer holds the content
    style_layers: tuple[tuple[str, float], ...] = still.DEFAULT_STYLE_LAYERS  # (layer name, coefficient λ)
    noise_ratio: float = 0.6  # share of noise in the first frame's starting image
    init: str = "noisy_content"  # the first frame's starting image (see the first notebook)
    seed: int = 0  # seeds the initial noise
    precision: str = "auto"  # "auto" (fp32: the frames use L-BFGS), "fp32" or "bf16" (see the first notebook)
    weights: str | None = None  # a VGG-19 weights file; None: the one in pretrained-model/, else random features
    pooling: str = "avg"  # "avg" (Gatys et al.) or "max"
    output_root: str = str(OUTPUT_DIR)  # each run gets a new folder here
    run_dir: str | None = None  # None: a new folder under output_root
    resume: bool = False  # continue the run in run_dir after its last finished frame
    live_view: bool = True  # α, β, γ sliders in JupyterLab; False: a progress bar only

    def __post_init__(self):
        _check(self)

    @property
    def deepest_layer(self) -> str:
        """The deepest VGG-19 layer the costs read."""
        return still.Settings.deepest_layer.fget(self)


def field_names() -> tuple[str, ...]:
    """The names of the settings, in the order of the parameters cell."""
    return still.field_names(VideoSettings)


# Settings of a still image that a video refuses, each with why and what to do instead.
NOT_FOR_VIDEO = {
    "style_masks": "masks are for still images (a mask would have to follow the motion of every frame); leave "
    "-p style_masks out, or stylise single frames with the stylise command",
}


def parse_video_setting(name: str, text: str):
    """A command-line value for setting `name`, in its declared type; SettingsError in one line if it can't."""
    if name in NOT_FOR_VIDEO:
        raise SettingsError(f"{name}: {NOT_FOR_VIDEO[name]}")
    return still.parse_setting(name, text, VideoSettings)


def _check(s: VideoSettings) -> None:
    """Every check, each a one-line message naming the value and the fix."""
    shared = {name: getattr(s, name) for name in SHARED}
    checked = still.Settings(**shared)  # α, β, layers, size, start, paths: checked once, in nst.settings
    for name in SHARED:
        object.__setattr__(s, name, getattr(checked, name))
    if not isinstance(s.input_path, (str, os.PathLike)):
        raise SettingsError(f"input_path={s.input_path!r}: expected the path of a video or a folder of frames")
    object.__setattr__(s, "input_path", os.fspath(s.input_path))
    if not (is_real(s.gamma) and math.isfinite(s.gamma) and 0 <= s.gamma <= MAX_GAMMA):
        raise SettingsError(f"gamma={s.gamma!r}: the temporal weight γ must be a number from 0 to {MAX_GAMMA:g}")
    object.__setattr__(s, "gamma", float(s.gamma))
    _whole(s, "first_iterations", 0, "iterations on the first frame, a whole number ≥ 0")
    _whole(s, "later_iterations", 0, "iterations on each later frame, a whole number ≥ 0")
    _whole(s, "compare_frames", 0, "frames of the three-way comparison, a whole number ≥ 0 (0: none)")
    if s.max_frames is not None:
        _whole(s, "max_frames", 1, "a whole number of frames ≥ 1, or None for the whole clip")
    if s.fps is not None and not (is_real(s.fps) and math.isfinite(s.fps) and 0 < s.fps <= 1000):
        raise SettingsError(f"fps={s.fps!r}: frames per second must be a number above 0, or None for the clip's")
    if s.flow_method not in FLOW_METHODS:
        raise SettingsError(f"flow_method={s.flow_method!r}: choose one of {', '.join(FLOW_METHODS)}")
    for name in ("warm_start", "resume"):
        if not isinstance(getattr(s, name), (bool, int)) or getattr(s, name) not in (0, 1):
            raise SettingsError(f"{name}={getattr(s, name)!r}: expected True or False")
        object.__setattr__(s, name, bool(getattr(s, name)))
    if s.resume and s.run_dir is None:
        raise SettingsError("resume=True needs run_dir, the folder of the run to continue (--resume RUN_DIR)")


def _whole(s: VideoSettings, name: str, low: int, meaning: str) -> None:
    value = getattr(s, name)
    ok = not isinstance(value, bool) and is_real(value) and math.isfinite(value) and float(value).is_integer()
    if not ok or value < low or value > still.MAX_ITERATIONS:
        raise SettingsError(f"{name}={value!r}: {meaning}")
    object.__setattr__(s, name, int(value))
