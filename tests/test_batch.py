"""nst.batch: a folder or a glob of images, one run each under one batch folder; resume, failures, batch.csv.

The orchestration is tested with a stand-in for nst.headless.stylise (no kernel); one slow test runs the notebook.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

import nst.headless
from nst import batch_plan, batch_report, batch_run, cli
from nst.errors import NSTError
from nst.run_folder import make_run_dir

PROJECT_DIR = Path(__file__).resolve().parents[1]
TINY = ["-p", "max_side_px", "48", "-p", "iterations", "2", "-p", "save_every", "1"]


def make_image(path: Path, colour: str, size_px: tuple[int, int] = (48, 40)) -> Path:
    """A small picture (width, height in px): a disc and a stripe on a plain ground, smooth enough to optimise."""
    image = Image.new("RGB", size_px, colour)
    draw = ImageDraw.Draw(image)
    draw.ellipse((size_px[0] // 5, size_px[1] // 5, size_px[0] * 3 // 4, size_px[1] * 4 // 5), fill="white")
    draw.line((0, size_px[1] - 1, size_px[0], 0), fill="black", width=3)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def make_style(path: Path) -> Path:
    """The style image: square, since the notebook's style_scale demonstration halves its long side (32 px min)."""
    return make_image(path, "darkgreen", (48, 48))


