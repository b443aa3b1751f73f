"""Orchestrator benchmarks; prints figures, asserts nothing (timings belong here, not in tests).

    python tests/benchmarks/bench_orchestrator.py [SWEEP_DIR]

1. validating and expanding a grid of 100,000 jobs;
2. deciding what to resume in a sweep directory holding 10,000 finished shards;
3. the orchestrator's own cost per job (start, write, bookkeeping) with a kernel that does nothing,
   and, given a finished SWEEP_DIR, the same cost against that sweep's attack time.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import polars as pl

import orchestrator.runner as runner_module
from orchestrator import registry
from orchestrator.expand import expand
from orchestrator.grid import parse_grid
from orchestrator.launch import pending_jobs
from orchestrator.runner import run_job
from orchestrator.sweep import Sweep


def grid_text(lrs: int, tvs: int, seeds: int) -> str:
    return f"""
name: bench
kernel: ig
fixed: {{dataset: embedded, num_images: 1, batch_size: 1, iterations: 1}}
axes:
  lr: {[round(0.001 * (i + 1), 6) for i in range(lrs)]}
  tv: {[round(1e-4 * (i + 1), 8) for i in range(tvs)]}
seeds: {list(range(seeds))}
"""


def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def bench_expand() -> None:
    text = grid_text(50, 50, 40)
    seconds, plan = best_of(lambda: expand(parse_grid(text, "bench.yaml")))
    print(f"expand + validate: {len(plan.jobs):,} jobs in {seconds:.2f} s "
          f"({seconds / len(plan.jobs) * 1e6:.1f} us per job)")


def noop_kernel(params, ctx):
    from kernels.kernel import KernelResult

    return KernelResult(rows=[{"image_index": i, "psnr": 1.0, "ssim": 0.5} for i in range(params["batch_size"])])


def bench_resume_and_overhead(sweep_dir: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        plan = expand(parse_grid(grid_text(100, 100, 1), "bench.yaml"))
        sweep = Sweep(Path(tmp) / "sweep")
        sweep.create(plan, Path(tmp) / "cache")
        # The no-op kernel stands in for the attack so that only the orchestrator's work is timed.
        noop_columns = {"image_index": "int64", "psnr": "float64", "ssim": "float64"}
        runner_module.get_kernel = lambda name: replace(registry.get_kernel(name), run=noop_kernel, columns=noop_columns)
        started = time.perf_counter()
        for job in plan.jobs:
            run_job(str(sweep.root), job)
        per_job = (time.perf_counter() - started) / len(plan.jobs)
        print(f"orchestrator work per job (no-op kernel, in process: done-check, attempt count, shard "
              f"build and atomic publish): {per_job * 1e3:.2f} ms over {len(plan.jobs):,} jobs")

        seconds, pending = best_of(lambda: pending_jobs(Sweep(sweep.root), Sweep(sweep.root).jobs(), 2, False))
        print(f"resume decision over {len(sweep.completed()):,} finished shards: {seconds:.2f} s "
              f"(read manifest, list shards and failures; {len(pending.jobs)} left to run)")

    code = "import orchestrator.runner, torch, kernels.jobs.ig, kernels.attacks.ig"  # what a worker loads for its first IG job
    seconds, _ = best_of(lambda: subprocess.run([sys.executable, "-c", code], check=True))
    print(f"worker start-up (interpreter + torch + kernel imports, once per worker process): {seconds:.2f} s")

    if sweep_dir:
        rows = pl.read_parquet(Path(sweep_dir) / "shards" / "*.parquet")
        jobs = rows.group_by("job_id").agg(pl.col("job_seconds").first(), pl.col("attack_seconds").first(),
                                           pl.col("kernel_seconds").first())
        attack, kernel, job = (jobs[c].sum() for c in ("attack_seconds", "kernel_seconds", "job_seconds"))
        print(f"{sweep_dir}: {len(jobs)} jobs, attack {attack:.1f} s, kernel (data, model, metrics, "
              f"attack) {kernel:.1f} s, runner {job:.1f} s: orchestrator share "
              f"{(job - kernel) / job * 100:.2f}% of job time; set-up and scoring inside the kernel "
              f"{(kernel - attack) / job * 100:.1f}%")


if __name__ == "__main__":
    bench_expand()
    bench_resume_and_overhead(sys.argv[1] if len(sys.argv) > 1 else None)
