"""nst.cli: `python nst_utils.py stylise` (what `make run` runs) executes the notebook headless into a new run folder.

Everything a user can fix is one line on stderr and exit status 1, before any kernel starts and before any run
folder is made; Ctrl-C stops the run after its current iteration, keeps final.png and exits with 130.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import nbformat
import numpy as np
import pytest
from PIL import Image

from nst.images import load_image
from nst.paths import PROJECT_DIR, SAMPLE_CONTENT_PATH

SMALL = ["-p", "max_side_px", "48", "-p", "iterations", "5", "-p", "save_every", "2"]  # 3 are the trial's


def nst_cli(*args, cwd=PROJECT_DIR, env=None):
    """Run `python nst_utils.py ARGS` as a user would; returns the finished process."""
    command = [sys.executable, str(PROJECT_DIR / "nst_utils.py"), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def stylise_cli(*args, cwd=PROJECT_DIR, env=None):
    """Run the stylise command as a user would; returns the finished process."""
    return nst_cli("stylise", *args, cwd=cwd, env=env)


def assert_refused_in_one_line(done, output_root, starts: str) -> None:
    """Exit status 1, exactly one line on stderr starting with `starts`, and no run folder left behind."""
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(starts), done.stderr
    assert not list(output_root.iterdir()), "no run folder is left for a run that never started"


@pytest.mark.slow
def test_stylise_writes_images_metrics_and_the_executed_notebook(tmp_path):
    output_root, temporary = tmp_path / "output", tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}  # each import on stderr (the kernel's: kernel.log)
    env["TMPDIR"] = str(temporary)  # the system's temporary folder, for the command and what it starts
    done = stylise_cli(*SMALL, "--output-root", str(output_root), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    # the kernel is stopped at once, without its exit handlers: its temporary files (autograph's) must go too
    assert not list(temporary.iterdir()), "the run leaves nothing in the temporary folder"
    imported = [line.rpartition("|")[2].strip() for line in done.stderr.splitlines() if line.startswith("import time")]
    # rfc3987_syntax itself is listed, found in sys.modules at no cost; its module that compiles grammars is not
    assert "papermill" in imported and "rfc3987_syntax.syntax_helpers" not in imported, "the command does without it"
    (run_dir,) = output_root.iterdir()
    assert {"final.png", "iter_0004.png", "metrics.csv", "params.json", "notebook.ipynb", "kernel.log"} <= {
        p.name for p in run_dir.iterdir()
    }
    assert f"Final image: {run_dir / 'final.png'}" in done.stdout
    assert "stylising" in done.stdout + done.stderr  # the headless progress bar, not widgets
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4, 5], "the trial's three steps are the run's first"
    assert json.loads((run_dir / "params.json").read_text())["iterations"] == 5
    executed = nbformat.read(run_dir / "notebook.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    skipped = [c for c in executed.cells if "sample-demo" in c.metadata.get("tags", [])]
    assert skipped and not any(c.outputs or c.execution_count for c in skipped), "the sample's demonstration is skipped"
    assert not (run_dir / "regions").exists(), "no picture of the sample photo beside the user's result"
    image = load_image(run_dir / "final.png", max_side_px=None)
    assert max(image.shape[:2]) == 48


@pytest.mark.slow
def test_coarse_to_fine_composes_at_the_first_size_and_refines_at_each_later_one(tmp_path):
    """Three sizes: `coarse_iterations` at the smallest (the trial's three among them), then `iterations` at each
    larger one, each twice the previous, as metrics.csv records them."""
    sizes = ["-p", "max_side_px", "256", "-p", "coarse_to_fine", "3", "-p", "coarse_iterations", "4"]
    done = stylise_cli(*sizes, "-p", "iterations", "2", "--output-root", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = tmp_path.iterdir()
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    ran = [f"{int(row['width_px'])}x{int(row['height_px'])}" for row in rows]
    assert ran == ["64x48"] * 4 + ["128x96"] * 2 + ["256x192"] * 2, ran


@pytest.mark.slow
def test_the_readme_example_sets_style_layers_from_the_command_line(tmp_path):
    done = stylise_cli(
        *SMALL, "-p", "style_layers", "[('conv1_1', 1.0), ('conv3_1', 0.5)]", "--output-root", str(tmp_path)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = tmp_path.iterdir()
    assert json.loads((run_dir / "params.json").read_text())["style_layers"] == [["conv1_1", 1.0], ["conv3_1", 0.5]]


@pytest.mark.slow
def test_a_style_image_smaller_than_vgg_s_minimum_is_upsampled_and_said_once(tmp_path):
    style = tmp_path / "tile.png"
    Image.fromarray((np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)).save(style)
    done = stylise_cli(*SMALL, "--style", str(style), "--output-root", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-2000:]
    note = "note: the style image tile.png is 16×16 px, below VGG-19's 32 px: it is upsampled to 48×48 px"
    assert done.stdout.count(note) == 1, done.stdout
    (run_dir,) = (tmp_path / "out").iterdir()
    assert load_image(run_dir / "final.png", max_side_px=None).shape == (36, 48, 3)


@pytest.mark.slow
def test_a_mask_on_the_left_half_paints_the_left_half_and_keeps_the_photo_on_the_right(tmp_path):
    mask = np.zeros((48, 64), np.uint8)  # the sample photo's 4:3
    mask[:, :32] = 255
    Image.fromarray(mask).save(tmp_path / "left.png")
    masked = ["-p", "style_masks", str(tmp_path / "left.png"), "-p", "init", "content", "-p", "optimizer", "lbfgs"]
    small = ["-p", "max_side_px", "48", "-p", "iterations", "10", "-p", "coarse_iterations", "0"]
    done = stylise_cli(*masked, *small, "--output-root", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = (tmp_path / "out").iterdir()
    assert json.loads((run_dir / "params.json").read_text())["style_masks"] == [str(tmp_path / "left.png")]
    final = load_image(run_dir / "final.png", max_side_px=None)
    change = np.abs(final - load_image(SAMPLE_CONTENT_PATH, max_side_px=48)).mean(axis=2)  # 36×48, in [0, 1]
    left, right = change[:, :20].mean(), change[:, 28:].mean()  # 4 px either side of the edge left out
    assert left > 0.05, f"the style painted the masked left half: it moved by {left:.3f}"
    assert right < left / 3, f"the right half, which no mask covers, stays closer: left {left:.3f}, right {right:.3f}"


def test_a_missing_image_is_one_line_before_any_kernel_starts(tmp_path):
    done = stylise_cli("--content", str(tmp_path / "nope.jpg"), "--output-root", str(tmp_path))
    assert_refused_in_one_line(done, tmp_path, "error: ")
    assert "nope.jpg" in done.stderr, done.stderr


def test_an_unknown_parameter_lists_the_valid_ones(tmp_path):
    done = stylise_cli("-p", "iterationz", "5", "--output-root", str(tmp_path))
    assert_refused_in_one_line(done, tmp_path, "error: ")
    assert "iterationz" in done.stderr and "iterations" in done.stderr


def test_a_bad_parameter_is_refused_in_one_line_before_any_kernel_starts(tmp_path):
    done = stylise_cli(*SMALL, "-p", "alpha", "-1", "--output-root", str(tmp_path))
    assert_refused_in_one_line(done, tmp_path, "error: alpha=-1")


@pytest.mark.parametrize(
    ("name", "value"),
    [("max_side_px", "0"), ("max_side_px", "abc"), ("iterations", "abc"), ("iterations", "1e9")],
)
def test_a_value_out_of_range_or_unreadable_is_one_line_naming_the_parameter(tmp_path, name, value):
    done = stylise_cli("-p", name, value, "--output-root", str(tmp_path))
    assert_refused_in_one_line(done, tmp_path, f"error: {name}=")


def test_a_setting_the_command_sets_itself_is_refused(tmp_path):
    done = stylise_cli("-p", "content_path", "a.jpg", "--output-root", str(tmp_path))
    assert_refused_in_one_line(done, tmp_path, "error: content_path: set by the command itself")


@pytest.mark.parametrize(
    ("module", "package", "command"),
    [
        ("numpy", "numpy", "stylise"),  # nst_utils.py itself imports it only in check_close
        ("PIL", "pillow", "stylise"),
        ("papermill", "papermill", "stylise"),
        ("papermill", "papermill", "video"),
    ],
)
def test_a_python_without_a_package_is_told_which_and_how_to_get_the_project_s_own(tmp_path, module, package, command):
    """PIL is imported with the command, papermill only when the run starts: each is one line, and no folder."""
    script = str(PROJECT_DIR / "nst_utils.py")
    without_module = (
        f"import runpy, sys; sys.modules[{module!r}] = None; sys.argv = ['nst_utils.py', {command!r}, "
        f"'--output-root', {str(tmp_path)!r}]; runpy.run_path({script!r}, run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", without_module], capture_output=True, text=True, timeout=600)
    assert_refused_in_one_line(done, tmp_path, f"error: the Python package {package!r} is not installed for ")
    assert sys.executable in done.stderr and "make setup" in done.stderr, done.stderr


@pytest.mark.parametrize("command", [[], ["stylise"], ["download"]])
def test_help_prints_only_on_stdout(command):
    done = nst_cli(*command, "--help")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith("usage: python nst_utils.py")


def test_a_usage_mistake_is_one_line_too():
    done = nst_cli("paint")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: ") and "--help" in done.stderr


@pytest.mark.slow
def test_ctrl_c_during_a_headless_run_keeps_the_last_image_and_the_metrics(tmp_path):
    command = [sys.executable, str(PROJECT_DIR / "nst_utils.py"), "stylise", "-p", "max_side_px", "48"]
    command += ["-p", "iterations", "100000", "--output-root", str(tmp_path)]
    out_path, err_path = (tmp_path.parent / f"{tmp_path.name}.{kind}" for kind in ("out", "err"))
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and process.poll() is None:
                metrics = list(tmp_path.glob("*/metrics.csv"))
                if metrics and metrics[0].read_text().count("\n") > 5:
                    break
                time.sleep(0.5)
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
            assert process.wait(timeout=120) == 130, out_path.read_text()[-2000:] + err_path.read_text()[-2000:]
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    (run_dir,) = tmp_path.iterdir()
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert len(rows) >= 5
    final = run_dir / "final.png"
    assert final.exists(), "the run stops after its current iteration and writes final.png before the CLI exits"
    assert load_image(final, max_side_px=None).shape[:2] == (36, 48)
    stderr_lines = err_path.read_text().splitlines()
    assert len(stderr_lines) == 1 and stderr_lines[0].startswith("error: interrupted: "), stderr_lines
    assert str(final) in stderr_lines[0]
