"""Launch-to-all-done time of one 100-job sweep on the local executor and on the local SLURM cluster
(one job per array task, then ten). Needs the cluster: `bash slurm/local-cluster.sh start`.

    python tests/benchmarks/bench_slurm_vs_local.py [ITERATIONS]
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from orchestrator.launch import job_states
from orchestrator.sweep import Sweep

GRID = """
name: bench100
kernel: ig
fixed: {{dataset: embedded, num_images: 50, batch_size: 1, model_state: untrained, iterations: {iterations}}}
seeds: [0, 1]
resources: {{cpus: 1, mem_gb: 1, time_min: 10}}
"""


def orch(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], check=True, capture_output=True)


def attack_seconds(sweep: Path) -> float:
    return pl.read_parquet(sweep / "shards" / "*.parquet")["attack_seconds"].sum()


def main(iterations: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        grid = tmp / "grid.yaml"
        grid.write_text(GRID.format(iterations=iterations))
        started = time.monotonic()
        orch("launch", str(grid), "--sweep-dir", str(tmp / "local"), "--no-report")
        local = time.monotonic() - started
        print(f"local executor, 2 workers: 100 jobs in {local:.1f} s (attack time {attack_seconds(tmp / 'local'):.1f} s)")

        for per_task in (1, 10):
            profile = tmp / f"pack{per_task}.yaml"
            profile.write_text(f"partition: debug\narray_parallelism: 8\njobs_per_task: {per_task}\n")
            sweep = tmp / f"slurm{per_task}"
            started = time.monotonic()
            orch("launch", str(grid), "--sweep-dir", str(sweep), "--executor", "slurm", "--profile", str(profile))
            while {"queued", "running"} & set(job_states(Sweep(sweep), Sweep(sweep).jobs(), 2).values()):
                time.sleep(0.5)
            elapsed = time.monotonic() - started
            done = sum(s == "done" for s in job_states(Sweep(sweep), Sweep(sweep).jobs(), 2).values())
            print(f"SLURM, {per_task} job(s) per array task: {done} jobs done in {elapsed:.1f} s "
                  f"(attack time {attack_seconds(sweep):.1f} s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
