"""The one entry point that runs jobs, on the local executor and on SLURM alike: run_group.

It calls the kernel through the registry (once for a group of jobs), adds each job's identity,
parameters and provenance to its rows, and publishes each job's shard atomically. A failure leaves a
record with its traceback, attempt number and whether a rerun can change it, and no shard.
"""
from __future__ import annotations

import errno
import os
import shutil
import socket
import time
import traceback
from datetime import datetime

import pyarrow as pa

from orchestrator.contracts import JobRun, Kernel, KernelResult, RunContext, declared_columns, load_group_run
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


def run_job(sweep_root: str, job: JobSpec) -> JobRun:
    """Runs one job unless its shard exists: publishes its shard, or writes its failure record."""
    return run_group(sweep_root, [job])[0]


def run_group(sweep_root: str, jobs: list[JobSpec]) -> list[JobRun]:
    """Runs a group of jobs of one kernel (see orchestrator.groups) with one load of the kernel: one
    JobRun per job, in order. Each job publishes its own shard or writes its own failure record, so
    one failed job fails alone. A job whose shard exists is skipped. A group of one calls the
    kernel's run function, exactly as a job on its own."""
    sweep = Sweep(sweep_root)
    completed = sweep.completed()
    todo = [job for job in jobs if job.job_id not in completed]
    ran: dict[str, JobRun] = {}
    if todo:
        kernel = get_kernel(todo[0].kernel)
        attempts = [sweep.attempts(job.job_id) + 1 for job in todo]
        contexts = [RunContext(cache_dir=sweep.cache_dir, cpus=int(job.resources.get("cpus", 1)),
                               job_id=job.job_id, scratch_dir=sweep.root / "scratch" / job.job_id) for job in todo]
        started, clock = now(), time.monotonic()
        if len(todo) == 1:
            try:
                outcomes = [kernel.load()(dict(todo[0].params), contexts[0])]
            except Exception as error:
                outcomes = [error]
        else:
            try:
                outcomes = load_group_run(kernel)([dict(job.params) for job in todo], contexts)
                if len(outcomes) != len(todo):
                    raise RuntimeError(f"kernel '{kernel.name}' returned {len(outcomes)} outcomes for a group of "
                                       f"{len(todo)} jobs")
            except Exception as error:  # the group as a whole failed (its model or data did not load)
                outcomes = [error] * len(todo)
        # A group's jobs ran together: each is charged its share of the group's time.
        seconds = (time.monotonic() - clock) / len(todo)
        for job, attempt, context, outcome in zip(todo, attempts, contexts, outcomes):
            ran[job.job_id] = _conclude(sweep, kernel, job, attempt, context, outcome, started, seconds)
    return [ran.get(job.job_id) or JobRun(job.job_id, "already-done") for job in jobs]


def _conclude(sweep: Sweep, kernel: Kernel, job: JobSpec, attempt: int, context: RunContext,
              outcome: KernelResult | Exception, started: datetime, seconds: float) -> JobRun:
    """Publishes one job's result, or records its failure (also one raised while building its shard)."""
    if isinstance(outcome, Exception):
        return _failed(sweep, job, attempt, outcome, seconds)
    try:
        meta = sweep.meta()
        job_columns = {"job_id": job.job_id, "job_label": job.label, "kernel": job.kernel,
                       "kernel_version": kernel.version, "sweep": meta["name"], "scale": meta["scale"]}
        run_columns = {"status": "ok", "attempt": attempt, "host": socket.gethostname(), "started_at": started,
                       "finished_at": now(), "job_seconds": seconds, "git_sha": git_sha(),
                       "scheduler_job": scheduler_job()}
        column_types = {**declared_columns(kernel), **outcome.column_types}
        rows = shard_table(kernel, job, outcome.rows, column_types, job_columns, run_columns)
        images = None
        if outcome.images:
            images = pa.Table.from_pylist([{"job_id": job.job_id, **image} for image in outcome.images])
        sweep.publish(job, rows, images)
        shutil.rmtree(context.scratch_dir, ignore_errors=True)  # checkpoints of a finished job are dead weight
    except Exception as error:
        return _failed(sweep, job, attempt, error, seconds)
    return JobRun(job.job_id, "done", seconds)


def _failed(sweep: Sweep, job: JobSpec, attempt: int, error: Exception, seconds: float) -> JobRun:
    message, again = f"{type(error).__name__}: {error}", retryable(error)
    sweep.record_failure(job, attempt, message, "".join(traceback.format_exception(error)), retryable=again)
    return JobRun(job.job_id, "failed", seconds, message, again)


def scheduler_job() -> str | None:
    """The SLURM job (array id _ task) this ran in, if any."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")


def shard_table(kernel, job: JobSpec, rows: list[dict], column_types: dict[str, str], job_columns: dict,
                run_columns: dict) -> pa.Table:
    """Long format: job identity, every parameter, the kernel's columns, then provenance. Types come
    from the parameter declarations and the kernel's declared column types (`column_types`: run_group
    merges the kernel's `columns` into the result's) so that every shard of a sweep has the same
    schema, also where a column is null throughout one job."""
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
                            "type: declare it in the kernel's columns")
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
