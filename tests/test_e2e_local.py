"""A real sweep on the local executor: kill the launcher mid-sweep, launch again, check every job is
present exactly once and readable, then status and report."""
import json
import os
import signal
import subprocess
import sys
import time

import polars as pl
import pyarrow.parquet as pq

from tests.conftest import ROOT, TINY_GRID, orch

TINY = TINY_GRID.format(iterations=12)


def shard_names(sweep):
    return sorted(p.name for p in (sweep / "shards").glob("*.parquet"))


def test_kill_then_launch_again_completes_every_job_once(tmp_path, write_grid):
    grid, sweep = write_grid(TINY), tmp_path / "sweep"
    env = {**os.environ, "ORCH_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "orchestrator.cli", "launch", str(grid), "--sweep-dir", str(sweep),
               "--workers", "2", "--no-report"]
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while len(shard_names(sweep)) < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, "the sweep ended before it could be killed: make TINY longer"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    time.sleep(3)
    after_kill = shard_names(sweep)
    time.sleep(5)
    assert shard_names(sweep) == after_kill, "workers kept writing after the launcher was killed"

    second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "12 jobs + 1 prerequisite" in second.stderr  # counted as `orch plan` counts them
    assert f"{len(after_kill)} already done" in second.stderr or "already done" in second.stderr

    manifest = pq.read_table(sweep / "manifest.parquet").to_pandas()
    grid_jobs = set(manifest.loc[~manifest.prerequisite, "job_id"])
    assert len(grid_jobs) == 2 * (4 + 2)
    assert {n[:-8] for n in shard_names(sweep)} == grid_jobs
    assert len(list((sweep / "prerequisites").glob("*.parquet"))) == 1
    rows = pl.read_parquet(sweep / "shards" / "*.parquet")  # every shard readable, one schema
    per_job = rows.group_by("job_id").agg(pl.len(), pl.col("batch_size").first(), pl.col("image_index").n_unique())
    assert (per_job["len"] == per_job["batch_size"]).all() and (per_job["image_index"] == per_job["len"]).all()
    assert rows.filter(pl.col("batch_size") == 1)["image_index"].n_unique() == 4
    assert rows["psnr"].is_finite().all() and rows["ssim"].is_not_null().all()
    assert not list((sweep / "tmp").iterdir())

    # A third launch runs nothing and rewrites nothing.
    stamps = {p: p.stat().st_mtime_ns for p in (sweep / "shards").iterdir()}
    third = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert "0 to run" in third.stderr
    assert {p: p.stat().st_mtime_ns for p in (sweep / "shards").iterdir()} == stamps

    status = orch("status", str(sweep))
    assert status.returncode == 0 and "12" in status.stdout
    report = orch("report", str(sweep))
    assert report.returncode == 0, report.stderr
    for name in ("summary.csv", "summary.md", "metrics.png", "reconstructions.png"):
        assert (sweep / "report" / name).stat().st_size > 0
    summary = pl.read_csv(sweep / "report" / "summary.csv")
    assert summary.height == 4 and set(summary["images"]) == {4}


def test_jobs_failing_for_good_are_recorded_once_grouped_and_exit_1(tmp_path, write_grid):
    """Truncated data fails the same way on every attempt: each job is failed for good at its first
    attempt (no retry), status groups the reason and says a rerun cannot help, and the launch exits 1."""
    root = tmp_path / "data" / "cifar-10-batches-py"
    root.mkdir(parents=True)
    (root / "test_batch").write_bytes(b"\x80\x04truncated")
    grid = write_grid(f"""
name: broken
kernel: ig
fixed: {{dataset: cifar10, data_root: {tmp_path / 'data'}, num_images: 2, iterations: 1}}
axes: {{batch_size: [1, 2]}}
max_attempts: 2
""")
    sweep = tmp_path / "sweep"
    result = orch("launch", str(grid), "--sweep-dir", str(sweep), "--workers", "2", "--no-report")
    assert result.returncode == 1, result.stderr
    assert "0 done, 3 failed" in result.stderr
    records = [json.loads(p.read_text()) for p in (sweep / "failures").glob("*.json")]
    assert len(records) == 3 and not any(r["retryable"] for r in records)
    status = orch("status", str(sweep))
    assert "not a readable CIFAR python batch" in status.stdout and "3" in status.stdout
    assert "fails the same way again" in status.stdout
    again = orch("launch", str(grid), "--sweep-dir", str(sweep), "--no-report")
    assert "3 failed for good (--retry-failed to rerun)" in again.stderr and "0 to run" in again.stderr
    assert again.returncode == 1
