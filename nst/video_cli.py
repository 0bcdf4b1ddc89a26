"""`python nst_utils.py video`: notebook 02 executed headless on a clip. No TensorFlow in this process.

The settings, the weights file, the style image, the clip and the memory are checked here before a kernel starts, so
a refused run makes no folder; then, with weights=None and no file in pretrained-model/, Keras's is fetched here.
The kernel writes frames/, metrics.csv, params.json, out.mp4 and preview.gif into the run folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nst.cli_options import add_run_options
from nst.errors import NSTError, one_line
from nst.paths import OUTPUT_DIR

_SET_BY_THE_COMMAND = ("input_path", "style_path", "output_root", "run_dir", "resume", "live_view")


class Interrupted(NSTError):
    """Ctrl-C during a video run: every finished frame is kept, and --resume continues after the last one."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The video command's options."""
    from nst.video_settings import SAMPLE_CLIP_PATH

    parser.add_argument(
        "--input",
        type=Path,
        default=SAMPLE_CLIP_PATH,
        help="a video file, a folder of frames named in order, or one still image",
    )
    add_run_options(parser, "notebook 02", "-p gamma 0 -p max_frames 12")
    parser.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue that run after its last finished frame"
    )


def video_command(args: argparse.Namespace) -> int:
    """Stylise a clip frame by frame; say where the video and the frames are."""
    from nst.video_settings import parse_video_setting

    parameters = {name: parse_video_setting(name, value) for name, value in args.parameter}
    run_dir = stylise_video(args.input, args.style, parameters, args.output_root, args.resume)
    print(f"Done. Video: {run_dir / 'out.mp4'} (preview: {run_dir / 'preview.gif'})")
    print(f"      Frames in {run_dir / 'frames'}; metrics.csv (one row per frame) and notebook.ipynb beside them.")
    return 0


def stylise_video(input_path, style_path, parameters: dict, output_root=OUTPUT_DIR, resume_dir=None) -> Path:
    """Check everything, then run notebook 02 headless into a new run folder (or `resume_dir`); returns it."""
    from nst.headless import Interrupted as KernelInterrupted
    from nst.headless import check_runner_installed, execute_notebook
    from nst.images import load_style_image, style_size_for
    from nst.memory import available_memory_bytes, check_memory, estimate_memory_bytes
    from nst.run_folder import check_writable_dir, make_run_dir
    from nst.video_io import check_clip_memory, probe_clip
    from nst.video_settings import VIDEO_NOTEBOOK_PATH, VideoSettings
    from nst.weights import check_weights, weights_for_kernel

    taken = sorted(set(parameters) & set(_SET_BY_THE_COMMAND))
    if taken:
        raise NSTError(f"{', '.join(taken)}: set by the command itself; use --input, --style, --output-root, --resume")
    input_path, style_path = (Path(p).expanduser().absolute() for p in (input_path, style_path))
    output_root = Path(output_root).expanduser().absolute()  # the kernel runs in notebooks/: no relative paths
    settings = VideoSettings(input_path=str(input_path), style_path=str(style_path), **parameters)
    checked_weights = check_weights(settings.weights)  # a file that is no weights file: one line, and no folder
    load_style_image(style_path, settings.max_side_px)  # one line now, not after a kernel has started
    first_params = None
    if resume_dir is not None:
        resume_dir, first_params = _resumable(Path(resume_dir).expanduser().absolute(), settings)
    clip = probe_clip(input_path, settings.max_side_px, settings.max_frames)  # every frame decoded once
    memory = dict(
        height_px=clip.size_px[0],
        width_px=clip.size_px[1],
        deepest_layer=settings.deepest_layer,
        optimizer="lbfgs",  # each frame is L-BFGS's
        style_sizes_px=[style_size_for(style_path, settings.max_side_px)],
    )
    check_memory(**memory)
    check_clip_memory(clip, estimate_memory_bytes(**memory), available_memory_bytes())
    if resume_dir is None:
        check_writable_dir(output_root)  # the last check: a run refused never waits for the network
    check_runner_installed()
    if first_params is not None and settings.weights is None:  # the frames so far were made with these weights
        weights = _weights_of(first_params, resume_dir)
    else:
        weights = weights_for_kernel(checked_weights)  # a checked file, or "random"; fetched here on first use
    run_dir = resume_dir or make_run_dir(output_root, label=f"{input_path.stem}+{style_path.stem}")
    # Every setting, not only those given: the kernel runs exactly the settings checked here (and that --resume
    # compares), whatever defaults its parameters cell takes from the environment.
    papermill_parameters = settings.asdict()
    papermill_parameters.update(
        input_path=str(input_path),
        style_path=str(style_path),
        run_dir=str(run_dir),
        resume=resume_dir is not None,
        live_view=False,
        weights=weights,  # the kernel reads what was checked (and fetched) here, and never fetches
    )
    verb = "Resuming" if resume_dir is not None else "Stylising"
    frames = f"{clip.n_frames} frame{'s' if clip.n_frames != 1 else ''}"
    print(f"{verb} {input_path.name} ({frames}) with {style_path.name}; writing to {run_dir}", flush=True)
    try:
        execute_notebook(VIDEO_NOTEBOOK_PATH, run_dir, papermill_parameters, memory)
    except KernelInterrupted:
        raise Interrupted(_interrupted_line(run_dir, input_path, style_path, parameters)) from None
    return run_dir


