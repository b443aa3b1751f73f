"""Dispatch to a real one-node SLURM cluster started on this machine by slurm/local-cluster.sh
(needs root, as in CI). No fake sbatch: every test submits real job arrays and waits for them; the one
fault injected (tests/fault_sbatch/sbatch) wraps the real sbatch. The publishing of two copies of one
job needs no cluster and runs everywhere."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.expand import expand
from orchestrator.grid import parse_grid
from orchestrator.launch import job_states
from orchestrator.sweep import Sweep
from tests.conftest import ROOT, TINY_GRID, orch

SCRIPT = ROOT / "slurm" / "local-cluster.sh"
FAULT_SBATCH = ROOT / "tests" / "fault_sbatch"
KEEP_CLUSTER = "ORCH_KEEP_CLUSTER"  # =1: leave the daemons running after the tests


def cluster(*args: str) -> None:
    result = subprocess.run(["bash", str(SCRIPT), "start", *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def cluster_is_up() -> bool:
    return subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True, timeout=60).returncode == 0


@pytest.fixture(scope="module")
def local_cluster():
    """Starts the cluster, and stops it afterwards unless it was running before or $ORCH_KEEP_CLUSTER=1:
    the suite leaves behind no daemon it started."""
    was_up = cluster_is_up()
    cluster()
    yield
    if was_up or os.environ.get(KEEP_CLUSTER) == "1":
        cluster()  # leave the default configuration behind
    else:
        subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=120, check=True)


def on_cluster(test):
    """A test that submits to the local cluster: it needs root to start one."""
    test = pytest.mark.usefixtures("local_cluster")(test)
    return pytest.mark.skipif(os.geteuid() != 0, reason="starting the local SLURM cluster needs root")(test)


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


@on_cluster
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


@on_cluster
def test_small_max_array_size_gives_several_arrays(tmp_path):
    cluster("--max-array-size", "2")
    text = TINY.replace("num_images: 4", "num_images: 5").replace("[1, 2]", "[1]") \
               .replace("[untrained, trained]", "[untrained]")
    sweep = launch(tmp_path, grid(tmp_path, text))
    sizes = [len(r["tasks"]) for r in submissions(sweep)]
    assert sizes == [2, 2, 1]
    assert set(wait_until_idle(sweep).values()) == {"done"}
    cluster()


@on_cluster
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


@on_cluster
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


@on_cluster
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


@on_cluster
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


# --- two copies of one job (no cluster needed) ------------------------------------------------------

COPIES_GRID = "name: t\nkernel: ig\nfixed: {num_images: 4, iterations: 2}\naxes: {batch_size: [1, 2]}\n"


@pytest.fixture
def fresh_sweep(tmp_path):
    plan = expand(parse_grid(COPIES_GRID, "t.yaml"))
    sweep = Sweep(tmp_path / "sweep")
    sweep.create(plan, tmp_path / "cache")
    return sweep, plan.jobs[0]


def copy_of(job, value: float):
    """What one copy of a job publishes: its rows and its images carry the same mark."""
    rows = pa.table({"job_id": [job.job_id], "value": [value]})
    images = pa.table({"job_id": [job.job_id], "image_index": [0], "original_png": [b"o"],
                       "reconstruction_png": [f"copy {value}".encode()]})
    return rows, images


def published(sweep: Sweep, job) -> tuple[list, list]:
    rows = pq.read_table(sweep.result_path(job))["value"].to_pylist()
    images = pq.read_table(sweep.root / "images" / f"{job.job_id}.parquet")["reconstruction_png"].to_pylist()
    return rows, images


def test_two_copies_of_one_job_publish_one_shard_and_its_own_images(fresh_sweep):
    sweep, job = fresh_sweep
    assert sweep.publish(job, *copy_of(job, 1.0)) is True
    assert sweep.publish(job, *copy_of(job, 2.0)) is False
    assert published(sweep, job) == ([1.0], [b"copy 1.0"])
    assert sorted(os.listdir(sweep.root / "images")) == [f"{job.job_id}.parquet"]  # no staged rows left
    assert os.listdir(sweep.root / "tmp") == []


def test_a_copy_killed_between_its_images_and_its_shard_is_completed_by_the_next(fresh_sweep, monkeypatch):
    sweep, job = fresh_sweep
    real_link = os.link

    def killed_at_the_shard(source, target):
        if Path(target) == sweep.result_path(job):
            raise KeyboardInterrupt  # the copy dies between its two links
        return real_link(source, target)

    monkeypatch.setattr(os, "link", killed_at_the_shard)
    with pytest.raises(KeyboardInterrupt):
        sweep.publish(job, *copy_of(job, 1.0))
    monkeypatch.setattr(os, "link", real_link)
    assert job.job_id not in sweep.completed()  # so the job reruns
    # The rerun's own result differs; it publishes the first copy's staged rows beside that copy's images.
    assert sweep.publish(job, *copy_of(job, 2.0)) is False
    assert published(sweep, job) == ([1.0], [b"copy 1.0"])
    assert sorted(os.listdir(sweep.root / "images")) == [f"{job.job_id}.parquet"]


def test_images_from_before_the_copy_tag_are_replaced_by_a_rerun(fresh_sweep):
    sweep, job = fresh_sweep
    _, old_images = copy_of(job, 1.0)
    pq.write_table(old_images, sweep.root / "images" / f"{job.job_id}.parquet")  # no shard, no orch.copy
    assert sweep.publish(job, *copy_of(job, 2.0)) is True
    assert published(sweep, job) == ([2.0], [b"copy 2.0"])


# --- launches that fail or die ------------------------------------------------------------------------

ONE_ARRAY = TINY.replace("[1, 2]", "[1]").replace("[untrained, trained]", "[untrained]")  # 4 jobs, no training


def faulty_sbatch(tmp_path, **faults: int) -> dict:
    """Environment for `orch` with tests/fault_sbatch first on PATH and the given faults."""
    return {"PATH": f"{FAULT_SBATCH}:{os.environ['PATH']}", "ORCH_FAULT_COUNTER": str(tmp_path / "sbatch-calls"),
            "ORCH_CACHE_DIR": str(tmp_path / "cache"), **{k: str(v) for k, v in faults.items()}}


def launch_killed_after_sbatch(tmp_path, name: str) -> Sweep:
    result = orch("launch", str(grid(tmp_path, ONE_ARRAY)), "--sweep-dir", str(tmp_path / name), "--executor",
                  "slurm", "--profile", "local", env=faulty_sbatch(tmp_path, ORCH_FAULT_KILL_AFTER_SBATCH=1))
    assert result.returncode == -signal.SIGKILL, result.stderr
    sweep = Sweep(tmp_path / name)
    assert not (sweep.root / "scheduler" / "submissions.jsonl").exists()  # SLURM has it, the sweep does not
    return sweep


@on_cluster
def test_launcher_killed_right_after_sbatch_then_resume_runs_every_job_once(tmp_path):
    sweep = launch_killed_after_sbatch(tmp_path, "sweep")
    assert set(job_states(sweep, sweep.jobs(), 2).values()) == {"queued"}  # the orphan, found by its name
    resumed = orch("resume", str(sweep.root), "--executor", "slurm", "--profile", "local",
                   env={"ORCH_CACHE_DIR": str(tmp_path / "cache")})
    assert resumed.returncode == 0, resumed.stderr
    assert set(wait_until_idle(sweep).values()) == {"done"}
    submitted = [job for r in submissions(sweep) for task in r["tasks"] for job in task]
    assert sorted(submitted) == sorted(j.job_id for j in sweep.jobs())  # each job in one recorded array
    rows = pl.read_parquet(sweep.root / "shards" / "*.parquet")
    assert rows["job_id"].n_unique() == 4 and rows["attempt"].to_list() == [1, 1, 1, 1]
    # One task log per job: the orphan, held and without its pickles, was cancelled before it ran.
    assert len(list((sweep.root / "logs" / "slurm").glob("*_0_log.out"))) == 4
    assert not (sweep.root / "failures").exists() or not os.listdir(sweep.root / "failures")


@on_cluster
def test_an_array_task_runs_a_group_and_each_job_keeps_its_shard(tmp_path):
    """group_size 2, jobs_per_task 1: the four fan-out jobs go in two array tasks of two jobs each."""
    sweep = launch(tmp_path, grid(tmp_path, ONE_ARRAY.replace("time_min: 10}", "time_min: 10, group_size: 2}")))
    (record,) = submissions(sweep)
    assert [len(task) for task in record["tasks"]] == [2, 2]
    assert set(wait_until_idle(sweep).values()) == {"done"}
    rows = pl.read_parquet(sweep.root / "shards" / "*.parquet")
    assert rows["job_id"].n_unique() == 4 and rows["scheduler_job"].n_unique() == 2


@on_cluster
def test_cancel_finds_an_orphaned_array(tmp_path):
    sweep = launch_killed_after_sbatch(tmp_path, "orphan")
    result = orch("cancel", str(sweep.root))
    assert result.returncode == 0 and "cancelled arrays:" in result.stdout, result.stdout + result.stderr
    assert set(wait_until_idle(sweep, timeout=60).values()) == {"pending"}  # never ran, not held any more


@on_cluster
def test_a_failed_sbatch_says_what_was_and_was_not_submitted(tmp_path):
    # The training array goes through; sbatch refuses the next one.
    result = orch("launch", str(grid(tmp_path, TINY)), "--sweep-dir", str(tmp_path / "s"), "--executor", "slurm",
                  "--profile", "local", env=faulty_sbatch(tmp_path, ORCH_FAULT_FAIL_SBATCH_AT=2))
    message = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    sweep = Sweep(tmp_path / "s")
    (train,) = submissions(sweep)
    refusal = [line for line in message if "sbatch refused" in line]
    assert refusal and "Invalid account or account/partition combination" in refusal[0], message
    assert len(message[message.index(refusal[0]):]) == 3, message
    assert f"1 jobs in array(s) {train['array_id']} were submitted and recorded; 12 jobs were not submitted" \
        in result.stderr
    assert orch("cancel", str(sweep.root)).returncode == 0


def launch_refused(tmp_path) -> str:
    """Launches ONE_ARRAY with the `local` profile, expecting a refusal: exit 2 within 10 s, at most three
    lines and no traceback, and nothing beside the grid file (no sweep folder, no cache). Returns stderr."""
    started = time.monotonic()
    result = orch("launch", str(grid(tmp_path, ONE_ARRAY)), "--sweep-dir", str(tmp_path / "s"), "--executor",
                  "slurm", "--profile", "local", env={"ORCH_CACHE_DIR": str(tmp_path / "cache")})
    elapsed = time.monotonic() - started
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3 and elapsed < 10, (elapsed, result.stderr)
    assert sorted(os.listdir(tmp_path)) == ["grid.yaml"]
    return result.stderr


@on_cluster
def test_a_partition_that_does_not_exist_is_refused_before_anything_exists(tmp_path):
    from orchestrator.executors.slurm import SlurmExecutor
    from orchestrator.profiles import load_profile

    cluster("--partition", "batch")
    try:
        message = launch_refused(tmp_path)
        assert "unknown partition 'debug' on this cluster (valid: batch)" in message, message
        batch = tmp_path / "batch.yaml"
        batch.write_text("partition: batch\n")
        SlurmExecutor(load_profile(str(batch))).check()  # the partition that exists passes
    finally:
        cluster()


@on_cluster
def test_an_unreachable_controller_is_refused_before_anything_exists(tmp_path):
    subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=120, check=True)
    try:
        message = launch_refused(tmp_path)
        assert "the SLURM controller does not answer, so nothing was created or submitted" in message, message
    finally:
        cluster()
