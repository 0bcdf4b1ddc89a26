"""`python nst_utils.py video`: notebook 02 headless on a clip, bad inputs in one line, Ctrl-C, then --resume."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nst.images import save_image
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
    ],
    ids=["not-a-video", "missing"],
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
