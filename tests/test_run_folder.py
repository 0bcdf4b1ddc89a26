"""nst.run_folder: new run folders, the writability check, metrics.csv, snapshots, params.json, the checkpoint."""

import csv
import json
import os
import threading
import time

import numpy as np
import pytest
from toy_runs import toy_run

import nst.images
from nst.errors import NSTError
from nst.images import load_image
from nst.run_folder import CHECKPOINT_NAME, METRICS_FIELDS, MetricsLog, RunFolder, check_writable_dir, make_run_dir

# ---------------------------------------------------------------------------- the folder


def test_two_runs_started_at_once_get_separate_folders(tmp_path):
    folders = []
    threads = [threading.Thread(target=lambda: folders.append(make_run_dir(tmp_path, "same"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(folders)) == 8 and all(f.is_dir() for f in folders)


def test_a_run_folder_is_new_empty_and_named_by_time_and_label(tmp_path):
    run_dir = make_run_dir(tmp_path / "new" / "root", "photo+painting")
    assert run_dir.parent == tmp_path / "new" / "root" and run_dir.is_dir() and not list(run_dir.iterdir())
    stamp, label = run_dir.name[:15], run_dir.name[16:]
    assert stamp[:8].isdigit() and stamp[8] == "-" and stamp[9:].isdigit(), run_dir.name
    assert label == "photo-painting", "characters other than letters, digits, - and _ become -"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere, so permissions cannot be tested")
def test_an_unwritable_output_folder_is_reported_before_the_run(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(NSTError, match="not writable"):
        make_run_dir(locked)


def test_an_output_path_that_is_a_file_is_reported_before_the_run(tmp_path):
    blocker = tmp_path / "output"
    blocker.write_text("not a folder")
    with pytest.raises(NSTError, match=f"cannot be an output folder, {blocker} is a file; pass another") as error:
        make_run_dir(blocker)
    assert "\n" not in str(error.value)
    with pytest.raises(NSTError, match=f"{blocker / 'runs'}: cannot be an output folder, {blocker} is a file"):
        check_writable_dir(blocker / "runs")
    assert blocker.read_text() == "not a folder"


def test_check_writable_dir_creates_the_folder_and_leaves_nothing_in_it(tmp_path):
    check_writable_dir(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir() and not list((tmp_path / "a" / "b").iterdir())


# ---------------------------------------------------------------------------- metrics.csv


def test_metrics_log_writes_each_row_at_once(tmp_path):
    log = MetricsLog(tmp_path / "metrics.csv", ("iteration", "total"))
    assert (tmp_path / "metrics.csv").read_text() == "iteration,total\n", "the header is on disk before any row"
    log.append({"iteration": 1, "total": 2.5, "ignored": "x"})
    assert (tmp_path / "metrics.csv").read_text() == "iteration,total\n1,2.5\n", "a row is flushed when written"
    log.close()


# ---------------------------------------------------------------------------- a run's folder


def test_a_run_saves_snapshots_final_image_and_one_metrics_row_per_iteration(tmp_path):
    run, _, _ = toy_run(tmp_path, iterations=5, save_every=2, params={"iterations": 5})
    run.start().wait()
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == [
        "evolution.gif",
        "evolution.png",
        "final.png",
        "iter_0002.png",
        "iter_0004.png",
        "metrics.csv",
        "params.json",
    ]
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4, 5]
    assert tuple(rows[0]) == METRICS_FIELDS
    assert float(rows[-1]["total"]) < float(rows[0]["total"])
    assert float(rows[0]["alpha"]) == 1.0 and float(rows[0]["beta"]) == 2.0
    assert run.message.startswith("finished 5 iterations")
    assert run.saved_paths == [tmp_path / "run" / name for name in ("iter_0002.png", "iter_0004.png", "final.png")]
    assert f"final image: {tmp_path / 'run' / 'final.png'}" in run.message


def test_params_json_holds_the_params_as_json(tmp_path):
    params = {"iterations": 5, "style_layers": [["conv1_1", 1.0]], "weights": None, "content_path": tmp_path}
    run, _, _ = toy_run(tmp_path, iterations=1, params=params)
    run.start().wait()
    written = json.loads((tmp_path / "run" / "params.json").read_text())
    assert written == {**params, "content_path": str(tmp_path)}, "paths are written as strings"


def test_save_every_larger_than_the_run_still_saves_the_final_image(tmp_path):
    run, image, _ = toy_run(tmp_path, iterations=3, save_every=100)
    run.start().wait()
    saved = load_image(run.final_path, max_side_px=None)
    np.testing.assert_allclose(saved, image[0].numpy(), atol=1 / 255)


def test_zero_iterations_saves_the_initial_image(tmp_path):
    run, _, _ = toy_run(tmp_path, iterations=0)
    run.start().wait()
    assert run.final_path.exists() and run.history == []
    np.testing.assert_array_equal(load_image(run.final_path, max_side_px=None), 0.0)


def test_save_every_must_be_one_or_more(tmp_path):
    with pytest.raises(ValueError, match="save_every=0"):
        RunFolder(tmp_path, save_every=0)


def test_a_full_disk_while_saving_keeps_the_previous_snapshot_intact(tmp_path, monkeypatch):
    run, _, _ = toy_run(tmp_path, iterations=6, save_every=2)
    original_write = nst.images.write_atomically  # save_image writes every image through it

    def write_until_the_disk_is_full(path, write):
        if path.name in ("iter_0004.png", "final.png"):  # the first snapshot fits, later writes fail half-way

            def write_half_then_fail(file):
                file.write(b"\x89PNG partial")
                raise OSError(28, "No space left on device")

            return original_write(path, write_half_then_fail)
        return original_write(path, write)

    monkeypatch.setattr(nst.images, "write_atomically", write_until_the_disk_is_full)
    with pytest.raises(OSError, match="No space left"):
        run.start().wait()
    monkeypatch.undo()
    folder = tmp_path / "run"
    assert load_image(folder / "iter_0002.png", max_side_px=None).shape == (32, 32, 3)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["iter_0002.png", CHECKPOINT_NAME, "metrics.csv"], "no half-written files"
    assert "last snapshot" in run.message
    assert "No space left" in run.message


def test_a_checkpoint_is_written_during_the_run_and_removed_at_the_end(tmp_path):
    run, _, _ = toy_run(tmp_path, iterations=100_000)
    run.start()
    checkpoint = tmp_path / "run" / CHECKPOINT_NAME
    deadline = time.monotonic() + 30
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert load_image(checkpoint, max_side_px=None).shape == (32, 32, 3), "the first iteration is checkpointed"
    run.stop()
    run.wait()
    assert run.final_path.exists() and not checkpoint.exists()
