"""The notebook's one import: a short face over the `nst` package. Nothing here does work on import.

    paths         SAMPLE_CONTENT_PATH, SAMPLE_STYLE_PATH, SAMPLE_MASK_PATH, OUTPUT_DIR, NSTError
    settings      Settings: every setting, its default and its check (nst.settings)
    images        load_image, load_style_image, save_image, resize_image, fit_to_max_side, shrink_to_max_side,
                  style_max_side, style_upsampling_note
    masks         load_mask, load_style_masks, masks_at, mask_at_layer: spatial control (nst.masks)
    starting      initial_image, INITIAL_IMAGE_KINDS (nst.initial)
    colour        transfer_luminance_only, match_colour_histogram (nst.colour)
    model         load_vgg_model, choose_precision, vgg19_layer_names (nst.model, nst.vgg19)
    memory        check_memory (nst.memory)
    style targets style_stand_ins, gram_stand_in: the style's activations kept as their Gram (nst.style_targets)
    runs          StyleTransferRun, Stage, make_run_dir, RunFolder (nst.run, nst.run_folder)
    optimisers    LBFGS, coarse_sizes (nst.optimisers)
    video         optical_flow, warp, consistency_mask, flow_to_rgb, is_new_shot, probe_clip, read_frames,
                  VideoRunFolder, VideoSettings, SAMPLE_CLIP_PATH, moving_square_frames, square_pos_px,
                  notebook_costs, weight_slider: what notebook 02 adds
    checks        check_close, below: what the notebooks' check cells call

The costs (content, Gram, style, total) are *not* here: they live in the notebook, where they are taught.
Each name is imported from its module when first used, so `python nst_utils.py download` never loads TensorFlow.

Command line:
    python nst_utils.py download [keras|matconvnet]   # fetch real VGG-19 weights into pretrained-model/
    python nst_utils.py stylise [--content A.jpg] [--style B.jpg] [-p NAME VALUE ...]   # the notebook, headless
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping

_EXPORTS = {
    "nst.paths": ("SAMPLE_CONTENT_PATH", "SAMPLE_STYLE_PATH", "SAMPLE_MASK_PATH", "OUTPUT_DIR", "IMAGES_DIR"),
    "nst.errors": ("NSTError",),
    "nst.settings": ("Settings",),
    "nst.images": (
        "load_image",
        "load_style_image",
        "save_image",
        "resize_image",
        "fit_to_max_side",
        "shrink_to_max_side",
        "style_max_side",
        "style_upsampling_note",
    ),
    "nst.masks": ("load_mask", "load_style_masks", "masks_at", "mask_at_layer"),
    "nst.initial": ("initial_image", "INITIAL_IMAGE_KINDS"),
    "nst.colour": ("transfer_luminance_only", "match_colour_histogram"),
    "nst.model": ("load_vgg_model", "choose_precision"),
    "nst.vgg19": ("vgg19_layer_names",),
    "nst.memory": ("check_memory",),
    "nst.style_targets": ("style_stand_ins", "gram_stand_in"),
    "nst.run": ("StyleTransferRun", "Stage"),
    "nst.run_folder": ("make_run_dir", "RunFolder"),
    "nst.optimisers": ("LBFGS", "coarse_sizes"),
    "nst.live_view": ("weight_slider",),
    "nst.notebook_costs": ("notebook_costs",),
    "nst.video": ("optical_flow", "warp", "consistency_mask", "flow_to_rgb", "is_new_shot"),
    "nst.video_io": ("probe_clip", "read_frames", "VideoRunFolder"),
    "nst.video_settings": ("VideoSettings", "SAMPLE_CLIP_PATH"),
    "nst.video_synthetic": ("moving_square_frames", "square_pos_px"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["check_close", *_MODULE_OF]


def __getattr__(name: str):
    """Import a re-exported name from its module on first use (PEP 562)."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'nst_utils' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def check_close(
    what: str,
    got,
    expected,
    likely_mistakes: Mapping[float, str] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-8,
):
    """Assert `got` ≈ `expected`; otherwise raise an AssertionError that names the mistake that gives `got`."""
    import numpy as np

    got_array = np.asarray(got, dtype=np.float64)
    expected_array = np.asarray(expected, dtype=np.float64)
    if got_array.shape == expected_array.shape and np.allclose(got_array, expected_array, rtol=rtol, atol=atol):
        return
    hint = "re-read the formula above and compare it term by term"
    for wrong_value, mistake in (likely_mistakes or {}).items():
        if got_array.size == 1 and np.isclose(float(got_array.reshape(())), wrong_value, rtol=1e-4):
            hint = mistake
            break

    def shown(array):
        return array.tolist() if array.size <= 9 else f"an array of shape {array.shape}"

    if got_array.shape == expected_array.shape and got_array.size > 9:
        worst = float(np.max(np.abs(got_array - expected_array)))
        raise AssertionError(f"{what}: differs from the expected {shown(got_array)} by up to {worst:.3g}. {hint}")
    raise AssertionError(f"{what}: got {shown(got_array)}, expected {shown(expected_array)}. Likely mistake: {hint}")


if __name__ == "__main__":
    try:
        from nst.cli import main, without_slow_optional_imports

        without_slow_optional_imports()  # this process only: the command's, not a notebook's or a test's
        exit_code = main()
    except ModuleNotFoundError as missing:  # a Python without the project's packages (not the .venv's)
        from nst.errors import missing_package

        exit_code = missing_package(missing, sys.executable)  # sys.exit prints it on stderr, exit code 1
    sys.exit(exit_code)
