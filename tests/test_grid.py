"""nst.grid: `--sweep NAME=V1,V2` parsed and checked, the grid points, and grid.png with rows and columns labelled."""

import csv

import numpy as np
import pytest
from PIL import Image
from test_batch import TINY, FakeStylise, checkout_first_on_pythonpath, make_image, make_style, stylise_cli

import nst.headless
from nst import batch_report, cli, grid
from nst.errors import SettingsError


def test_a_sweep_is_parsed_into_the_settings_types():
    sweep = grid.parse_sweep("alpha=1,10,100")
    assert (sweep.name, sweep.texts, sweep.values) == ("alpha", ("1", "10", "100"), (1.0, 10.0, 100.0))
    assert all(isinstance(value, float) for value in sweep.values)
    assert grid.parse_sweep("iterations=5, 20").values == (5, 20)
    assert grid.parse_sweep("optimizer=adam,lbfgs").values == ("adam", "lbfgs")
    assert grid.parse_sweep("preserve_colours=None,'luminance'").values == (None, "luminance")


def test_commas_inside_brackets_and_quotes_belong_to_the_value():
    assert grid.split_values("1,(2, 3),'a,b',[4,[5,6]]") == ["1", "(2, 3)", "'a,b'", "[4,[5,6]]"]
    sweep = grid.parse_sweep("style_layers=[('conv1_1', 1.0)],[('conv1_1', 1.0), ('conv3_1', 0.5)]")
    assert sweep.values == ([("conv1_1", 1.0)], [("conv1_1", 1.0), ("conv3_1", 0.5)])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpha", "expected NAME=VALUE,VALUE"),
        ("alphq=1,2", "unknown parameter alphq"),
        ("iterations=10,2.5", "iterations='2.5': expected a whole number"),
        ("alpha=1,,2", "a value is empty"),
        ("alpha=1,1.0", "1.0 comes twice"),
        ("live_view=yes,no", "expected True or False"),
    ],
)
def test_a_bad_sweep_is_one_line_that_names_it(text, expected):
    with pytest.raises(SettingsError) as caught:
        grid.parse_sweep(text)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_at_most_two_settings_each_once_and_not_also_set_with_p():
    sweeps = [grid.parse_sweep(text) for text in ("alpha=1,2", "beta=1,2", "seed=0,1")]
    with pytest.raises(SettingsError, match="at most 2"):
        grid.check_sweeps(sweeps, [], ())
    with pytest.raises(SettingsError, match="given twice"):
        grid.check_sweeps([sweeps[0], sweeps[0]], [], ())
    with pytest.raises(SettingsError, match="both set with -p and swept"):
        grid.check_sweeps(sweeps[:1], ["alpha"], ())
    with pytest.raises(SettingsError, match="set by the command"):
        grid.check_sweeps([grid.parse_sweep("run_dir=a,b")], [], ("run_dir",))


def test_grid_points_go_along_the_rows_first():
    points = grid.grid_points([grid.parse_sweep("alpha=1,10"), grid.parse_sweep("beta=5,50,500")])
    assert [(p[0][2], p[1][2]) for p in points] == [
        ("1", "5"), ("1", "50"), ("1", "500"), ("10", "5"), ("10", "50"), ("10", "500"),
    ]  # fmt: skip
    assert grid.grid_points([]) == [()]


