"""The one entry point that runs a job, on the local executor and on SLURM alike.

It calls the kernel through the registry, adds the job's identity, parameters and provenance to every
row, and publishes the shard atomically. A failure leaves a record with its traceback and attempt
number, and no shard.
"""
from __future__ import annotations

import os
import shutil
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from orchestrator.expand import JobSpec
from orchestrator.provenance import git_sha
from orchestrator.registry import get_kernel
from orchestrator.sweep import Sweep, now

_ARROW_TYPES = {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}


@dataclass
class RunContext:
    """What a kernel may use besides its parameters."""

    cache_dir: Path  # shared between sweeps: trained checkpoints and the like
    cpus: int
    job_id: str
    scratch_dir: Path  # this job's own folder for checkpoints of a long attack


def run_job(sweep_root: str, job: JobSpec) -> dict:
    """Runs one job unless its shard exists. Returns a short summary; raises if the kernel failed."""
    sweep = Sweep(sweep_root)
    if job.job_id in sweep.completed():
        return {"job_id": job.job_id, "status": "already-done", "seconds": 0.0}
    attempt = sweep.attempts(job.job_id) + 1
    started, clock = now(), time.monotonic()
    kernel = get_kernel(job.kernel)
    scratch = sweep.root / "scratch" / job.job_id
    context = RunContext(cache_dir=sweep.cache_dir, cpus=int(job.resources.get("cpus", 1)), job_id=job.job_id,
                         scratch_dir=scratch)
    try:
        result = kernel.load()(dict(job.params), context)
        seconds = time.monotonic() - clock
        meta = sweep.meta()
        job_columns = {"job_id": job.job_id, "job_label": job.label, "kernel": job.kernel,
                       "kernel_version": kernel.version, "sweep": meta["name"], "scale": meta["scale"]}
        run_columns = {"status": "ok", "attempt": attempt, "host": socket.gethostname(), "started_at": started,
                       "finished_at": now(), "job_seconds": seconds, "git_sha": git_sha(),
                       "scheduler_job": scheduler_job()}
        rows = shard_table(kernel, job, result.rows, result.column_types, job_columns, run_columns)
        images = None
        if result.images:
            images = pa.Table.from_pylist([{"job_id": job.job_id, **image} for image in result.images])
        sweep.publish(job, rows, images)
        shutil.rmtree(scratch, ignore_errors=True)  # checkpoints of a finished job are dead weight
    except Exception as error:
        sweep.record_failure(job, attempt, f"{type(error).__name__}: {error}", traceback.format_exc())
        raise
    return {"job_id": job.job_id, "status": "done", "seconds": seconds}


def scheduler_job() -> str | None:
    """The SLURM job (array id _ task) this ran in, if any."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")


def shard_table(kernel, job: JobSpec, rows: list[dict], column_types: dict[str, str], job_columns: dict,
                run_columns: dict) -> pa.Table:
    """Long format: job identity, every parameter, the kernel's columns, then provenance. Types come
    from the parameter declarations and the kernel's column_types so that every shard of a sweep has
    the same schema, also where a column is null throughout one job."""
    if not rows:
        raise ValueError(f"kernel '{kernel.name}' returned no rows")
    n = len(rows)
    arrays, names = [], []

    def add(name, values, arrow_type=None):
        if name in names:
            raise ValueError(f"column '{name}' of kernel '{kernel.name}' clashes with a parameter or a runner column")
        array = pa.array(values, type=arrow_type)
        if array.type == pa.null():
            raise TypeError(f"column '{name}' of kernel '{kernel.name}' is null in every row and has no declared "
                            "type: add it to KernelResult.column_types")
        names.append(name)
        arrays.append(array)

    for name, value in job_columns.items():
        add(name, [value] * n, pa.string())
    for name, param in kernel.params.items():
        add(name, [job.params.get(name)] * n, _ARROW_TYPES[param.type])
    for name in rows[0]:
        declared = column_types.get(name)
        add(name, [r.get(name) for r in rows], pa.type_for_alias(declared) if declared else None)
    for name, value in run_columns.items():
        add(name, [value] * n, pa.string() if name in ("git_sha", "scheduler_job") else None)
    return pa.Table.from_arrays(arrays, names=names)
