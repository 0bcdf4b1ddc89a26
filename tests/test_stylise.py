"""`make run`'s engine: `python nst_utils.py stylise` executes the notebook headless into a new run folder."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

import nst_utils

PROJECT_DIR = Path(__file__).resolve().parents[1]
SMALL = ["-p", "max_side_px", "48", "-p", "iterations", "3", "-p", "save_every", "2"]


def stylise_cli(*args, cwd=PROJECT_DIR):
    """Run the command line as a user would; returns the finished process."""
    command = [sys.executable, str(PROJECT_DIR / "nst_utils.py"), "stylise", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_stylise_writes_images_metrics_and_the_executed_notebook(tmp_path):
    done = stylise_cli(*SMALL, "--output-root", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = tmp_path.iterdir()
    assert {"final.png", "iter_0002.png", "metrics.csv", "params.json", "notebook.ipynb"} <= {
        p.name for p in run_dir.iterdir()
    }
    assert f"Final image: {run_dir / 'final.png'}" in done.stdout
    assert "stylising" in done.stdout + done.stderr  # the headless progress bar, not widgets
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    assert json.loads((run_dir / "params.json").read_text())["iterations"] == 3
    executed = nbformat.read(run_dir / "notebook.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    image = nst_utils.load_image(run_dir / "final.png", max_side=None)
    assert max(image.shape[:2]) == 48


def test_a_missing_image_is_one_line_before_any_kernel_starts(tmp_path):
    done = stylise_cli("--content", str(tmp_path / "nope.jpg"), "--output-root", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "nope.jpg" in done.stderr, done.stderr
    assert not list(tmp_path.iterdir()), "no run folder is left for a run that never started"


def test_an_unknown_parameter_lists_the_valid_ones(tmp_path):
    done = stylise_cli("-p", "iterationz", "5", "--output-root", str(tmp_path))
    assert done.returncode == 1
    assert "iterationz" in done.stderr and "iterations" in done.stderr and done.stderr.count("\n") == 1


def test_parameter_values_are_read_as_python_literals():
    assert nst_utils.parse_parameter_value("300") == 300
    assert nst_utils.parse_parameter_value("0.02") == 0.02
    assert nst_utils.parse_parameter_value("None") is None
    assert nst_utils.parse_parameter_value("[('conv1_1', 1.0)]") == [("conv1_1", 1.0)]
    assert nst_utils.parse_parameter_value("conv5_2") == "conv5_2"


@pytest.mark.slow
def test_a_bad_parameter_fails_the_headless_run_in_one_line(tmp_path):
    done = stylise_cli(*SMALL, "-p", "alpha", "-1", "--output-root", str(tmp_path))
    assert done.returncode == 1
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ValueError: alpha=-1") and "notebook.ipynb" in last_line, done.stderr[-1500:]


@pytest.mark.slow
def test_ctrl_c_during_a_headless_run_keeps_the_last_image_and_the_metrics(tmp_path):
    command = [sys.executable, str(PROJECT_DIR / "nst_utils.py"), "stylise", "-p", "max_side_px", "48"]
    command += ["-p", "iterations", "100000", "--output-root", str(tmp_path)]
    log_path = tmp_path.parent / f"{tmp_path.name}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and process.poll() is None:
                metrics = list(tmp_path.glob("*/metrics.csv"))
                if metrics and metrics[0].read_text().count("\n") > 5:
                    break
                time.sleep(0.5)
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
            assert process.wait(timeout=120) == 130
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    (run_dir,) = tmp_path.iterdir()
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert len(rows) >= 5
    # final.png if the kernel had time to save it, else the checkpoint written during the run
    last_image = run_dir / "final.png" if (run_dir / "final.png").exists() else run_dir / "latest.png"
    assert nst_utils.load_image(last_image, max_side=None).shape[:2] == (36, 48)
    assert "Interrupted: the images and metrics.csv written so far are in" in log_path.read_text()
