"""`python nst_utils.py stylise`, end to end, for each way it can fail: what the user sees and what is left on disk.

Every failure is exit status 1 (130 for Ctrl-C, tested in test_cli.py) and exactly one line on stderr: no
TensorFlow, absl or oneDNN line, no kernel warning, no traceback. The commands run with TensorFlow's logging fully
on and oneDNN forced on, so the one line must hold where TensorFlow is loudest. Each test makes an earlier run
folder (or a user's file) first and checks afterwards that not a byte or an mtime of it changed. Refusals come
before any kernel starts and make no folder at all; three slow runs fail while a kernel is running: a diverging
learning rate, a killed kernel and a full disk.
"""

import contextlib
import csv
import errno
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image, ImageSequence

from nst import headless
from nst.images import load_image, load_style_image, save_image
from nst.initial import initial_image
from nst.paths import PROJECT_DIR, SAMPLE_CONTENT_PATH, SAMPLE_STYLE_PATH
from nst.run_folder import CHECKPOINT_EVERY_S, CHECKPOINT_NAME, METRICS_FIELDS
from nst.settings import Settings

SIZE_PX = 48  # the long side of every run here; the sample photo is then 48×36
IMAGE_SHAPE = (36, 48, 3)
SMALL = ("-p", "max_side_px", str(SIZE_PX), "-p", "iterations", "3", "-p", "save_every", "1")
EARLIER_RUN = "20240101-000000-earlier+run"  # a run folder from before the test, which nothing may touch
PARTIAL_NOTEBOOK = ".notebook.ipynb.partial"  # papermill's notebook while it runs (nst.headless)
REFUSAL_TIMEOUT_S = 120  # a refusal takes under a second; a hang (e.g. a FIFO opened for reading) fails instead
ROWS_TIMEOUT_S = 300  # a kernel's start and the notebook's checks before the run writes metrics rows
END_TIMEOUT_S = 180  # from the failure to the command's exit


# ---------------------------------------------------------------------------- helpers


def loud_environment(default_output_dir: Path) -> dict:
    """The user's environment with TensorFlow as loud as it gets; the notebook's default output root set aside."""
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"  # every TensorFlow and absl log line (CI's conftest sets 2)
    env["TF_ENABLE_ONEDNN_OPTS"] = "1"  # oneDNN on, so its import-time lines print wherever it exists
    env["NST_OUTPUT_DIR"] = str(default_output_dir)  # where the notebook would write by default: must stay empty
    return env


def nst_cli(*args: str, env: dict, timeout_s: float = REFUSAL_TIMEOUT_S) -> subprocess.CompletedProcess:
    """`python nst_utils.py ARGS` as a user runs it, from the project folder; returns the finished process."""
    command = [sys.executable, str(PROJECT_DIR / "nst_utils.py"), *args]
    return subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=timeout_s)


def the_one_error_line(stderr: str) -> str:
    """stderr's single line, `error: …`, without its newline; fails if there is anything else on stderr."""
    assert stderr.count("\n") == 1 and stderr.endswith("\n"), f"stderr is not one line:\n{stderr[-3000:]}"
    assert stderr.startswith("error: "), stderr
    return stderr[:-1]


def snapshot(*roots: Path) -> dict:
    """Every entry under `roots`, links not followed: its kind, and a file's bytes and mtime or a link's target."""
    state = {}
    for root in roots:
        for folder, names, files in os.walk(root):
            for name in [*names, *files]:
                path = Path(folder, name)
                info = path.lstat()
                if stat.S_ISREG(info.st_mode):
                    state[path] = ("file", path.read_bytes(), info.st_mtime_ns)
                elif stat.S_ISLNK(info.st_mode):
                    state[path] = ("link", os.readlink(path), info.st_mtime_ns)
                else:  # a folder's mtime changes with its entries, which the listing itself compares
                    state[path] = (stat.S_IFMT(info.st_mode),)
    return state


