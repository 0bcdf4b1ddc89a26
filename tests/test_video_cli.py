"""`python nst_utils.py video`: notebook 02 headless on a clip, bad inputs in one line, Ctrl-C, then --resume."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_cli_failures import make_earlier_run, snapshot, the_one_error_line

from nst.images import load_image, resize_image, save_image
from nst.paths import SAMPLE_CONTENT_PATH, SAMPLE_STYLE_PATH
from nst.settings import Settings
from nst.video_io import probe_clip
from nst.video_synthetic import moving_square_frames

PROJECT_DIR = Path(__file__).resolve().parents[1]
# Tiny frames and few iterations: every CI run stays small.
TINY = ["-p", "max_side_px", "48", "-p", "first_iterations", "2", "-p", "later_iterations", "1"]
TINY += ["-p", "compare_frames", "0"]


def video_cli(*args, timeout_s=600):
    command = [sys.executable, str(PROJECT_DIR / "nst_utils.py"), "video", *args]
    return subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture
def frames_folder(tmp_path):
    folder = tmp_path / "frames_in"
    for index, frame in enumerate(moving_square_frames(6, 48, 64, 16, 2)):
        save_image(folder / f"frame_{index:03d}.png", frame)
    return folder


def metrics_frames(run_dir: Path) -> list[int]:
    return [int(row["frame"]) for row in csv.DictReader((run_dir / "metrics.csv").open())]


def metrics_rows(run_dir: Path) -> list[dict]:
    return list(csv.DictReader((run_dir / "metrics.csv").open()))


def encode_mp4(path: Path, frames, fps: int = 8, audio: bool = False, faststart: bool = False) -> Path:
    """Frames ((H, W, 3) in [0, 1]) as an H.264 .mp4 (optionally with a sine-wave sound track), as a camera saves it."""
    import imageio_ffmpeg

    folder = path.with_name(path.stem + "-frames")
    for index, frame in enumerate(frames):
        save_image(folder / f"{index:03d}.png", frame)
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-framerate", str(fps)]
    command += ["-i", str(folder / "%03d.png")]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=duration={len(frames) / fps}", "-c:a", "aac", "-shortest"]
    command += ["-c:v", "libx264", "-pix_fmt", "yuv420p", *(["-movflags", "+faststart"] if faststart else [])]
    subprocess.run([*command, str(path)], check=True, timeout=120)
    return path


def camera_views(n_frames: int, height_px: int, width_px: int, step_px: int = 6) -> list[np.ndarray]:
    """The sample photo filmed by a camera panning `step_px` (of the photo's 400 px) right per frame."""
    photo = load_image(SAMPLE_CONTENT_PATH, max_side_px=400)
    crop_h, crop_w = photo.shape[0] - 40, photo.shape[1] - 80
    return [
        resize_image(photo[20 : 20 + crop_h, 20 + step_px * i : 20 + step_px * i + crop_w], height_px, width_px)
        for i in range(n_frames)
    ]


def other_shot(height_px: int, width_px: int) -> np.ndarray:
    """A frame of another shot, after a cut: the sample painting."""
    return resize_image(load_image(SAMPLE_STYLE_PATH, max_side_px=max(height_px, width_px)), height_px, width_px)


@pytest.mark.slow
def test_three_tiny_frames_end_to_end(tmp_path):
    done = video_cli(*TINY, "-p", "max_frames", "3", "--output-root", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = (tmp_path / "out").iterdir()
    names = {p.name for p in run_dir.iterdir()}
    assert {"frames", "out.mp4", "preview.gif", "metrics.csv", "params.json", "notebook.ipynb"} <= names
    assert sorted(p.name for p in (run_dir / "frames").iterdir()) == [f"frame_000{i}.png" for i in range(3)]
    assert metrics_frames(run_dir) == [0, 1, 2]
    assert json.loads((run_dir / "params.json").read_text())["max_frames"] == 3
    assert "frames: 100%" in done.stdout, "the progress bar over frames"
    assert f"Video: {run_dir / 'out.mp4'}" in done.stdout


@pytest.mark.slow
def test_ctrl_c_keeps_finished_frames_and_resume_finishes_the_clip(tmp_path, frames_folder):
    slow = [*TINY, "-p", "later_iterations", "60"]  # later frames take a few seconds each: time to interrupt
    command = [sys.executable, str(PROJECT_DIR / "nst_utils.py"), "video", "--input", str(frames_folder), *slow]
    command += ["--output-root", str(tmp_path / "out")]
    process = subprocess.Popen(command, cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and not list((tmp_path / "out").glob("*/frames/frame_0001.png")):
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr[-2000:]
    (run_dir,) = (tmp_path / "out").iterdir()
    kept = metrics_frames(run_dir)
    assert 2 <= len(kept) < 6 and kept == list(range(len(kept)))
    assert "--resume" in stderr.strip().splitlines()[-1]

    first_frame = (run_dir / "frames" / "frame_0000.png").read_bytes()
    done = video_cli("--input", str(frames_folder), *slow, "--resume", str(run_dir))
    assert done.returncode == 0, done.stderr[-2000:]
    assert metrics_frames(run_dir) == list(range(6))
    assert (run_dir / "frames" / "frame_0000.png").read_bytes() == first_frame, "finished frames are kept as they were"
    assert (run_dir / "out.mp4").exists()

    changed = video_cli("--input", str(frames_folder), *slow, "-p", "gamma", "5", "--resume", str(run_dir))
    assert changed.returncode == 1 and "gamma was" in changed.stderr


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_text("hello"), "is not a video"),
        (lambda p: None, "no such video file"),
        (lambda p: p.symlink_to(p.with_name("moved-away.mp4")), "moved-away.mp4, which does not exist; fix or remove"),
        (os.mkfifo, "is not a regular file (a device, pipe or socket)"),
    ],
    ids=["not-a-video", "missing", "a dangling link", "a FIFO"],
)
def test_bad_input_is_one_line_and_no_folder(tmp_path, make, expected):
    clip = tmp_path / "clip.mp4"
    make(clip)
    done = video_cli("--input", str(clip), "--output-root", str(tmp_path / "out"))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and expected in done.stderr and str(clip) in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_an_empty_frames_folder_is_one_line(tmp_path):
    done = video_cli("--input", str(tmp_path), "--output-root", str(tmp_path / "out"))
    assert done.returncode == 1 and "zero frames" in done.stderr and done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("gamma", "-1", "gamma=-1.0"),
        ("gama", "1", "unknown parameter gama"),
        ("max_frames", "0", "max_frames=0"),
        ("style_masks", "images/raccoon_leaves_mask.png", "style_masks: masks are for still images"),
    ],
)
def test_a_bad_setting_is_one_line_before_any_kernel(tmp_path, name, value, expected):
    done = video_cli("-p", name, value, "--output-root", str(tmp_path / "out"))
    assert done.returncode == 1 and expected in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "out").exists()


