"""The sweep directory: atomic publishing, no overwrite, resume selection, failure records."""
import json
import os
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.expand import expand
from orchestrator.grid import parse_grid
from orchestrator.launch import pending_jobs
from orchestrator.sweep import Sweep

GRID = """
name: t
kernel: ig
fixed: {num_images: 4, iterations: 2}
axes: {batch_size: [1, 2]}
max_attempts: 2
"""


@pytest.fixture
def sweep(tmp_path):
    plan = expand(parse_grid(GRID, "t.yaml"))
    s = Sweep(tmp_path / "sweep")
    s.create(plan, tmp_path / "cache")
    return s, plan


def table(value):
    return pa.table({"job_id": ["x"], "value": [value]})


def test_publish_never_overwrites_a_finished_shard(sweep):
    s, plan = sweep
    job = plan.jobs[0]
    assert s.publish(job, table(1.0), None) is True
    assert s.publish(job, table(2.0), None) is False
    assert pq.read_table(s.result_path(job))["value"].to_pylist() == [1.0]
    assert os.listdir(s.root / "tmp") == []


def test_a_crash_while_writing_leaves_no_shard(sweep, monkeypatch):
    s, plan = sweep
    job = plan.jobs[0]

    def crash(table, where, **kw):
        open(where, "wb").write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(OSError):
        s.publish(job, table(1.0), None)
    assert not s.result_path(job).exists() and job.job_id not in s.completed()


def test_pending_skips_done_and_exhausted_jobs(sweep):
    s, plan = sweep
    done, once, twice = plan.jobs[0], plan.jobs[1], plan.jobs[2]
    s.publish(done, table(1.0), None)
    s.record_failure(once, 1, "ValueError: x", "tb")
    s.record_failure(twice, 1, "ValueError: x", "tb")
    s.record_failure(twice, 2, "ValueError: x", "tb")
    p = pending_jobs(s, plan.jobs, max_attempts=2, retry_failed=False)
    ids = {j.job_id for j in p.jobs}
    assert done.job_id not in ids and twice.job_id not in ids and once.job_id in ids
    assert p.attempts_left[once.job_id] == 1 and p.exhausted == [twice.job_id]
    again = pending_jobs(s, plan.jobs, max_attempts=2, retry_failed=True)
    assert again.attempts_left[twice.job_id] == 2
    assert [r["attempt"] for r in s.failures()[twice.job_id]] == [1, 2]


def test_reopening_with_another_grid_is_refused(sweep, tmp_path):
    from orchestrator.errors import OrchError

    s, _ = sweep
    other = expand(parse_grid(GRID.replace("iterations: 2", "iterations: 3"), "t.yaml"))
    with pytest.raises(OrchError, match="different grid"):
        s.create(other, tmp_path / "cache")


def test_one_launcher_at_a_time(sweep):
    from orchestrator.errors import OrchError

    s, _ = sweep
    with s.lock():
        with pytest.raises(OrchError, match="being launched or resumed"):
            with Sweep(s.root).lock():
                pass


def test_a_failure_a_rerun_cannot_change_is_failed_for_good_at_once(sweep):
    import json

    s, plan = sweep
    deterministic, old_style = plan.jobs[0], plan.jobs[1]
    s.record_failure(deterministic, 1, "DataError: truncated", "tb", retryable=False)
    s.record_failure(old_style, 1, "ValueError: x", "tb")
    record = s.root / "failures" / f"{old_style.job_id}.001.json"
    written = json.loads(record.read_text())
    del written["retryable"]  # a record written before the key existed counts as retryable
    record.write_text(json.dumps(written))
    p = pending_jobs(s, plan.jobs, max_attempts=2, retry_failed=False)
    assert p.exhausted == [deterministic.job_id] and p.attempts_left[old_style.job_id] == 1
    assert pending_jobs(s, plan.jobs, max_attempts=2, retry_failed=True).attempts_left[deterministic.job_id] == 2


def test_only_what_can_change_on_a_rerun_is_retryable():
    import errno

    from orchestrator.runner import retryable

    class OutOfMemoryError(RuntimeError):  # torch.OutOfMemoryError, matched by its name
        pass

    for error in (MemoryError(), OutOfMemoryError("CUDA"), TimeoutError(), ConnectionResetError(),
                  OSError(errno.ESTALE, "stale file handle"), OSError(errno.EIO, "i/o"),
                  RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")):
        assert retryable(error), error
    for error in (ValueError("bad combination"), FileNotFoundError(2, "no such file"), KeyError("x"),
                  RuntimeError("objective is not finite"), ZeroDivisionError()):
        assert not retryable(error), error


def test_running_records_of_dead_processes_are_not_counted(sweep):
    import json
    import socket
    import subprocess
    import sys

    s, plan = sweep
    live, dead = plan.jobs[0], plan.jobs[1]
    s.mark_running(live)  # this process as the worker, pytest's parent as the launcher: both alive
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = {"job_id": dead.job_id, "kernel": dead.kernel, "label": dead.label, "pid": int(gone.stdout),
              "launcher_pid": os.getpid(), "host": socket.gethostname(), "started": "2020-01-01T00:00:00"}
    (s.root / "running" / f"{dead.job_id}.json").write_text(json.dumps(record))
    (s.root / "running" / f"{plan.jobs[2].job_id}.json").write_text('{"job_id": "ig-')  # its worker killed writing
    assert set(s.running()) == {live.job_id}
    s.clean_stale_running()
    assert sorted(p.name for p in (s.root / "running").iterdir()) == [f"{live.job_id}.json"]
    s.unmark_running(live.job_id)
    assert s.running() == {}


def test_the_manifest_carries_each_kernels_descriptors_of_its_jobs(tmp_path, monkeypatch):
    """describe(params) becomes one typed manifest column per key (the analysis layer joins them to the
    rows); a kernel without describe gives none, and the shards and job ids do not change."""
    plan = expand(parse_grid(GRID.replace("axes: {batch_size: [1, 2]}",
                                          "axes: {batch_size: [1, 2], model: [mlp, resnet18]}"), "t.yaml"))
    s = Sweep(tmp_path / "sweep")
    s.create(plan, tmp_path / "cache")
    manifest = pq.read_table(s.root / "manifest.parquet")
    assert json.loads(manifest.schema.metadata[b"orch.descriptors"]) == ["attack_family", "model_parameters"]
    assert manifest.schema.field("attack_family").type == pa.string()
    assert manifest.schema.field("model_parameters").type == pa.int64()
    rows = manifest.to_pylist()
    assert {r["attack_family"] for r in rows} == {"OP"}
    # The embedded set has 8 classes at 32x32: the MLP is (3*32*32+1)*512 + 513*512 + 513*8 parameters.
    sizes = {json.loads(r["params"])["model"]: r["model_parameters"] for r in rows}
    assert sizes == {"mlp": 1_840_136, "resnet18": 11_172_936}
    assert [job.job_id for job in s.jobs()] == [job.job_id for job in plan.all_jobs]

    import orchestrator.sweep as sweep_module  # a kernel of another project, without describe()
    monkeypatch.setattr(sweep_module, "get_kernel", lambda name: SimpleNamespace(name=name))
    s.create(plan, tmp_path / "cache")  # a relaunch rewrites the manifest
    manifest = pq.read_table(s.root / "manifest.parquet")
    assert "attack_family" not in manifest.column_names and manifest.schema.metadata[b"orch.descriptors"] == b"[]"