def make_earlier_run(output_root: Path) -> Path:
    """A finished run folder from before the test: final.png, metrics.csv and params.json."""
    run_dir = output_root / EARLIER_RUN
    save_image(run_dir / "final.png", np.full(IMAGE_SHAPE, 0.25, np.float32))
    (run_dir / "metrics.csv").write_text(",".join(METRICS_FIELDS) + "\n1,3.0,1.0,0.5,10.0,40.0,0.1,36,48\n")
    (run_dir / "params.json").write_text('{"iterations": 1}\n')
    return run_dir


def new_run_folder(output_root: Path) -> Path:
    """The one run folder the command made beside the earlier run."""
    made = sorted(p.name for p in output_root.iterdir() if p.name not in (EARLIER_RUN, "filler"))
    assert len(made) == 1, f"expected one new run folder, found {made}"
    return output_root / made[0]


def why_incomplete(path: Path) -> str:
    """'' if the file is whole (an image decodes, JSON parses, every CSV row is complete); else what is wrong."""
    if path.stat().st_size == 0:
        return "empty"
    try:
        if path.suffix == ".png":
            load_image(path, max_side_px=None)
        elif path.suffix == ".gif":
            with Image.open(path) as animation:
                for frame in ImageSequence.Iterator(animation):
                    frame.load()
        elif path.suffix in (".json", ".ipynb"):
            json.loads(path.read_bytes())
        elif path.suffix == ".csv":
            text = path.read_text()
            assert text.endswith("\n"), "the last row is cut off"
            header, *rows = csv.reader(text.splitlines())
            assert tuple(header) == METRICS_FIELDS, f"header {header}"
            assert all(len(row) == len(header) and all(row) for row in rows), "a row is cut off"
        elif path.name != "kernel.log":  # a log is whole whatever its last line; anything else should not be there
            return "unexpected file (a temporary file left behind?)"
    except Exception as err:  # any failure to read it back is what this check reports
        return f"{type(err).__name__}: {err}"
    return ""


def incomplete_files(run_dir: Path, *, skip=lambda path: False) -> list[str]:
    """The files under `run_dir`, hidden ones included, that are not whole, each with why; [] if all are."""
    files = sorted(p for p in run_dir.rglob("*") if p.is_file() and not skip(p))
    return [f"{p.relative_to(run_dir)}: {why}" for p in files if (why := why_incomplete(p))]


