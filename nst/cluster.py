"""A batch's runs as tasks on a Dask cluster (`stylise --scheduler tcp://HOST:8786`); Dask is imported only here.

One task a run, submitted to distributed.Client(address). On its worker the task starts a fresh Python process for
the run (`python -m nst.cluster`): papermill passes Ctrl-C on from a main thread only, and its stderr redirection
would take the worker's own log with it. One run already uses every core, so start workers with `--nthreads 1`.

Where a run folder goes: a worker that sees the batch folder (shared storage: its batch.json holds this batch's id)
writes it there directly; any other worker writes to a scratch folder and sends the folder's files back, and this
process writes them into the batch folder. The two images travel with the task, so workers need not see them; other
files that settings name (style_images) must exist on the workers.

The weights: this process checks them and, with weights=None and no file in pretrained-model/, fetches Keras's once,
before any task is sent (offline: random features for every run, said in one line). The file goes to the cluster
once (distributed's scatter) and reaches each worker at most once, never with every task; a worker that has the very
same file (shared storage) reads it there, any other writes it once into its temporary folder.

A lost worker: the scheduler gives its task to another worker, up to distributed.scheduler.allowed-failures times
(Dask's default: 3); then the run is reported failed (KilledWorker), never dropped. A task that raises (a problem of
the worker, not of the run: a failed run is a result) is tried TASK_RETRIES more times.

Test hook: with NST_TEST_KILL_WORKER_ONCE=PATH in the workers' environment, the first task to start creates PATH
and kills its worker with os._exit(1), so that a test sees a worker lost mid-task; later tasks find PATH and run.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from nst.batch_plan import BATCH_JSON_NAME, FINISHED_NAME, RunResult, RunSpec
from nst.batch_run import run_one
from nst.errors import NSTError, one_line
from nst.images import write_atomically

TASK_RETRIES = 1  # more tries for a task that raised on its worker (a lost worker is the scheduler's business)
CONNECT_TIMEOUT_S = 30  # how long to wait for the scheduler to answer
KILL_ONCE_ENV = "NST_TEST_KILL_WORKER_ONCE"  # tests only: see the module's docstring
_RESULT_PREFIX = "nst-run-result: "  # the line of the run's process that carries its result


def connect(address: str):
    """A distributed.Client of the scheduler at `address`, or NSTError in one line (no Dask, no answer)."""
    try:
        import distributed
    except ImportError:
        raise NSTError(
            "--scheduler needs Dask distributed, an optional extra: pip install -e '.[cluster]' "
            "(or run without --scheduler, in this process)"
        ) from None
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as err:
        raise NSTError(
            f"cannot reach the Dask scheduler at {address} ({one_line(err)}); start one with `dask scheduler`, "
            "or check the address and port"
        ) from None
    _warn_about_threads(client)
    return client


def run_on_cluster(
    client, specs: Sequence[RunSpec], batch_dir: Path, batch_id: str, record: Callable[[RunResult], None]
) -> None:
    """Submit one task per spec through the distributed.Client; `record` each RunResult as it comes back.

    Ctrl-C cancels the tasks still queued or running and is raised."""
    import distributed

    futures = {}
    shipped = _weights_for_workers(client, specs)  # before any task: fetched once, here, on first use
    try:
        for spec in specs:
            weights, weights_md5, weights_data = shipped[spec.parameters.get("weights")]
            task_spec = dataclasses.replace(spec, parameters={**spec.parameters, "weights": weights})
            try:
                payload = {**_payload(task_spec, batch_dir, batch_id), "weights_md5": weights_md5}
            except OSError as err:
                record(RunResult(spec, "failed", error=f"cannot read {err.filename} ({err.strerror or err})"))
                continue
            key = f"stylise-{spec.key.replace('/', '-')}-{uuid.uuid4().hex[:8]}"
            task = client.submit(run_task, payload, weights_data, key=key, pure=False, retries=TASK_RETRIES)
            futures[task] = spec
        for future in distributed.as_completed(list(futures)):
            record(_result(distributed, future, futures[future], batch_dir))
    except KeyboardInterrupt:
        client.cancel(list(futures))
        raise


def _weights_for_workers(client, specs: Sequence[RunSpec]) -> dict:
    """Each weights setting of `specs` -> (what its kernels read: a checked file's path or "random", the file's md5,
    a Dask future of the file's bytes); md5 and future are None where there is no file to send."""
    from nst.sources import file_digests
    from nst.weights import check_weights, weights_for_kernel

    shipped = {}
    for setting in dict.fromkeys(spec.parameters.get("weights") for spec in specs):
        weights = weights_for_kernel(check_weights(setting))
        if weights != "random" and Path(weights).is_file():
            data = client.scatter(Path(weights).read_bytes(), hash=False)  # to one worker; the others copy it once
            shipped[setting] = (weights, file_digests(weights)[0], data)
        else:  # random features, or a folder without a weights file (its kernel says so)
            shipped[setting] = (weights, None, None)
    return shipped


def _warn_about_threads(client) -> None:
    """One note when a worker runs several tasks at once: runs would then share its cores."""
    workers = client.scheduler_info().get("workers", {}).values()
    crowded = sorted({worker.get("nthreads", 1) for worker in workers if worker.get("nthreads", 1) > 1})
    if crowded:
        print(
            f"note: some workers run {crowded[-1]} tasks at once; each run already uses every core of its machine, "
            "so start workers with --nthreads 1",
            file=sys.stderr,
        )


def _payload(spec: RunSpec, batch_dir: Path, batch_id: str) -> dict:
    """What a task needs: the spec, the batch folder and id (to recognise shared storage), and both images."""
    return {
        "spec": spec.as_record(),
        "batch_dir": str(batch_dir),
        "batch_id": batch_id,
        "content_bytes": Path(spec.content_path).read_bytes(),
        "style_bytes": Path(spec.style_path).read_bytes(),
    }


def _result(distributed, future, spec: RunSpec, batch_dir: Path) -> RunResult:
    """The RunResult of a finished future; a lost task (dead workers, cancelled) is a failure that says so."""
    try:
        task_record = future.result()
    except distributed.KilledWorker as err:
        deaths = err.allowed_failures + 1
        who = "its worker died" if deaths == 1 else f"{deaths} workers died one after the other"
        return RunResult(
            spec,
            "failed",
            error=f"lost: {who} while running it (last {err.last_worker.address}); see the workers' logs "
            "(killed for memory? try a smaller max_side_px)",
        )
    except concurrent.futures.CancelledError as err:
        return RunResult(spec, "failed", error=f"lost: the cluster cancelled the task ({one_line(err)})")
    except Exception as err:  # raised on the worker, TASK_RETRIES + 1 times
        return RunResult(spec, "failed", error=f"{type(err).__name__} on the worker: {one_line(err)}")
    slot_dir = batch_dir / spec.key
    files = task_record.pop("files", None)
    if files is not None and task_record.get("run_dir"):
        task_record["run_dir"] = store_run_folder(slot_dir, task_record["run_dir"], files).name
    return RunResult.from_record(spec, slot_dir, task_record)


def store_run_folder(slot_dir: Path, name: str, files: dict[str, bytes]) -> Path:
    """Write a run folder sent back by a worker into `slot_dir` (a new folder, never an old one); finished.json last,
    so that a folder cut short is not taken for a finished run."""
    slot_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        run_dir = slot_dir / (name if n == 1 else f"{name}-copy{n}")
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            continue
    for file_name in sorted(files, key=lambda file_name: file_name == FINISHED_NAME):
        if Path(file_name).name == file_name:  # a plain name, nothing that climbs out of the folder
            data = files[file_name]
            write_atomically(run_dir / file_name, lambda file, data=data: file.write(data))
    return run_dir


def run_task(payload: dict, weights_data: bytes | None = None) -> dict:
    """The task, on a worker: one run in a new process; returns its RunResult record (and, copied, its files).

    `weights_data`: the bytes of the weights file the spec names, where it names one (Dask brings them to this worker
    once)."""
    _kill_once_for_tests()
    spec = RunSpec.from_record(payload["spec"])
    batch_dir = Path(payload["batch_dir"])
    shared = _sees_batch(batch_dir, payload["batch_id"])
    parameters = dict(spec.parameters)
    if payload.get("weights_md5"):
        parameters["weights"] = _local_weights(parameters["weights"], payload["weights_md5"], weights_data)
    with tempfile.TemporaryDirectory(prefix="nst-task-") as scratch:
        content_path = _local_copy(spec.content_path, payload["content_bytes"], Path(scratch, "content"))
        style_path = _local_copy(spec.style_path, payload["style_bytes"], Path(scratch, "style"))
        record = {**spec.as_record(), "content_path": content_path, "style_path": style_path, "parameters": parameters}
        spec = RunSpec.from_record(record)
        slot_dir = batch_dir / spec.key if shared else Path(scratch, "runs")
        task_record = _run_in_new_process(spec, slot_dir)
        if not shared and task_record.get("run_dir"):
            run_dir = slot_dir / task_record["run_dir"]
            task_record["files"] = {path.name: path.read_bytes() for path in run_dir.iterdir() if path.is_file()}
    task_record["worker"] = socket.gethostname()
    return task_record


def _kill_once_for_tests() -> None:
    flag_path = os.environ.get(KILL_ONCE_ENV)
    if not flag_path:
        return
    try:
        os.close(os.open(flag_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os._exit(1)


def _sees_batch(batch_dir: Path, batch_id: str) -> bool:
    """Whether this machine sees the client's batch folder: its batch.json holds the same id."""
    try:
        return json.loads((batch_dir / BATCH_JSON_NAME).read_text()).get("id") == batch_id
    except (OSError, ValueError, AttributeError):
        return False


def _local_copy(path: str, data: bytes, scratch_dir: Path) -> str:
    """`path` if this machine has that very file, else the bytes written into `scratch_dir` under its name."""
    try:
        if hashlib.sha256(Path(path).read_bytes()).digest() == hashlib.sha256(data).digest():
            return path
    except OSError:
        pass
    scratch_dir.mkdir(parents=True, exist_ok=True)
    copy_path = scratch_dir / Path(path).name
    copy_path.write_bytes(data)
    return str(copy_path)


def _local_weights(path: str, md5: str, data: bytes) -> str:
    """`path` if this machine has that very file (shared storage); else `data` written, once per machine, into its
    temporary folder under the file's own name (so the reader checks its published checksum as anywhere else)."""
    from nst.sources import file_digests

    cached = Path(tempfile.gettempdir(), "nst-weights", md5, Path(path).name)
    for candidate in (Path(path), cached):
        try:
            if file_digests(candidate)[0] == md5:
                return str(candidate)
        except OSError:
            continue
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(cached, lambda file: file.write(data))
    return str(cached)


def _run_in_new_process(spec: RunSpec, slot_dir: Path) -> dict:
    """nst.batch.run_one in `python -m nst.cluster`; its record, or a failure that says how the process ended."""
    request = json.dumps({"spec": spec.as_record(), "slot_dir": str(slot_dir)})
    done = subprocess.run(
        [sys.executable, "-m", "nst.cluster"], input=request, capture_output=True, text=True, check=False
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(_RESULT_PREFIX):
            return json.loads(line[len(_RESULT_PREFIX) :])
    last_lines = done.stderr.strip().splitlines()
    why = one_line(last_lines[-1]) if last_lines else "nothing on stderr"
    return {
        "status": "failed",
        "run_dir": None,
        "error": f"the run's process on {socket.gethostname()} ended with status {done.returncode} and no result "
        f"({why})",
    }


def _run_from_stdin() -> int:
    """`python -m nst.cluster`: the run that a task asked for (JSON on stdin); its record as the last line."""
    request = json.loads(sys.stdin.read())
    result = run_one(RunSpec.from_record(request["spec"]), Path(request["slot_dir"]))
    print(_RESULT_PREFIX + json.dumps(result.as_record()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_run_from_stdin())