def _resumable(run_dir: Path, settings) -> tuple[Path, dict]:
    """(`run_dir`, its params.json) if it is a video run started with these settings; NSTError saying what it is
    otherwise."""
    from nst.batch_plan import BATCH_JSON_NAME
    from nst.video_io import check_same_settings

    fix = "pass the folder of the interrupted video run (its line said --resume RUN_DIR), or start anew without it"
    if not run_dir.is_dir():
        raise NSTError(f"--resume {run_dir}: {'not a folder' if run_dir.exists() else 'no such folder'}; {fix}")
    if (run_dir / BATCH_JSON_NAME).is_file():
        raise NSTError(f"--resume {run_dir}: that is a batch folder of `stylise`, not a video run; {fix}")
    params_path = run_dir / "params.json"
    if not params_path.is_file():
        raise NSTError(f"--resume {run_dir}: no params.json there, so no video run to continue; {fix}")
    try:
        first = json.loads(params_path.read_text())
    except (OSError, ValueError) as err:
        raise NSTError(f"--resume {run_dir}: its params.json is unreadable ({one_line(err)}); {fix}") from None
    if not isinstance(first, dict) or "input_path" not in first:
        what = "an image run of `stylise`" if isinstance(first, dict) and "content_path" in first else "another kind"
        raise NSTError(f"--resume {run_dir}: that folder is {what}, not a video run; {fix}")
    now = {**settings.asdict(), "weights": first.get("weights")}  # the kernel records the weights it found
    check_same_settings(first, now, run_dir)
    return run_dir, first


def _weights_of(first_params: dict, run_dir: Path) -> str:
    """The weights a resumed video run goes on with: those its first frames were made with ("random", or their
    file), so that every frame of a clip has the same network, whatever was fetched or moved in between."""
    from nst.weights import check_weights_file

    recorded = str(first_params.get("weights") or "")
    if recorded.startswith("random-feature"):
        return "random"
    _, sep, path = recorded.partition(": ")  # "Keras h5: /path/file.h5", "MatConvNet .mat (… release): /path"
    if sep and Path(path).is_file():
        return str(check_weights_file(path))
    raise NSTError(
        f"--resume {run_dir}: its frames were made with the weights {recorded or '(not recorded)'}, which are not "
        "there now; put that file back, pass -p weights with it, or start anew without --resume"
    )


def _interrupted_line(run_dir: Path, input_path: Path, style_path: Path, parameters: dict) -> str:
    from nst.video_io import VideoRunFolder

    finished = VideoRunFolder(run_dir).finished_frames()
    options = "".join(f" -p {name} {value!r}" for name, value in parameters.items())
    return (
        f"interrupted: {finished} finished frames kept in {run_dir / 'frames'}; continue with: python nst_utils.py "
        f"video --input {input_path} --style {style_path}{options} --resume {run_dir}"
    )