def checkout_first_on_pythonpath(monkeypatch) -> None:
    """Kernels (and a Dask worker's run process) import nst from this checkout, as tests/kernel_fixture.py does."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(PROJECT_DIR), os.environ.get("PYTHONPATH")])))


def stylise_cli(*args, timeout_s: int = 900):
    """The command line as a user runs it; returns the finished process."""
    command = [sys.executable, str(PROJECT_DIR / "nst_utils.py"), "stylise", *map(str, args)]
    return subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=timeout_s)


def read_batch_csv(batch_dir: Path) -> list[dict]:
    with (batch_dir / batch_report.BATCH_CSV_NAME).open(newline="") as file:
        return list(csv.DictReader(file))


class FakeStylise:
    """Stands in for nst.headless.stylise: a run folder with final.png and metrics.csv, at once.

    Content named *bad* fails in one line, as a broken image does; *crash* raises an unforeseen error;
    *stop* is a Ctrl-C. Every call is kept in `calls` as (content name, parameters)."""

    def __init__(self):
        self.calls = []

    def __call__(self, content_path, style_path, parameters, output_root):
        name = Path(content_path).name
        self.calls.append((name, dict(parameters)))
        print(f"Stylising {name}")  # the run's own lines: into its stdout.log, not the batch's terminal
        if "bad" in name:
            raise NSTError(f"{content_path} is not an image Pillow can read; pass a JPEG or PNG file")
        if "stop" in name:
            raise nst.headless.Interrupted("interrupted: stopped after the current iteration")
        run_dir = make_run_dir(output_root, label=Path(content_path).stem)
        if "crash" in name:
            raise RuntimeError("something unforeseen\nwith a second line")
        Image.open(content_path).convert("RGB").save(run_dir / "final.png")
        total = 2.0 * parameters.get("alpha", 10.0)
        (run_dir / "metrics.csv").write_text(
            f"iteration,total,content,style,alpha,beta,seconds\n1,{total * 2},1,1,10,40,0.1\n2,{total},1,1,10,40,0.2\n"
        )
        return run_dir


@pytest.fixture
def fake_stylise(monkeypatch):
    fake = FakeStylise()
    monkeypatch.setattr(nst.headless, "stylise", fake)
    return fake


@pytest.fixture
def images(tmp_path):
    """A content folder of two pictures and a README, and a style image beside it."""
    folder = tmp_path / "photos"
    make_image(folder / "harbour.png", "navy")
    make_image(folder / "meadow.jpg", "orange")
    (folder / "README.txt").write_text("not an image: ignored")
    return folder, make_style(tmp_path / "waves.png")


def test_a_folder_runs_each_image_into_its_own_run_folder_under_one_batch_folder(
    tmp_path, images, fake_stylise, capsys
):
    folder, style = images
    output_root = tmp_path / "out"
    assert (
        cli.main(["stylise", "--content", str(folder), "--style", str(style), "--output-root", str(output_root)]) == 0
    )
    (batch_dir,) = output_root.iterdir()
    assert batch_dir.name.startswith("batch-photos+waves-")
    assert [name for name, _ in fake_stylise.calls] == ["harbour.png", "meadow.jpg"]
    rows = read_batch_csv(batch_dir)
    assert [(row["image"], row["status"]) for row in rows] == [("harbour.png", "done"), ("meadow.jpg", "done")]
    for row in rows:
        run_dir = batch_dir / row["folder"]
        assert run_dir.parent == batch_dir / row["image"]
        assert {"final.png", "metrics.csv", batch_plan.FINISHED_NAME, batch_run.RUN_LOG_NAME} <= {
            p.name for p in run_dir.iterdir()
        }
        assert float(row["final_cost"]) == 20.0  # the last row's total, 2 × the default α
        assert "Stylising" in (run_dir / batch_run.RUN_LOG_NAME).read_text()
    out = capsys.readouterr()
    assert "Stylising" not in out.out, "a run's own lines go to its stdout.log"
    assert "image" in out.out and "final cost" in out.out and f"Table: {batch_dir / 'batch.csv'}" in out.out
    assert "batch" in out.err and "2/2" in out.err, "one progress bar over the runs"


def test_the_same_command_again_skips_finished_runs_and_retries_failed_ones(tmp_path, images, fake_stylise, capsys):
    folder, style = images
    make_image(folder / "bad_scan.png", "grey")
    command = ["stylise", "--content", str(folder), "--style", str(style), "--output-root", str(tmp_path / "out")]
    assert cli.main(command) == 1
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("error: bad_scan.png: ")] == [
        f"error: bad_scan.png: {folder / 'bad_scan.png'} is not an image Pillow can read; pass a JPEG or PNG file"
    ]
    assert err[-1].startswith("error: 1 of 3 runs failed")
    fake_stylise.calls.clear()
    assert cli.main(command) == 1
    assert [name for name, _ in fake_stylise.calls] == ["bad_scan.png"], "finished runs are skipped"
    (batch_dir,) = (tmp_path / "out").iterdir()
    statuses = {row["image"]: row["status"] for row in read_batch_csv(batch_dir)}
    assert statuses == {"bad_scan.png": "failed", "harbour.png": "skipped", "meadow.jpg": "skipped"}
    assert float(read_batch_csv(batch_dir)[1]["final_cost"]) == 20.0, "a skipped run keeps its cost"


def test_an_image_refused_before_its_run_started_leaves_no_folder(tmp_path, images, fake_stylise, capsys):
    folder, style = images
    make_image(folder / "bad_scan.png", "grey")
    batch_dir = tmp_path / "b"
    command = ["stylise", "--content", str(folder), "--style", str(style), "--batch-dir", str(batch_dir)]
    assert cli.main([*command, "--sweep", "alpha=1,2"]) == 1
    assert "error: 2 of 6 runs failed" in capsys.readouterr().err
    assert sorted(p.name for p in batch_dir.iterdir()) == [
        "batch.csv", "batch.json", "harbour.png", "meadow.jpg"
    ], "no bad_scan.png/ nor bad_scan.png/alpha=1/ for the runs refused before they started"  # fmt: skip
    rows = read_batch_csv(batch_dir)
    assert [(row["image"], row["status"], row["folder"]) for row in rows if "bad" in row["image"]] == [
        ("bad_scan.png", "failed", ""),
        ("bad_scan.png", "failed", ""),
    ]


def test_a_run_folder_without_finished_json_is_not_finished(tmp_path):
    slot = tmp_path / "harbour.png"
    half = make_run_dir(slot, label="harbour")
    make_image(half / "final.png", "navy")  # a failed run can leave final.png: the marker says it finished
    assert batch_plan.finished_run(slot) is None
    (half / batch_plan.FINISHED_NAME).write_text("{}")
    assert batch_plan.finished_run(slot) == half


def test_an_unforeseen_error_in_one_run_does_not_stop_the_others(tmp_path, images, fake_stylise, capsys):
    folder, style = images
    make_image(folder / "crash.png", "red")
    code = cli.main(["stylise", "--content", str(folder), "--style", str(style), "--output-root", str(tmp_path)])
    assert code == 1
    assert len(fake_stylise.calls) == 3
    assert "error: crash.png: RuntimeError: something unforeseen with a second line" in capsys.readouterr().err


def test_ctrl_c_stops_the_batch_and_keeps_the_table(tmp_path, images, fake_stylise, capsys):
    folder, style = images
    make_image(folder / "aaa.png", "red")
    make_image(folder / "b_stop.png", "red")  # sorted: aaa.png, b_stop.png, harbour.png, meadow.jpg
    code = cli.main(["stylise", "--content", str(folder), "--style", str(style), "--output-root", str(tmp_path)])
    assert code == 130
    (batch_dir,) = (p for p in tmp_path.iterdir() if p.name.startswith("batch-"))
    statuses = [row["status"] for row in read_batch_csv(batch_dir)]
    assert statuses == ["done", "interrupted", "not run", "not run"]
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: interrupted")


def test_a_glob_selects_files_and_a_pattern_matching_nothing_is_one_line(tmp_path, images, fake_stylise, capsys):
    folder, style = images
    assert (
        cli.main(["stylise", "--content", str(folder / "*.png"), "--style", str(style), "--output-root", str(tmp_path)])
        == 0
    )
    assert [name for name, _ in fake_stylise.calls] == ["harbour.png"]
    capsys.readouterr()
    assert cli.main(["stylise", "--content", str(folder / "*.tif"), "--output-root", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "matches no file" in err
    assert not (tmp_path / "none").exists()


def test_a_folder_without_images_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["stylise", "--content", str(tmp_path / "empty"), "--output-root", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no images in this folder" in err
    assert not (tmp_path / "out").exists()


def test_the_default_batch_folder_is_named_after_the_command(tmp_path, images, fake_stylise):
    folder, style = images
    base = ["stylise", "--content", str(folder), "--style", str(style), "--output-root", str(tmp_path / "out")]
    cli.main(base)
    cli.main(base)
    cli.main([*base, "-p", "iterations", "7"])
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(names) == 2, "the same command finds its batch again; other settings make another"
    assert len(fake_stylise.calls) == 4


def test_an_explicit_batch_dir_made_with_other_settings_is_refused(tmp_path, images, fake_stylise, capsys):
    folder, style = images
    base = ["stylise", "--content", str(folder), "--style", str(style), "--batch-dir", str(tmp_path / "b")]
    assert cli.main(base) == 0
    capsys.readouterr()
    assert cli.main([*base, "-p", "alpha", "5"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "made with other parameters" in err and "--batch-dir" in err
    assert len(fake_stylise.calls) == 2


def test_a_bad_setting_is_refused_before_any_folder_is_made(tmp_path, images, fake_stylise, capsys):
    folder, style = images
    for extra, expected in (
        (["-p", "alpha", "-1"], "alpha=-1"),
        (["-p", "run_dir", "x"], "set by the command"),
        (["--style", str(tmp_path / "nope.jpg")], "nope.jpg"),
    ):
        code = cli.main(
            ["stylise", "--content", str(folder), "--style", str(style), *extra, "--output-root", str(tmp_path / "out")]
        )
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "out").exists() and not fake_stylise.calls


def test_a_bad_mask_refuses_the_whole_batch_before_any_folder_is_made(tmp_path, images, fake_stylise, capsys):
    folder, style = images
    black = tmp_path / "black.png"
    Image.new("L", (48, 40), 0).save(black)
    base = ["stylise", "--content", str(folder), "--style", str(style), "--output-root", str(tmp_path / "out")]
    for mask, expected in ((tmp_path / "nope.png", "Mask file not found"), (black, "is all black")):
        code = cli.main([*base, "-p", "style_masks", str(mask)])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and expected in err and str(mask) in err, err
    assert not (tmp_path / "out").exists() and not fake_stylise.calls


def test_the_same_masks_apply_to_each_image_of_their_shape_and_refuse_the_others_alone(tmp_path, monkeypatch, capsys):
    """The real stylise checks each image against the masks before its kernel would start (the kernel is faked)."""
    ran = []

    def fake_kernel(notebook_path, run_dir, parameters, memory):
        ran.append(parameters["style_masks"])
        make_image(run_dir / "final.png", "white", (memory["width_px"], memory["height_px"]))
        (run_dir / "metrics.csv").write_text("iteration,total,content,style,alpha,beta,seconds\n1,2,1,1,10,40,0.1\n")

    monkeypatch.setattr(nst.headless, "execute_notebook", fake_kernel)
    folder = tmp_path / "photos"
    make_image(folder / "harbour.png", "navy", (64, 48))
    make_image(folder / "meadow.png", "orange", (128, 96))  # the same 4:3, another size
    make_image(folder / "tower.png", "grey", (48, 64))  # portrait
    mask = tmp_path / "sky.png"
    Image.new("L", (640, 480), 255).save(mask)
    command = ["stylise", "--content", str(folder), "--style", str(make_style(tmp_path / "waves.png"))]
    command += ["-p", "style_masks", str(mask), "-p", "max_side_px", "64", "--batch-dir", str(tmp_path / "batch")]
    assert cli.main(command) == 1
    statuses = {row["image"]: row["status"] for row in read_batch_csv(tmp_path / "batch")}
    assert statuses == {"harbour.png": "done", "meadow.png": "done", "tower.png": "failed"}
    assert ran == [[str(mask)], [str(mask)]], "both 4:3 photos ran with the mask"
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert errors[0].startswith(f"error: tower.png: {mask} is 640x480 px but the content image is 48x64 px"), errors
    assert "width-to-height ratio is 77.8% larger; crop or pad the mask" in errors[0]
    assert errors[-1].startswith("error: 1 of 3 runs failed")


def test_importing_the_batch_command_imports_neither_tensorflow_nor_dask():
    code = "import sys, nst.cli, nst.batch; print(sorted({m.split('.')[0] for m in sys.modules}))"
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    loaded = set(eval(done.stdout))
    assert not loaded & {"tensorflow", "keras", "dask", "distributed"}, loaded


def test_make_run_passes_a_folder_a_sweep_and_a_scheduler_on():
    done = subprocess.run(
        [
            "make",
            "-n",
            "-s",
            "run",
            "STAMP=Makefile",
            "CONTENT=my photos/",
            "SWEEP=alpha=1,10 beta=10,100",
            "SCHEDULER=tcp://h:8786",
        ],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    command = " ".join(done.stdout.split())
    assert '--content "my photos/"' in command
    assert '--sweep "alpha=1,10" --sweep "beta=10,100" --scheduler "tcp://h:8786"' in command


@pytest.mark.slow
def test_a_folder_end_to_end_with_the_notebook(tmp_path, monkeypatch):
    """Two tiny images through the real notebook, and a broken one that fails in one line; then a resume."""
    checkout_first_on_pythonpath(monkeypatch)
    folder = tmp_path / "photos"
    make_image(folder / "harbour.png", "navy")
    make_image(folder / "meadow.png", "orange")
    (folder / "notes.jpg").write_text("a text file named .jpg")
    style = make_style(tmp_path / "waves.png")
    command = ["--content", folder, "--style", style, *TINY, "--batch-dir", tmp_path / "batch"]
    done = stylise_cli(*command)
    assert done.returncode == 1, done.stderr[-3000:]
    rows = {row["image"]: row for row in read_batch_csv(tmp_path / "batch")}
    assert {name: row["status"] for name, row in rows.items()} == {
        "harbour.png": "done",
        "meadow.png": "done",
        "notes.jpg": "failed",
    }, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors[0].startswith("error: notes.jpg: ") and "not an image" in errors[0]
    assert errors[-1].startswith("error: 1 of 3 runs failed")
    for name in ("harbour.png", "meadow.png"):
        run_dir = tmp_path / "batch" / rows[name]["folder"]
        metrics = list(csv.DictReader((run_dir / "metrics.csv").open()))
        assert [int(row["iteration"]) for row in metrics] == [1, 2]
        assert float(rows[name]["final_cost"]) == pytest.approx(float(metrics[-1]["total"]))
        assert json.loads((run_dir / "params.json").read_text())["iterations"] == 2
        assert (run_dir / "final.png").is_file() and (run_dir / "notebook.ipynb").is_file()
    listing = ["batch.csv", "batch.json", "harbour.png", "meadow.png"]  # no empty notes.jpg/: it never started
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == listing
    finished = {p: p.read_bytes() for p in (tmp_path / "batch").glob("*.png/*/*") if p.is_file()}
    again = stylise_cli(*command, timeout_s=120)
    assert again.returncode == 1
    statuses = [row["status"] for row in read_batch_csv(tmp_path / "batch")]
    assert statuses == ["skipped", "skipped", "failed"], again.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == listing
    assert {p: p.read_bytes() for p in (tmp_path / "batch").glob("*.png/*/*") if p.is_file()} == finished