def test_the_cli_process_never_imports_tensorflow(tmp_path):
    probe = (
        "import sys; from nst.cli import main; code = main(['video', '-p', 'gamma', '-1']); "
        "assert 'tensorflow' not in sys.modules, 'TensorFlow imported'; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_DIR, capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


# ---------------------------------------------------------------------------- ordinary clips stylise


@pytest.mark.slow
def test_real_footage_a_still_title_camera_motion_a_cut_and_sound_at_1280x720(tmp_path):
    # A clip as a phone or an editor makes one: 16:9 at 1280×720 with sound, opening on a still title (identical
    # frames), then the camera pans, then a cut to another shot. Notebook 02's checks must pass on it.
    title = camera_views(1, 720, 1280)[0]
    frames = [title] * 3 + camera_views(4, 720, 1280) + [other_shot(720, 1280)] * 2
    clip = encode_mp4(tmp_path / "holiday.mp4", frames, audio=True)
    output_root = tmp_path / "out"
    make_earlier_run(output_root)
    before = snapshot(output_root)
    done = video_cli("--input", str(clip), *TINY, "-p", "max_side_px", "64", "--output-root", str(output_root))
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Stylising holiday.mp4 ({len(frames)} frames)" in done.stdout
    assert "note:" not in done.stdout, "nothing was done that was not asked for"
    (run_dir,) = (p for p in output_root.iterdir() if p.name != "20240101-000000-earlier+run")
    assert {path: state for path, state in snapshot(output_root).items() if path in before} == before
    rows = metrics_rows(run_dir)
    assert [int(row["frame"]) for row in rows] == list(range(len(frames)))
    cut = int(rows[7]["iterations"]), float(rows[7]["trusted_fraction"])
    assert cut[0] == 2 and cut[1] < 0.4, f"the cut starts a new shot from noise (first_iterations): {cut}"
    assert all(int(row["iterations"]) <= 1 for row in rows[1:7] + rows[8:]), "the others start from the last frame"
    made = probe_clip(run_dir / "out.mp4", max_side_px=64)
    assert (made.n_frames, made.size_px, made.has_audio, made.fps) == (len(frames), (36, 64), True, 8.0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["a one-frame mp4", "a still image"])
def test_one_frame_is_a_fair_clip(tmp_path, kind):
    frame = camera_views(1, 48, 64)[0]
    if kind == "a still image":
        clip = save_image(tmp_path / "photo.png", frame)
    else:
        clip = encode_mp4(tmp_path / "photo.mp4", [frame])
    done = video_cli("--input", str(clip), *TINY, "--output-root", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Stylising {clip.name} (1 frame)" in done.stdout
    said = done.stdout.count("note: photo.png is a still image: it is stylised as a one-frame clip")
    assert said == (1 if kind == "a still image" else 0), done.stdout
    (run_dir,) = (tmp_path / "out").iterdir()
    assert metrics_frames(run_dir) == [0] and [p.name for p in (run_dir / "frames").iterdir()] == ["frame_0000.png"]
    assert probe_clip(run_dir / "out.mp4", max_side_px=48).n_frames == 1 and (run_dir / "preview.gif").is_file()


@pytest.mark.slow
def test_a_folder_of_frames_of_different_shapes_is_resized_to_the_first_and_said_once(tmp_path):
    folder = tmp_path / "frames_in"
    for index, frame in enumerate(camera_views(5, 48, 64)):
        portrait = np.ascontiguousarray(frame.transpose(1, 0, 2))  # one 48×64 portrait frame among 64×48 ones
        save_image(folder / f"frame_{index:03d}.png", portrait if index == 2 else frame)
    done = video_cli("--input", str(folder), *TINY, "--output-root", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-3000:]
    note = "note: frame_002.png (48×64 px) has another shape than the first frame (frame_000.png, 64×48 px): "
    assert done.stdout.count(note) == 1, done.stdout
    (run_dir,) = (tmp_path / "out").iterdir()
    assert metrics_frames(run_dir) == list(range(5))
    assert load_image(run_dir / "frames" / "frame_0002.png", max_side_px=None).shape == (36, 48, 3)


@pytest.fixture(scope="module")
def whole_download(tmp_path_factory) -> bytes:
    """The bytes of a 24-frame .mp4 whose index comes first (+faststart), as the web serves them."""
    path = tmp_path_factory.mktemp("download") / "whole.mp4"
    return encode_mp4(path, camera_views(24, 48, 64), faststart=True).read_bytes()


@pytest.mark.slow
def test_a_half_downloaded_mp4_stylises_the_frames_it_holds_and_says_so(tmp_path, whole_download):
    clip = tmp_path / "download.mp4"
    clip.write_bytes(whole_download[: len(whole_download) * 8 // 10])  # the last fifth never arrived
    done = video_cli("--input", str(clip), *TINY, "--output-root", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-3000:]
    n_frames = int(done.stdout.split("Stylising download.mp4 (")[1].split()[0])
    assert 1 <= n_frames < 24, done.stdout
    assert done.stdout.count("note: download.mp4 may be cut short or damaged (ffmpeg: ") == 1, done.stdout
    assert f"{n_frames} frames decode of the 24 its header promises, and only those are stylised" in done.stdout
    (run_dir,) = (tmp_path / "out").iterdir()
    assert metrics_frames(run_dir) == list(range(n_frames))


def test_a_download_cut_off_inside_its_first_frame_is_one_line_before_any_kernel(tmp_path, whole_download):
    clip = tmp_path / "download.mp4"
    clip.write_bytes(whole_download[: len(whole_download) // 2])  # the index, and half of the first frame
    output_root = tmp_path / "out"
    make_earlier_run(output_root)
    before = snapshot(output_root)
    done = video_cli("--input", str(clip), *TINY, "--output-root", str(output_root))
    line = assert_refused_before_any_kernel(done, output_root, before)
    assert line.startswith(f"error: {clip} has zero frames that can be decoded (ffmpeg: "), line
    fix = "it is cut short or damaged; download or export it again, or pass a clip with at least one frame"
    assert line.endswith(fix), line


# ---------------------------------------------------------------------------- refused before any kernel starts


def assert_refused_before_any_kernel(done, output_root: Path, before: dict) -> str:
    """Exit status 1, one line on stderr, no run folder made and nothing changed in `output_root`; the line."""
    assert done.returncode == 1, done.stderr[-3000:]
    line = the_one_error_line(done.stderr)
    assert snapshot(output_root) == before, "a refused run made, changed or removed a file"
    return line


def test_a_frame_that_does_not_decode_is_one_line_naming_it_before_any_kernel(tmp_path):
    folder = tmp_path / "frames_in"
    for index, frame in enumerate(camera_views(4, 48, 64)):
        save_image(folder / f"frame_{index:03d}.png", frame)
    broken = folder / "frame_002.png"
    broken.write_bytes(broken.read_bytes()[:200])  # cut off mid-file, as a copy that failed
    output_root = tmp_path / "out"
    make_earlier_run(output_root)
    before = snapshot(output_root)
    done = video_cli("--input", str(folder), *TINY, "--output-root", str(output_root))
    line = assert_refused_before_any_kernel(done, output_root, before)
    assert str(broken) in line and "truncated or corrupt" in line and "move it out of the folder" in line, line


def test_a_clip_whose_frames_vgg_could_not_see_is_one_line_with_a_size_that_works(tmp_path):
    clip = encode_mp4(tmp_path / "wide.mp4", camera_views(2, 720, 1280))  # 16:9: 48×27 px at max_side_px 48
    output_root = tmp_path / "out"
    make_earlier_run(output_root)
    before = snapshot(output_root)
    done = video_cli("--input", str(clip), *TINY, "--output-root", str(output_root))
    line = assert_refused_before_any_kernel(done, output_root, before)
    assert line == (
        f"error: {clip} is 1280x720 px, 48x27 px at max_side_px=48, but VGG-19 needs a shorter side of at least "
        "32 px; use max_side_px=56 or more"
    )


def _image_run(run_dir: Path) -> None:
    """A finished run folder of `stylise`: its params.json and final.png."""
    run_dir.mkdir()
    (run_dir / "params.json").write_text(json.dumps(Settings().asdict()))
    save_image(run_dir / "final.png", np.full((36, 48, 3), 0.5, np.float32))


def _folder_with(name: str, text: str):
    def make(run_dir: Path) -> None:
        run_dir.mkdir()
        (run_dir / name).write_text(text)

    return make


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_image_run, "that folder is an image run of `stylise`, not a video run"),
        (_folder_with("batch.json", "{}"), "that is a batch folder of `stylise`, not a video run"),
        (_folder_with("params.json", '{"input_path": '), "its params.json is unreadable (Expecting value"),
        (_folder_with("notes.txt", "x"), "no params.json there, so no video run to continue"),
        (lambda run_dir: run_dir.write_text("a user's file\n"), "not a folder"),
        (lambda run_dir: None, "no such folder"),
    ],
    ids=["an image run", "a batch folder", "a torn params.json", "another folder", "a file", "nothing"],
)
def test_resume_at_a_folder_that_is_no_video_run_says_what_it_is(tmp_path, make, says):
    output_root = tmp_path / "out"
    make_earlier_run(output_root)
    run_dir = output_root / "20240101-000000-photo+style"
    make(run_dir)
    before = snapshot(output_root)
    done = video_cli(*TINY, "--resume", str(run_dir), "--output-root", str(output_root))
    line = assert_refused_before_any_kernel(done, output_root, before)
    assert line.startswith(f"error: --resume {run_dir}: {says}"), line
    fix = "pass the folder of the interrupted video run (its line said --resume RUN_DIR), or start anew without it"
    assert line.endswith(fix), line


# ---------------------------------------------------------------------------- --resume keeps the clip's weights


def test_resume_goes_on_with_the_weights_the_first_frames_were_made_with(tmp_path, files):
    from nst.errors import NSTError
    from nst.video_cli import _weights_of

    random_run = {"weights": "random-feature VGG-19 (He-normal, seed 0) — not pretrained"}
    assert _weights_of(random_run, tmp_path) == "random"  # not whatever file was fetched since
    file_run = {"weights": f"Keras h5: {files['h5']}"}
    assert _weights_of(file_run, tmp_path) == str(Path(files["h5"]).absolute())
    moved = {"weights": f"Keras h5: {tmp_path / 'gone.h5'}"}
    with pytest.raises(NSTError, match=r"gone\.h5, which are not there now; put that file back"):
        _weights_of(moved, tmp_path)
