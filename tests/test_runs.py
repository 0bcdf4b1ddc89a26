"""The run loop: snapshots, metrics, pause/stop, NaN recovery, interrupts and output folders, on a toy step."""

import csv
import os
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

import nst_utils


def toy_run(tmp_path, iterations=5, learning_rate=0.1, blow_up_at=None, **kwargs):
    """A run whose step pulls a 32x32 image towards grey; `blow_up_at` makes the cost NaN from that iteration on."""
    image = tf.Variable(np.zeros((1, 32, 32, 3), np.float32))
    alpha = tf.Variable(1.0)
    beta = tf.Variable(2.0)
    calls = tf.Variable(0)

    @tf.function
    def train_step():
        calls.assign_add(1)
        with tf.GradientTape() as tape:
            content = tf.reduce_mean(tf.square(image - 0.5))
            style = tf.reduce_mean(tf.square(image - 0.25))
            total = alpha * content + beta * style
            if blow_up_at is not None:
                total += tf.where(calls >= blow_up_at, np.nan, 0.0)
        grad = tape.gradient(total, image)
        image.assign(tf.clip_by_value(image - learning_rate * grad, 0.0, 1.0))
        return {"total": total, "content": content, "style": style}

    run = nst_utils.StyleTransferRun(
        train_step, image, iterations, tmp_path / "run", alpha=alpha, beta=beta, live_view=False, **kwargs
    )
    return run, image, alpha


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
    assert float(rows[-1]["total"]) < float(rows[0]["total"])
    assert float(rows[0]["alpha"]) == 1.0 and float(rows[0]["beta"]) == 2.0
    assert run.message.startswith("finished 5 iterations")


def test_save_every_larger_than_the_run_still_saves_the_final_image(tmp_path):
    run, image, _ = toy_run(tmp_path, iterations=3, save_every=100)
    run.start().wait()
    saved = nst_utils.load_image(run.final_path, max_side=None)
    np.testing.assert_allclose(saved, image[0].numpy(), atol=1 / 255)


def test_zero_iterations_saves_the_initial_image(tmp_path):
    run, _, _ = toy_run(tmp_path, iterations=0)
    run.start().wait()
    assert run.final_path.exists() and run.history == []


def test_changing_alpha_mid_run_reaches_the_running_step(tmp_path):
    run, _, alpha = toy_run(tmp_path, iterations=400)
    run.start()
    while len(run.history) < 3:
        time.sleep(0.01)
    alpha.assign(7.0)
    run.wait()
    assert run.history[0]["alpha"] == 1.0 and run.history[-1]["alpha"] == 7.0


def test_a_nan_cost_restores_the_last_good_image_and_says_what_to_do(tmp_path):
    run, image, _ = toy_run(tmp_path, iterations=10, blow_up_at=4)
    with pytest.raises(nst_utils.NSTError, match="lower learning_rate"):
        run.start().wait()
    assert len(run.history) == 3, "iterations 1-3 were good"
    assert np.isfinite(image.numpy()).all()
    assert "iteration 4" in run.message and "lower learning_rate" in run.message
    assert np.isfinite(nst_utils.load_image(run.final_path, max_side=None)).all()


def test_stop_and_pause_keep_the_work_done(tmp_path):
    run, _, _ = toy_run(tmp_path, iterations=100_000)
    run.start()
    while len(run.history) < 2:
        time.sleep(0.01)
    run.pause()
    time.sleep(0.2)
    paused_at = len(run.history)
    time.sleep(0.2)
    assert len(run.history) <= paused_at + 1, "a paused run keeps stepping"
    run.stop()
    run.wait()
    assert "stopped at iteration" in run.message
    assert run.final_path.exists()
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert len(rows) == len(run.history)


def test_an_interrupt_while_waiting_stops_the_run_and_keeps_its_work(tmp_path, capsys):
    run, _, _ = toy_run(tmp_path, iterations=100_000)
    run.start()
    while len(run.history) < 2:
        time.sleep(0.01)
    real_wait = run._finished.wait
    interrupts = []

    def interrupted_wait(timeout=None):
        if not interrupts:
            interrupts.append(1)
            raise KeyboardInterrupt  # what Ctrl-C / "interrupt kernel" does to the waiting cell
        return real_wait(timeout)

    run._finished.wait = interrupted_wait
    with pytest.raises(KeyboardInterrupt):
        run.wait()
    assert run.done and run.final_path.exists()
    assert "Interrupted: stopped at iteration" in capsys.readouterr().out
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == len(run.history) + 1


def test_two_runs_started_at_once_get_separate_folders(tmp_path):
    folders = []
    threads = [
        threading.Thread(target=lambda: folders.append(nst_utils.make_run_dir(tmp_path, "same"))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(folders)) == 8 and all(f.is_dir() for f in folders)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere, so permissions cannot be tested")
def test_an_unwritable_output_folder_is_reported_before_the_run(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(nst_utils.NSTError, match="not writable"):
        nst_utils.make_run_dir(locked)


def test_an_output_path_that_is_a_file_is_reported_before_the_run(tmp_path):
    blocker = tmp_path / "output"
    blocker.write_text("not a folder")
    with pytest.raises(nst_utils.NSTError, match="output folder is not writable"):
        nst_utils.make_run_dir(blocker)


def test_bad_iteration_settings_name_the_value(tmp_path):
    with pytest.raises(ValueError, match="iterations=-1"):
        toy_run(tmp_path, iterations=-1)
    with pytest.raises(ValueError, match="save_every=0"):
        toy_run(tmp_path, save_every=0)


def test_loss_curve_and_png_bytes_render():
    history = [{"iteration": i, "total": 10.0 / i, "content": 1.0 / i, "style": 9.0 / i} for i in range(1, 6)]
    assert nst_utils.loss_curve_png(history)[:8] == b"\x89PNG\r\n\x1a\n"
    assert nst_utils.png_bytes(np.zeros((1, 4, 4, 3)))[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_full_disk_while_saving_keeps_the_previous_snapshot_intact(tmp_path, monkeypatch):
    run, _, _ = toy_run(tmp_path, iterations=6, save_every=2)
    original_write = nst_utils._write_atomically

    def write_until_the_disk_is_full(path, write):
        if path.name in ("iter_0004.png", "final.png"):  # the first snapshot fits, later writes fail half-way

            def write_half_then_fail(file):
                file.write(b"\x89PNG partial")
                raise OSError(28, "No space left on device")

            return original_write(path, write_half_then_fail)
        return original_write(path, write)

    monkeypatch.setattr(nst_utils, "_write_atomically", write_until_the_disk_is_full)
    with pytest.raises(OSError, match="No space left"):
        run.start().wait()
    monkeypatch.undo()
    folder = tmp_path / "run"
    assert nst_utils.load_image(folder / "iter_0002.png", max_side=None).shape == (32, 32, 3)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["iter_0002.png", nst_utils.CHECKPOINT_NAME, "metrics.csv"], "no half-written files"
    assert "last snapshot" in run.message
    assert "No space left" in run.message


def test_a_checkpoint_is_written_during_the_run_and_removed_at_the_end(tmp_path):
    run, _, _ = toy_run(tmp_path, iterations=100_000)
    run.start()
    checkpoint = tmp_path / "run" / nst_utils.CHECKPOINT_NAME
    deadline = time.monotonic() + 30
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert nst_utils.load_image(checkpoint, max_side=None).shape == (32, 32, 3), "the first iteration is checkpointed"
    run.stop()
    run.wait()
    assert run.final_path.exists() and not checkpoint.exists()