def test_grid_png_puts_each_image_in_its_row_and_column_under_its_labels(tmp_path):
    colours = [[(200, 0, 0), (0, 200, 0), (0, 0, 200)], [(200, 200, 0), None, (0, 200, 200)]]
    paths = [
        [None if c is None else tmp_path / f"{r}{k}.png" for k, c in enumerate(row)] for r, row in enumerate(colours)
    ]
    for row, row_paths in zip(colours, paths, strict=True):
        for colour, path in zip(row, row_paths, strict=True):
            if colour is not None:
                Image.new("RGB", (48, 48), colour).save(path)  # square: each cell is side × side
    side = 60
    out = grid.write_grid(tmp_path / "grid.png", paths, ["alpha=1", "alpha=10"], ["b=5", "b=50", "b=500"], "t", side)
    sheet = np.asarray(Image.open(out).convert("RGB")).astype(int)
    step = side + grid.GRID_GAP_PX
    bottom_row_y = sheet.shape[0] - grid.GRID_GAP_PX - side // 2  # the centre of each cell, counted from the edges
    right_column_x = sheet.shape[1] - grid.GRID_GAP_PX - side // 2
    for r in range(2):
        for k in range(3):
            y, x = bottom_row_y - (1 - r) * step, right_column_x - (2 - k) * step
            expected = grid._MISSING_CELL_RGB if colours[r][k] is None else colours[r][k]
            if colours[r][k] is None:  # the grey cell says "no image" in its middle: sample off-centre
                y -= side // 3
            assert np.abs(sheet[y, x] - expected).max() <= 2, (r, k, sheet[y, x], expected)
    left_band = sheet[:, : right_column_x - 2 * step - side // 2]
    top_band = sheet[: bottom_row_y - step - side // 2]
    assert (left_band.sum(axis=2) < 200).any(), "the row labels are drawn left of the cells"
    assert (top_band.sum(axis=2) < 200).any(), "the column labels and the title are drawn above the cells"


def test_one_sweep_is_one_row_of_columns(tmp_path):
    Image.new("RGB", (48, 48), "red").save(tmp_path / "a.png")
    out = grid.write_grid(tmp_path / "grid.png", [[tmp_path / "a.png", None]], [], ["alpha=1", "alpha=2"], "", 50)
    width, height = Image.open(out).size
    assert width == 3 * grid.GRID_GAP_PX + 2 * 50 and height > 50


def test_a_two_by_two_sweep_writes_a_grid_per_image_and_batch_csv_with_the_swept_values(tmp_path, monkeypatch, capsys):
    fake = FakeStylise()
    monkeypatch.setattr(nst.headless, "stylise", fake)
    folder = tmp_path / "photos"
    make_image(folder / "harbour.png", "navy")
    make_image(folder / "meadow.png", "orange")
    style = make_style(tmp_path / "waves.png")
    command = ["stylise", "--content", str(folder), "--style", str(style), "--batch-dir", str(tmp_path / "b")]
    assert cli.main([*command, "--sweep", "alpha=1,100", "--sweep", "beta=10,1000"]) == 0
    assert len(fake.calls) == 8
    assert {(p["alpha"], p["beta"]) for _, p in fake.calls} == {
        (1.0, 10.0),
        (1.0, 1000.0),
        (100.0, 10.0),
        (100.0, 1000.0),
    }
    rows = list(csv.DictReader((tmp_path / "b" / "batch.csv").open()))
    assert list(rows[0]) == ["image", "alpha", "beta", "status", "final_cost", "seconds", "folder", "error"]
    assert [(r["image"], r["alpha"], r["beta"]) for r in rows[:2]] == [
        ("harbour.png", "1", "10"),
        ("harbour.png", "1", "1000"),
    ]
    assert rows[0]["folder"].startswith("harbour.png/alpha=1,beta=10/")
    out = capsys.readouterr().out
    for image in ("harbour.png", "meadow.png"):
        assert f"Grid: {tmp_path / 'b' / image / batch_report.GRID_NAME}" in out
        assert Image.open(tmp_path / "b" / image / batch_report.GRID_NAME).size[0] > 2 * grid.GRID_CELL_SIDE_PX


def test_a_bad_sweep_value_is_refused_in_one_line_before_anything_runs(tmp_path):
    for sweep, expected in (
        ("alpha=1,-1", "alpha=-1.0"),
        ("alphq=1,2", "unknown parameter alphq"),
        ("seed=1,x", "seed="),
    ):
        done = stylise_cli("--sweep", sweep, "--output-root", tmp_path / "out", timeout_s=120)
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_sweep_end_to_end_with_the_notebook(tmp_path, monkeypatch):
    """One tiny image, α swept over two values through the real notebook: two runs and a one-row grid.png."""
    checkout_first_on_pythonpath(monkeypatch)
    content = make_image(tmp_path / "harbour.png", "navy")
    style = make_style(tmp_path / "waves.png")
    command = ["--content", content, "--style", style, *TINY, "--sweep", "alpha=1,1000", "--batch-dir", tmp_path / "b"]
    done = stylise_cli(*command)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "b" / "batch.csv").open()))
    assert [(row["alpha"], row["status"]) for row in rows] == [("1", "done"), ("1000", "done")]
    for row in rows:
        metrics = list(csv.DictReader((tmp_path / "b" / row["folder"] / "metrics.csv").open()))
        assert float(metrics[-1]["alpha"]) == float(row["alpha"]), "each run was made with its own α"
    sheet = Image.open(tmp_path / "b" / "harbour.png" / batch_report.GRID_NAME)
    assert sheet.size[0] == 3 * grid.GRID_GAP_PX + 2 * grid.GRID_CELL_SIDE_PX
    assert f"Grid: {tmp_path / 'b' / 'harbour.png' / batch_report.GRID_NAME}" in done.stdout
