"""The one entry point that runs a job, on the local executor and on SLURM alike.

It calls the kernel through the registry, adds the job's identity, parameters and provenance to every
row, and publishes the shard atomically. A failure leaves a record with its traceback, attempt number
and whether a rerun can change it, and no shard.
"""
from __future__ import annotations

import errno
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

# OS errors of a flaky file system or network: the same job may well succeed on the next attempt.
_TRANSIENT_ERRNOS = {errno.ESTALE, errno.EIO, errno.ETIMEDOUT, errno.EAGAIN, errno.ECONNRESET, errno.EHOSTUNREACH}


def retryable(error: BaseException) -> bool:
    """Whether rerunning the job can change the outcome: memory exhausted (MemoryError, CUDA out of
    memory: torch.OutOfMemoryError, matched by name so that the orchestrator never imports torch), a
    connection or time-out, a transient OS error. Anything else (a malformed data file, a non-finite
    objective, a bad parameter combination) fails the same way again and is failed for good at once."""
    if isinstance(error, (MemoryError, ConnectionError, TimeoutError)):
        return True
    if any(cls.__name__ == "OutOfMemoryError" for cls in type(error).__mro__):
        return True
    if isinstance(error, OSError) and error.errno in _TRANSIENT_ERRNOS:
        return True
    return "CUDA out of memory" in str(error)  # older torch raised a plain RuntimeError


class JobFailed(Exception):
    """What run_job raises when the kernel failed (the failure record is already written). A plain
    message and flag, so that it crosses a process boundary whatever the kernel raised."""

    def __init__(self, message: str, retryable: bool):
        super().__init__(message, retryable)
        self.message = message
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message


@dataclass
class RunContext:
    """What a kernel may use besides its parameters."""

    cache_dir: Path  # shared between sweeps: trained checkpoints and the like
    cpus: int
    job_id: str
    scratch_dir: Path  # this job's own folder for checkpoints of a long attack


def run_job(sweep_root: str, job: JobSpec) -> dict:
    """Runs one job unless its shard exists. Returns a short summary; raises JobFailed if it failed."""
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
        message, again = f"{type(error).__name__}: {error}", retryable(error)
        sweep.record_failure(job, attempt, message, traceback.format_exc(), retryable=again)
        raise JobFailed(message, again) from error
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