def kernels_of(process: subprocess.Popen) -> list[psutil.Process]:
    """The Jupyter kernels among the descendants of `process` (only this command's: never another on the machine)."""
    found = []
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(process.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if any("ipykernel_launcher" in part for part in child.cmdline()):
                    found.append(child)
    return found


class BackgroundRun:
    """`stylise ARGS` started in the background, its stdout and stderr in files beside (not inside) its output."""

    def __init__(self, args, env: dict, logs_dir: Path):
        self.out_path, self.err_path = logs_dir / "stdout.txt", logs_dir / "stderr.txt"
        command = [sys.executable, str(PROJECT_DIR / "nst_utils.py"), "stylise", *args]
        with self.out_path.open("w") as out, self.err_path.open("w") as err:
            self.process = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=out, stderr=err)
        self.kernels: list[psutil.Process] = []  # this run's kernels, as seen while it ran

    def wait_for_rows(self, output_root: Path, rows: int) -> Path:
        """Wait until the run's metrics.csv has `rows` rows (Adam's three trial steps are its first three, written
        when the run starts)."""
        deadline = time.monotonic() + ROWS_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            self.kernels = self.kernels or kernels_of(self.process)
            for metrics in output_root.glob("*/metrics.csv"):
                if metrics.parent.name != EARLIER_RUN and metrics.read_text().count("\n") > rows:
                    return metrics.parent
            time.sleep(0.2)
        pytest.fail(f"no {rows} metrics rows within {ROWS_TIMEOUT_S} s; the command said: {self.output()}")

    def wait(self) -> int:
        """Wait for the command's exit; returns its status."""
        try:
            return self.process.wait(timeout=END_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the command did not end within {END_TIMEOUT_S} s of the failure: {self.output()}")

    def output(self) -> str:
        return self.out_path.read_text()[-2000:] + "\n--- stderr:\n" + self.err_path.read_text()[-2000:]

    def assert_no_kernel_left(self) -> None:
        """The command ended its kernel: none of the kernels it started is still running."""
        assert self.kernels, "the command's kernel was never seen among its children"
        _, alive = psutil.wait_procs(self.kernels, timeout=30)
        alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"kernels left running after the command ended: {[p.pid for p in alive]}"

    def end(self) -> None:
        """Kill whatever of this run (the command and its own kernels) still runs; for `finally`."""
        for process in [*self.kernels, *kernels_of(self.process)]:
            with contextlib.suppress(psutil.Error):
                process.kill()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def output_root(tmp_path) -> Path:
    """An output root that already holds an earlier run folder."""
    root = tmp_path / "output"
    make_earlier_run(root)
    return root


@pytest.fixture
def env(tmp_path) -> dict:
    default_output = tmp_path / "default-output"
    default_output.mkdir()
    return loud_environment(default_output)


def assert_refused(done, env: dict, before: dict, roots) -> str:
    """Exit status 1, one line on stderr, nothing made or changed under `roots`; returns the line."""
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    line = the_one_error_line(done.stderr)
    assert snapshot(*roots) == before, "a refused run made, changed or removed a file"
    assert not any(Path(env["NST_OUTPUT_DIR"]).iterdir()), "something was written to the default output root"
    return line


# ---------------------------------------------------------------------------- 1. a bad value, before any kernel
# max_side_px 0 and abc, iterations abc and 1e9, alpha -1 and unknown names are in test_cli.py.


@pytest.mark.parametrize(
    ("name", "value", "fix"),
    [
        ("learning_rate", "abc", "expected a number, e.g. 0.01"),
        ("learning_rate", "0", "must be a positive number (0.01 is the course's)"),
        ("style_images", "[('a.jpg',", "e.g. style_images=[('style_a.jpg', 0.7)"),
        ("style_images", "[('a.jpg', 'heavy')]", "e.g. style_images=[('style_a.jpg', 0.7)"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_parameter_and_makes_no_folder(output_root, env, name, value, fix):
    before = snapshot(output_root)
    done = nst_cli("stylise", *SMALL, "-p", name, value, "--output-root", str(output_root), env=env)
    line = assert_refused(done, env, before, [output_root])
    assert line.startswith(f"error: {name}") and fix in line, line


@pytest.mark.parametrize(("optimizer", "name"), [("adam", "Adam"), ("lbfgs", "L-BFGS")])
def test_a_size_too_large_for_memory_is_one_line_with_a_size_that_fits(output_root, env, optimizer, name):
    # 20000 px on the long side (the photo upscaled) needs hundreds of GB: refused before any kernel or decoding,
    # with the largest max_side_px whose estimate fits this machine now.
    before = snapshot(output_root)
    args = ["-p", "max_side_px", "20000", "-p", "optimizer", repr(optimizer), "--output-root", str(output_root)]
    line = assert_refused(nst_cli("stylise", *args, env=env), env, before, [output_root])
    assert line.startswith(f"error: 20000×15000 px through conv5_1 with {name} needs about "), line
    assert re.search(r"GB is available; use max_side_px=\d+ or less$", line), line


def test_a_style_too_large_for_memory_is_one_line_naming_its_size(output_root, env):
    # style_scale 100 makes the style 102400 px long: refused from the headers, before anything is decoded.
    before = snapshot(output_root)
    args = ["-p", "max_side_px", "1024", "-p", "style_scale", "100", "--output-root", str(output_root)]
    line = assert_refused(nst_cli("stylise", *args, env=env), env, before, [output_root])
    assert line.startswith("error: 1024×768 px (style 102400×76800 px) through conv5_1 with Adam needs about "), line
    assert line.endswith(", or a smaller style_scale"), line


# ---------------------------------------------------------------------------- 2. a bad path, before any kernel


def _symlink_loop(path: Path) -> None:
    path.symlink_to(path)


def _dangling_symlink(path: Path) -> None:
    path.symlink_to(path.with_name("moved-away.jpg"))


def _folder_without_images(path: Path) -> None:
    path.mkdir()
    (path / "notes.txt").write_text("not an image\n")


BAD_PATHS = {
    "a symlink loop": (_symlink_loop, "is a symbolic link loop", "pass the image file itself"),
    "a dangling symlink": (_dangling_symlink, "moved-away.jpg, which does not exist", "fix or remove the link"),
    "a FIFO": (os.mkfifo, "is not a regular file (a device, pipe or socket)", "pass a .jpg or .png file"),
}


@pytest.mark.parametrize("option", ["--content", "--style"])
@pytest.mark.parametrize("kind", [*BAD_PATHS, "a folder"])
def test_an_unusable_image_path_is_one_line_naming_it_and_the_fix(tmp_path, output_root, env, option, kind):
    make, what, fix = BAD_PATHS.get(kind, (_folder_without_images, None, None))
    if kind == "a folder" and option == "--content":  # a folder of photos is a batch: without any, one line
        what, fix = "no images in this folder", "pass another"
    elif kind == "a folder":
        what, fix = "is a folder, not an image file", "pass the path of a .jpg or .png file inside it"
    path = tmp_path / "photo.jpg"
    make(path)
    before = snapshot(tmp_path)
    done = nst_cli("stylise", *SMALL, option, str(path), "--output-root", str(output_root), env=env)
    line = assert_refused(done, env, before, [tmp_path])
    assert str(path) in line and what in line and fix in line, line


# ---------------------------------------------------------------------------- 2b. a bad mask, before any kernel


def _mask_16_by_9(path: Path) -> None:
    Image.new("L", (64, 36), 255).save(path, format="PNG")  # the sample photo is 4:3


BAD_MASKS = {
    "a missing file": (lambda path: None, "Mask file not found: {path}", "raccoon_leaves_mask.png"),
    "not an image": (
        lambda path: path.write_text("white is the leaves\n"),
        "{path} is not an image Pillow can read",
        "pass a JPEG or PNG file",
    ),
    "all black": (
        lambda path: Image.new("L", (64, 48), 0).save(path, format="PNG"),
        "{path} is all black",
        "paint white where the style should paint",
    ),
    "another aspect ratio": (
        _mask_16_by_9,
        "{path} is 64x36 px but the content image is 48x36 px as loaded",
        "width-to-height ratio is 33.3% larger; crop or pad",
    ),
    "a folder": (
        lambda path: path.mkdir(),
        "{path} is a folder, not an image file",
        "pass the path of a .jpg or .png file",
    ),
    "a dangling link": (_dangling_symlink, "moved-away.jpg, which does not exist", "fix or remove the link"),
    "a 1x1 image": (
        lambda path: Image.new("L", (1, 1), 255).save(path, format="PNG"),
        "{path} is only 1x1 px",
        "make the mask the size of the content image",
    ),
}


@pytest.mark.parametrize("kind", BAD_MASKS)
def test_a_bad_mask_is_one_line_naming_it_and_the_fix_and_makes_no_folder(tmp_path, output_root, env, kind):
    make, what, fix = BAD_MASKS[kind]
    path = tmp_path / "mask.png"
    make(path)
    before = snapshot(tmp_path)
    args = ["-p", "style_masks", str(path), "--output-root", str(output_root)]
    line = assert_refused(nst_cli("stylise", *SMALL, *args, env=env), env, before, [tmp_path])
    assert line.startswith("error: ") and what.format(path=path) in line and fix in line, line


@pytest.mark.parametrize(
    ("masks", "styles", "says"),
    [
        (2, [], "style_masks has 2 masks for 1 style image (style_path): give one mask per style image"),
        (1, ["-p", "style_images", repr([str(SAMPLE_STYLE_PATH)] * 2)], "style_masks has 1 mask for 2 style images"),
    ],
    ids=["more masks than styles", "fewer masks than styles"],
)
def test_more_or_fewer_masks_than_styles_is_one_line_and_makes_no_folder(
    tmp_path, output_root, env, masks, styles, says
):
    path = tmp_path / "mask.png"
    Image.new("L", (64, 48), 255).save(path)
    before = snapshot(tmp_path)
    args = ["-p", "style_masks", repr([str(path)] * masks), *styles, "--output-root", str(output_root)]
    line = assert_refused(nst_cli("stylise", *SMALL, *args, env=env), env, before, [tmp_path])
    assert line.startswith(f"error: {says}"), line


@pytest.mark.parametrize("where", ["the file", "a folder under the file"])
def test_an_output_root_that_is_a_file_is_one_line_naming_it_and_the_fix(tmp_path, env, where):
    user_file = tmp_path / "thesis.txt"
    user_file.write_text("a user's file, not a folder\n")
    root = user_file if where == "the file" else user_file / "runs"
    before = snapshot(tmp_path)
    done = nst_cli("stylise", *SMALL, "--output-root", str(root), env=env)
    line = assert_refused(done, env, before, [tmp_path])
    assert line == f"error: {root}: cannot be an output folder, {user_file} is a file; pass another output folder"


@pytest.mark.parametrize("where", ["the link", "a folder under the link"])
@pytest.mark.parametrize("target", ["a missing folder", "itself"])
def test_an_output_root_through_a_broken_symlink_is_one_line_naming_the_link(tmp_path, env, where, target):
    link = tmp_path / "runs-link"
    missing = tmp_path / "unmounted" / "runs"
    link.symlink_to(missing if target == "a missing folder" else link)
    root = link if where == "the link" else link / "today"
    before = snapshot(tmp_path)
    done = nst_cli("stylise", *SMALL, "--output-root", str(root), env=env)
    line = assert_refused(done, env, before, [tmp_path])
    if target == "itself":
        assert line == (
            f"error: {root}: cannot be an output folder, {link} is a symbolic link loop (it points back to itself); "
            "fix or remove the link"
        )
    else:
        assert line == (
            f"error: {root}: cannot be an output folder, {link} is a symbolic link to {missing}, which does not exist; "
            f"create {missing} (or mount its disk), or pass another output folder"
        )
    assert not missing.parent.exists(), "the link's target is not created behind the user's back"


# ---------------------------------------------------------------------------- 7. usage: --help, unknown commands
# --help of the command, stylise and download, and an unknown command, are in test_cli.py.


def test_the_video_command_s_help_is_on_stdout_only(env):
    done = nst_cli("video", "--help", env=env)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith("usage: python nst_utils.py video")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "the following arguments are required: command"),
        (("stylise", "--frobnicate", "--output-root", "ROOT"), "unrecognized arguments: --frobnicate"),
        (("stylise", "-p", "iterations", "--output-root", "ROOT"), "argument -p/--parameter: expected 2 arguments"),
    ],
)
def test_a_usage_mistake_is_one_line_pointing_at_help(tmp_path, output_root, env, args, says):
    before = snapshot(tmp_path)
    done = nst_cli(*(str(output_root) if arg == "ROOT" else arg for arg in args), env=env)
    line = assert_refused(done, env, before, [tmp_path])
    assert says in line and line.endswith("--help)"), line


# ---------------------------------------------------------------------------- 3. divergence (a kernel)


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    """One run at learning_rate 1e6: Adam's trial blows up at its second step."""
    tmp_path = tmp_path_factory.mktemp("diverged")
    root = tmp_path / "output"
    make_earlier_run(root)
    (tmp_path / "default-output").mkdir()
    env = loud_environment(tmp_path / "default-output")
    before = snapshot(tmp_path)
    args = ["stylise", *SMALL, "-p", "learning_rate", "1e6", "--output-root", str(root)]
    done = nst_cli(*args, env=env, timeout_s=ROWS_TIMEOUT_S + END_TIMEOUT_S)
    return done, root, before


@pytest.mark.slow
def test_a_diverging_run_is_one_line_naming_the_learning_rate_and_keeps_the_notebook(diverged):
    done, root, before = diverged
    assert done.returncode == 1, done.stderr[-3000:]
    line = the_one_error_line(done.stderr)
    assert "lower learning_rate" in line and "1e+06" in line, line
    run_dir = new_run_folder(root)
    assert f"(the notebook as far as it ran: {run_dir / 'notebook.ipynb'})" in line, line
    assert {"notebook.ipynb", "kernel.log", "trial"} <= {p.name for p in run_dir.iterdir()}
    assert json.loads((run_dir / "notebook.ipynb").read_text())["cells"], "the executed notebook is valid JSON"
    assert (run_dir / "kernel.log").stat().st_size > 0, "the kernel's own stderr went to kernel.log"
    assert load_image(run_dir / "trial" / "final.png", max_side_px=None).shape == IMAGE_SHAPE
    rows = list(csv.DictReader((run_dir / "trial" / "metrics.csv").open()))
    assert [row["iteration"] for row in rows] == ["1"], "the trial stops at the step whose cost blew up"
    assert incomplete_files(run_dir) == []
    assert {path: state for path, state in snapshot(root.parent).items() if path in before} == before
    assert not any((root.parent / "default-output").iterdir())


@pytest.mark.slow
def test_a_diverging_run_keeps_the_image_from_before_the_blow_up(diverged):
    _, root, _ = diverged
    final = load_image(new_run_folder(root) / "trial" / "final.png", max_side_px=None)
    content = load_image(SAMPLE_CONTENT_PATH, max_side_px=SIZE_PX)
    style = load_style_image(SAMPLE_STYLE_PATH, SIZE_PX)
    defaults = Settings()  # the notebook's
    start = initial_image(defaults.init, content, style, noise_ratio=defaults.noise_ratio, seed=defaults.seed)
    # The only good cost is the start's (iteration 1); iteration 2 reports the cost of the image after step 1.
    assert np.abs(final - start).max() <= 0.5 / 255 + 1e-6, "trial/final.png is not the image before the blow-up"


# ---------------------------------------------------------------------------- 4. a killed kernel


@pytest.mark.slow
def test_a_killed_kernel_is_one_line_naming_the_checkpoint_and_the_metrics(tmp_path, output_root, env):
    before = snapshot(tmp_path)
    # No snapshots (save_every beyond the kill): latest.png, the 10 s checkpoint, is then the newest image.
    args = ["-p", "max_side_px", str(SIZE_PX), "-p", "iterations", "100000", "-p", "save_every", "100000"]
    run = BackgroundRun([*args, "--output-root", str(output_root)], env, tmp_path)
    try:
        run_dir = run.wait_for_rows(output_root, rows=3 + 3)  # the trial's 3, then 3 of the run
        (kernel,) = run.kernels or kernels_of(run.process)  # this run's kernel, a child of this command only
        kernel.send_signal(signal.SIGKILL)
        assert run.wait() == 1, run.output()
    finally:
        run.end()
    line = the_one_error_line(run.err_path.read_text())
    latest, metrics = run_dir / CHECKPOINT_NAME, run_dir / "metrics.csv"
    assert line.startswith("error: the kernel died"), line
    assert str(latest) in line and str(metrics) in line, line
    assert load_image(latest, max_side_px=None).shape == IMAGE_SHAPE
    assert len(list(csv.DictReader(metrics.open()))) >= 3 + 3
    # A SIGKILL may leave the temporary file of an image being written (the image itself is whole or absent).
    assert incomplete_files(run_dir, skip=lambda p: p.name.startswith(".") and p.suffix == ".tmp") == []
    assert not (run_dir / PARTIAL_NOTEBOOK).exists(), "papermill's notebook is published or removed"
    assert new_run_folder(output_root) == run_dir
    after = snapshot(tmp_path)
    assert {path: state for path, state in after.items() if path in before} == before
    assert not any(Path(env["NST_OUTPUT_DIR"]).iterdir())
    run.assert_no_kernel_left()


def test_a_kernel_dead_for_lack_of_memory_is_one_line_with_a_size_that_fits(tmp_path):
    # The branch the SIGKILL above does not reach: the run needed more than half the memory that was free.
    memory = {"height_px": 2160, "width_px": 3840, "deepest_layer": "conv5_1", "optimizer": "lbfgs"}
    line = headless._dead_kernel_line(tmp_path, {**memory, "style_sizes_px": [(2160, 3840)]}, available_bytes=24e9)
    assert line.startswith("the kernel died, most likely killed for lack of memory (3840×2160 px needs about "), line
    assert "no image was saved yet" in line and "\n" not in line, line
    assert re.search(r"; use max_side_px=\d+ or less$", line), line
    small = headless._dead_kernel_line(tmp_path, {**memory, "height_px": 300, "width_px": 400}, available_bytes=24e9)
    assert "killed from outside or crashed" in small and "so not for lack of it" in small, small


# ---------------------------------------------------------------------------- 5. a full disk

TMPFS_SIZE = "4m"  # room for a run folder (the notebook is about 125 kB); the test fills the rest while it runs
_NO_PERMISSION = ("permission denied", "operation not permitted", "must be superuser", "only root")


def fill_up(folder: Path) -> None:
    """Write a filler file into `folder` until its file system is full."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as err:
        assert err.errno == errno.ENOSPC, err
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def disk_filled(tmp_path_factory):
    """A run whose output root, a small tmpfs, is filled up once the run has written a few metrics rows."""
    tmp_path = tmp_path_factory.mktemp("disk-full")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0 and any(words in mounted.stderr.lower() for words in _NO_PERMISSION):
        pytest.skip(f"mounting a tmpfs needs root (CAP_SYS_ADMIN): mount said {mounted.stderr.strip()!r}")
    assert mounted.returncode == 0, mounted.stderr
    try:
        make_earlier_run(disk)
        (tmp_path / "user-file.txt").write_text("a file outside the full disk\n")
        (tmp_path / "default-output").mkdir()
        env = loud_environment(tmp_path / "default-output")
        before = snapshot(tmp_path)
        args = ["-p", "max_side_px", str(SIZE_PX), "-p", "iterations", "100000", "-p", "save_every", "1"]
        run = BackgroundRun([*args, "--output-root", str(disk)], env, tmp_path)
        try:
            run_dir = run.wait_for_rows(disk, rows=3 + 3)  # the trial's 3, then 3 iterations with snapshots
            fill_up(disk)
            status = run.wait()
        finally:
            run.end()
        yield run, status, run_dir, before, tmp_path
    finally:
        for lazy in ([], ["--lazy"]):  # lazy only if something still holds it open
            if subprocess.run(["umount", *lazy, str(disk)], capture_output=True).returncode == 0:
                break


@pytest.mark.slow
def test_a_full_disk_is_one_line_naming_the_last_good_snapshot(disk_filled):
    run, status, run_dir, before, tmp_path = disk_filled
    assert status == 1, run.output()
    line = the_one_error_line(run.err_path.read_text())
    assert line.startswith(f"error: cannot write to {run_dir} (No space left on device)"), line
    assert line.endswith("; free some disk space and run again"), line
    if "no image was saved" not in line:
        named = Path(line.split("the last good snapshot is ", 1)[1].split(";", 1)[0])
        assert named.parent == run_dir and load_image(named, max_side_px=None).shape == IMAGE_SHAPE, line
    # Every file left is whole; papermill's own partial notebook is the bug tested below.
    assert incomplete_files(run_dir, skip=lambda p: p.name == PARTIAL_NOTEBOOK) == []
    assert new_run_folder(run_dir.parent) == run_dir
    after = snapshot(tmp_path)
    assert {path: state for path, state in after.items() if path in before} == before, "an earlier file changed"
    outside = {path for path in after.keys() - before.keys() if run_dir.parent not in path.parents}
    assert outside == {run.out_path, run.err_path}, "only the test's own logs are new outside the full disk"
    assert not any((tmp_path / "default-output").iterdir())
    run.assert_no_kernel_left()


@pytest.mark.slow
def test_a_full_disk_leaves_no_truncated_notebook(disk_filled):
    _, _, run_dir, _, _ = disk_filled
    assert incomplete_files(run_dir) == []


@pytest.mark.slow
def test_a_full_disk_names_the_newest_image(disk_filled):
    run, _, run_dir, _, _ = disk_filled
    line = the_one_error_line(run.err_path.read_text())
    named = Path(line.split("the last good snapshot is ", 1)[1].split(";", 1)[0])
    first = min(run_dir.glob("iter_*.png"))  # the run's first iteration (the trial's are in trial/)
    if (run_dir / CHECKPOINT_NAME).read_bytes() != first.read_bytes():
        pytest.skip(f"a slow machine: the {CHECKPOINT_EVERY_S:g} s checkpoint was rewritten during the run")
    newest = max(run_dir.glob("*.png"), key=lambda path: path.stat().st_mtime_ns)
    assert named.stat().st_mtime_ns >= newest.stat().st_mtime_ns, f"{named.name} is older than {newest.name}"
