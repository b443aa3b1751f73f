"""Dispatch to a real one-node SLURM cluster started on this machine by slurm/local-cluster.sh
(needs root, as in CI). No fake sbatch: every test submits real job arrays and waits for them."""
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from orchestrator.launch import job_states
from orchestrator.sweep import Sweep
from tests.conftest import ROOT, TINY_GRID, orch

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starting the local SLURM cluster needs root")
SCRIPT = ROOT / "slurm" / "local-cluster.sh"


def cluster(*args: str) -> None:
    result = subprocess.run(["bash", str(SCRIPT), "start", *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module", autouse=True)
def local_cluster():
    cluster()
    yield
    cluster()  # leave the default configuration behind


def grid(tmp_path, text: str) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


def launch(tmp_path, grid_path, profile="local", sweep="sweep"):
    env = {"ORCH_CACHE_DIR": str(tmp_path / "cache")}
    result = orch("launch", str(grid_path), "--sweep-dir", str(tmp_path / sweep), "--executor", "slurm",
                  "--profile", profile, env=env)
    assert result.returncode == 0, result.stderr
    return Sweep(tmp_path / sweep)


def wait_until_idle(sweep: Sweep, timeout: float = 420) -> dict[str, str]:
    """Polls the merged queue-and-shards view until SLURM holds none of the sweep's jobs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = job_states(sweep, sweep.jobs(), 2)
        if not {"queued", "running"} & set(states.values()):
            return states
        time.sleep(1)
    raise AssertionError(f"sweep still busy after {timeout}s: {states}")


def submissions(sweep: Sweep) -> list[dict]:
    return [json.loads(line) for line in (sweep.root / "scheduler" / "submissions.jsonl").read_text().splitlines()]


TINY = TINY_GRID.format(iterations=6)


def test_sweep_completes_on_slurm_and_status_agrees(tmp_path):
    # Three jobs per array task: each task pays the interpreter and torch start-up once.
    packed = tmp_path / "packed.yaml"
    packed.write_text("partition: debug\njobs_per_task: 3\n")
    sweep = launch(tmp_path, grid(tmp_path, TINY), profile=str(packed))
    records = submissions(sweep)
    # training first; untrained attacks do not wait for it, trained ones depend on its array
    train = records[0]
    assert train["tasks"] == [[j.job_id for j in sweep.jobs() if j.prerequisite]]
    waiting = [r for r in records if r["dependency"]]
    assert waiting and all(r["dependency"] == f"afterok:{train['array_id']}" for r in waiting)
    assert [len(task) for r in records[1:] for task in r["tasks"]] == [3, 3, 3, 3]
    states = wait_until_idle(sweep)
    assert set(states.values()) == {"done"}
    status = orch("status", str(sweep.root))
    assert "│ grid         │ 12   │ 0      │ 0       │ 0      │ 0    │ 0       │" in status.stdout, status.stdout
    rows = pl.read_parquet(sweep.root / "shards" / "*.parquet")
    assert rows["job_id"].n_unique() == 12 and rows["scheduler_job"].is_not_null().all()
    logs = orch("logs", str(sweep.root), rows["job_id"][0])
    assert "Job completed successfully" in logs.stdout


def test_small_max_array_size_gives_several_arrays(tmp_path):
    cluster("--max-array-size", "2")
    text = TINY.replace("num_images: 4", "num_images: 5").replace("[1, 2]", "[1]") \
               .replace("[untrained, trained]", "[untrained]")
    sweep = launch(tmp_path, grid(tmp_path, text))
    sizes = [len(r["tasks"]) for r in submissions(sweep)]
    assert sizes == [2, 2, 1]
    assert set(wait_until_idle(sweep).values()) == {"done"}
    cluster()


def test_requeued_attack_resumes_from_its_checkpoint(tmp_path):
    text = TINY.replace("iterations: 6", "iterations: 40, checkpoint_every_s: 0.5, batch_index: 0") \
               .replace("[1, 2]", "[1]").replace("[untrained, trained]", "[untrained]")
    sweep = launch(tmp_path, grid(tmp_path, text))
    (job,) = sweep.jobs()
    checkpoint = sweep.root / "scratch" / job.job_id / "attack.pt"
    deadline = time.monotonic() + 180
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), "the attack never wrote a checkpoint"
    time.sleep(2)
    slurm_id = submissions(sweep)[0]["array_id"]
    subprocess.run(["scontrol", "requeue", slurm_id], check=True, capture_output=True)
    # SLURM holds a requeued job back for two minutes (Reason=BeginTime) once its old process is gone;
    # an operator may release it then, as we do here to keep the test short.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = subprocess.run(["squeue", "--noheader", "-j", slurm_id, "--format=%T %r"], capture_output=True,
                               text=True).stdout.split()
        if state == ["PENDING", "BeginTime"]:
            break
        time.sleep(0.2)
    subprocess.run(["scontrol", "update", f"JobId={slurm_id}", "StartTime=now"], check=True, capture_output=True)
    assert set(wait_until_idle(sweep).values()) == {"done"}
    row = pl.read_parquet(sweep.root / "shards" / f"{job.job_id}.parquet").row(0, named=True)
    assert row["interruptions"] >= 1
    assert 0 < row["resumed_from_iteration"] < 40 and row["iterations_done"] == 40
    assert not checkpoint.parent.exists()  # a finished job's checkpoints are removed


def test_cancelled_tasks_are_exactly_what_resume_reruns(tmp_path):
    text = TINY.replace("[1, 2]", "[1]").replace("[untrained, trained]", "[untrained]")
    sweep = launch(tmp_path, grid(tmp_path, text))
    (record,) = submissions(sweep)
    # Two CPUs: tasks 0 and 1 run, the rest wait; cancel the two waiting ones.
    cancelled = [record["tasks"][2][0], record["tasks"][3][0]]
    subprocess.run(["scancel", f"{record['array_id']}_2", f"{record['array_id']}_3"], check=True)
    states = wait_until_idle(sweep)
    assert sorted(j for j, s in states.items() if s == "lost") == sorted(cancelled)
    assert sum(s == "done" for s in states.values()) == 2

    # Two resumes at once: the sweep lock and the queue check let only one submission through.
    command = ["resume", str(sweep.root), "--executor", "slurm", "--profile", "local"]
    first = subprocess.Popen([os.sys.executable, "-m", "orchestrator.cli", *command], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = orch(*command)
    first.communicate(timeout=120)
    resubmitted = [job for r in submissions(sweep)[1:] for task in r["tasks"] for job in task]
    assert sorted(resubmitted) == sorted(cancelled), second.stderr
    assert set(wait_until_idle(sweep).values()) == {"done"}
    assert len(list((sweep.root / "shards").glob("*.parquet"))) == 4


def test_misspelled_profile_key_fails_before_submitting(tmp_path):
    profile = tmp_path / "site.yaml"
    profile.write_text("partiton: debug\n")
    def slurm_ids():
        return set(subprocess.run(["squeue", "--noheader", "--format=%A"], capture_output=True, text=True).stdout.split())

    before = slurm_ids()
    result = orch("launch", str(grid(tmp_path, TINY)), "--sweep-dir", str(tmp_path / "s"), "--executor", "slurm",
                  "--profile", str(profile))
    assert result.returncode == 2
    assert "partiton: unknown key 'partiton'; did you mean 'partition'?" in result.stderr
    assert str(profile) in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s").exists()
    assert not slurm_ids() - before  # nothing new was submitted


def test_dask_aggregation_on_slurm_workers_gives_the_polars_numbers(tmp_path):
    """The same factor table from two dask-jobqueue workers that SLURM ran as jobs of their own."""
    from analysis.dask_path import slurm_client, summarize_dask
    from analysis.shards import scan_shards
    from analysis.tables import summarize
    from tests.benchmarks.bench_analysis_data import write_sweep

    by = ["batch_size", "model_state"]
    sweep = write_sweep(tmp_path, {"batch_size": [1, 4, 16], "model_state": ["untrained", "trained"]}, seeds=3)
    logs = tmp_path / "dask-logs"
    with slurm_client(workers=2, queue="debug", memory="1GB", walltime="00:10:00", log_directory=str(logs),
                      timeout_s=240) as client:
        hosts = client.run(lambda: os.environ.get("SLURM_JOB_ID"))
        on_slurm = summarize_dask(sweep / "shards", by, client=client, files_per_partition=4)
    assert len(hosts) == 2 and all(job_id for job_id in hosts.values())  # each worker is a SLURM job
    local = summarize(scan_shards(sweep), by)
    assert local.select(*by, "images", "jobs").equals(on_slurm.select(*by, "images", "jobs"))
    for column in [c for c in local.columns if c.endswith(("_mean", "_std"))]:
        assert np.allclose(local[column].to_numpy(), on_slurm[column].to_numpy(), rtol=1e-12, atol=1e-12)
