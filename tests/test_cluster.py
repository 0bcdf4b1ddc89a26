"""nst.cluster: a batch's runs as tasks on a Dask cluster; results back as run folders; a lost worker never loses a run.

The slow tests start a LocalCluster of two worker processes on 127.0.0.1 themselves and stop it at the end.
"""

import contextlib
import csv
import hashlib
import json
import sys
from pathlib import Path

import pytest
from test_batch import TINY, checkout_first_on_pythonpath, make_image, make_style, stylise_cli

from nst import batch_plan, cli, cluster
from nst.run_folder import make_run_dir


def a_spec(tmp_path: Path) -> batch_plan.RunSpec:
    content = make_image(tmp_path / "in" / "harbour.png", "navy")
    style = make_style(tmp_path / "in" / "waves.png")
    return batch_plan.RunSpec(
        "harbour.png/alpha=1", "harbour.png", str(content), str(style), {"alpha": 1.0}, (("alpha", "1"),)
    )


def test_without_dask_the_scheduler_option_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    code = cli.main(["stylise", "--scheduler", "tcp://127.0.0.1:8786", "--output-root", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "pip install -e '.[cluster]'" in err, err
    assert not (tmp_path / "out").exists()


def test_an_unreachable_scheduler_is_one_line_before_any_folder_is_made(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)
    code = cli.main(["stylise", "--scheduler", "tcp://127.0.0.1:9", "--output-root", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err, err
    assert not (tmp_path / "out").exists()


class Done:
    """A future that has finished with `value` (or raised it)."""

    def __init__(self, value):
        self.value = value

    def result(self):
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


def test_a_worker_without_the_batch_folder_sends_the_run_folder_back(tmp_path, monkeypatch):
    """No shared storage: the task runs on copies of the images in scratch, and the files come back as bytes."""
    spec = a_spec(tmp_path)
    seen = {}

    def fake_run(spec, slot_dir):  # stands in for the run's process
        seen["content"], seen["slot"] = Path(spec.content_path), slot_dir
        run_dir = make_run_dir(slot_dir, label="harbour")
        (run_dir / "final.png").write_bytes(b"png")
        (run_dir / batch_plan.FINISHED_NAME).write_text(json.dumps({"final_cost": 3.5, "seconds": 1.0}))
        return batch_plan.RunResult(spec, "done", run_dir, 3.5, 1.0).as_record()

    monkeypatch.setattr(cluster, "_run_in_new_process", fake_run)
    payload = cluster._payload(spec, tmp_path / "client-batch", "the-batch-id")
    payload["spec"]["content_path"] = "/elsewhere/harbour.png"  # a path the worker does not have
    record = cluster.run_task(payload)
    assert seen["content"].name == "harbour.png" and seen["content"].parent.name == "content"
    assert not seen["slot"].is_relative_to(tmp_path), "the worker wrote into its own scratch folder"
    assert set(record["files"]) == {"final.png", batch_plan.FINISHED_NAME}
    result = cluster._result(None, Done(record), spec, tmp_path / "client-batch")
    assert result.status == "done" and result.final_cost == 3.5
    assert result.run_dir.parent == tmp_path / "client-batch" / spec.key
    assert (result.run_dir / "final.png").read_bytes() == b"png"
    assert batch_plan.finished_run(tmp_path / "client-batch" / spec.key) == result.run_dir


def test_a_copied_run_folder_is_written_with_finished_json_last_and_only_plain_names(tmp_path, monkeypatch):
    order = []
    real_write = cluster.write_atomically
    monkeypatch.setattr(
        cluster, "write_atomically", lambda path, write: order.append(path.name) or real_write(path, write)
    )
    files = {batch_plan.FINISHED_NAME: b"{}", "final.png": b"png", "metrics.csv": b"iteration\n", "../escape.txt": b"x"}
    first = cluster.store_run_folder(tmp_path / "slot", "20260101-000000-a", files)
    second = cluster.store_run_folder(tmp_path / "slot", "20260101-000000-a", files)
    assert order[-1] == batch_plan.FINISHED_NAME and order[len(order) // 2 - 1] == batch_plan.FINISHED_NAME
    assert first != second and second.name.startswith(first.name), "never into an earlier folder"
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "slot" / "escape.txt").exists()


def test_a_lost_task_is_a_failure_that_says_so(tmp_path):
    distributed = pytest.importorskip("distributed")
    spec = a_spec(tmp_path)

    class Worker:
        address = "tcp://10.0.0.7:40000"

    for error, expected in (
        (distributed.KilledWorker("key", Worker(), 2), "lost: 3 workers died one after the other while running it"),
        (distributed.KilledWorker("key", Worker(), 0), "lost: its worker died while running it (last tcp://10.0.0.7"),
        (RuntimeError("disk\nfull"), "RuntimeError on the worker: disk full"),
    ):
        result = cluster._result(distributed, Done(error), spec, tmp_path)
        assert result.status == "failed" and result.error.startswith(expected), result.error


@contextlib.contextmanager
def start_local_cluster(distributed, tmp_path):
    """Two single-thread worker processes on 127.0.0.1, as the issue asks, stopped when the block ends.

    Their scratch space, and the scheduler's, go in `tmp_path`: not in the system's temporary folder, where Dask
    would leave them."""
    import dask

    with (
        dask.config.set({"temporary-directory": str(tmp_path)}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as running,
    ):
        yield running


@pytest.fixture
def local_cluster(monkeypatch, tmp_path):
    """A LocalCluster whose first task kills its worker; yields (scheduler address, the kill flag's path)."""
    distributed = pytest.importorskip("distributed")
    checkout_first_on_pythonpath(monkeypatch)  # the workers inherit this environment when they start
    flag_path = tmp_path / "killed-a-worker"
    monkeypatch.setenv(cluster.KILL_ONCE_ENV, str(flag_path))
    with start_local_cluster(distributed, tmp_path) as running:
        yield running.scheduler_address, flag_path


@pytest.mark.slow
def test_two_images_on_a_local_cluster_with_a_worker_killed_mid_task(tmp_path, local_cluster):
    """Both runs finish although the first task's worker dies: its run is started again, not lost."""
    address, flag_path = local_cluster
    folder = tmp_path / "photos"
    make_image(folder / "harbour.png", "navy")
    make_image(folder / "meadow.png", "orange")
    style = make_style(tmp_path / "waves.png")
    command = ["--content", folder, "--style", style, *TINY, "--batch-dir", tmp_path / "b", "--scheduler", address]
    done = stylise_cli(*command)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert flag_path.exists(), "a worker was killed"
    rows = list(csv.DictReader((tmp_path / "b" / "batch.csv").open()))
    assert [(row["image"], row["status"]) for row in rows] == [("harbour.png", "done"), ("meadow.png", "done")]
    for row in rows:
        run_dir = tmp_path / "b" / row["folder"]
        assert {"final.png", "metrics.csv", "notebook.ipynb", batch_plan.FINISHED_NAME} <= {
            p.name for p in run_dir.iterdir()
        }
        metrics = list(csv.DictReader((run_dir / "metrics.csv").open()))
        assert float(row["final_cost"]) == pytest.approx(float(metrics[-1]["total"]))
    assert "on the Dask cluster at" in done.stdout


@pytest.mark.slow
def test_a_run_whose_workers_keep_dying_is_reported_failed(tmp_path, monkeypatch):
    """With no second chance (allowed-failures 0), the killed worker's run is reported, with exit status 1."""
    distributed = pytest.importorskip("distributed")
    import dask

    checkout_first_on_pythonpath(monkeypatch)
    monkeypatch.setenv(cluster.KILL_ONCE_ENV, str(tmp_path / "killed-a-worker"))
    content = make_image(tmp_path / "harbour.png", "navy")
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        start_local_cluster(distributed, tmp_path) as running,
    ):
        done = stylise_cli(
            "--content", content, "--style", make_style(tmp_path / "waves.png"), *TINY,
            "--batch-dir", tmp_path / "b", "--scheduler", running.scheduler_address, timeout_s=300,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors[0].startswith("error: harbour.png: lost: its worker died while running it"), errors
    assert errors[-1].startswith("error: 1 of 1 runs failed")
    (row,) = csv.DictReader((tmp_path / "b" / "batch.csv").open())
    assert row["status"] == "failed" and row["error"].startswith("lost:")


# ---------------------------------------------------------------------------- the weights: fetched once, sent once


def test_a_worker_without_the_weights_file_writes_it_once_from_the_client(tmp_path, monkeypatch, files):
    """The task gets the file's bytes (Dask brings them to the worker once) and a path this worker may not have."""
    (tmp_path / "worker-tmp").mkdir()
    monkeypatch.setattr(cluster.tempfile, "tempdir", str(tmp_path / "worker-tmp"))  # this "worker's" temporary folder
    data = files["h5"].read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    seen = []
    monkeypatch.setattr(cluster, "_run_in_new_process", lambda spec, slot_dir: seen.append(spec) or {"status": "done"})
    spec = a_spec(tmp_path)
    elsewhere = "/on/the/client/pretrained-model/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    payload = cluster._payload(spec, tmp_path / "batch", "the-batch-id")
    payload["spec"]["parameters"]["weights"] = elsewhere
    for _ in range(2):
        cluster.run_task({**payload, "weights_md5": md5}, data)
    cached = Path(seen[0].parameters["weights"])
    assert cached.name == Path(elsewhere).name and cached.is_relative_to(tmp_path / "worker-tmp")
    assert cached.read_bytes() == data and seen[1].parameters["weights"] == str(cached)
    first_write = cached.stat().st_mtime_ns
    cluster.run_task({**payload, "weights_md5": md5}, data)
    assert cached.stat().st_mtime_ns == first_write, "written once per machine, not once per task"
    payload["spec"]["parameters"]["weights"] = str(files["h5"])  # shared storage: the very same file is here
    cluster.run_task({**payload, "weights_md5": md5}, data)
    assert seen[-1].parameters["weights"] == str(files["h5"])


@pytest.mark.slow
def test_a_dask_run_fetches_the_weights_once_before_it_sends_tasks(tmp_path, monkeypatch, weights_server):
    distributed = pytest.importorskip("distributed")
    checkout_first_on_pythonpath(monkeypatch)
    folder = tmp_path / "photos"
    make_image(folder / "harbour.png", "navy")
    make_image(folder / "meadow.png", "orange")
    style = make_style(tmp_path / "waves.png")
    with start_local_cluster(distributed, tmp_path) as running:  # after the fixture: the workers see its environment
        command = ["--content", folder, "--style", style, *TINY, "--batch-dir", tmp_path / "b"]
        done = stylise_cli(*command, "--scheduler", running.scheduler_address)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert weights_server.requests == 1, "one fetch, in the command's process, for both runs"
    rows = list(csv.DictReader((tmp_path / "b" / "batch.csv").open()))
    assert [row["status"] for row in rows] == ["done", "done"]
    for row in rows:
        params = json.loads((tmp_path / "b" / row["folder"] / "params.json").read_text())
        assert params["weights"] == f"Keras h5: {weights_server.fetched_path}"
