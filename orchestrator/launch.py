"""Launch and resume: expand, check, subtract what is done, hand the rest to an executor."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import OrchError
from orchestrator.expand import JobSpec, Plan, preflight
from orchestrator.provenance import describe_launch
from orchestrator.sweep import Sweep, now

CACHE_ENV = "ORCH_CACHE_DIR"


def default_sweep_dir(plan: Plan) -> Path:
    grid = plan.grid
    name = grid.name if grid.scale is None or not grid.scales else f"{grid.name}-{grid.scale}"
    return Path("runs") / name


def default_cache_dir(sweep_root: Path) -> Path:
    """Shared by the sweeps beside each other, so a trained checkpoint is made once."""
    return Path(os.environ.get(CACHE_ENV) or Path(sweep_root).resolve().parent / ".cache")


@dataclass
class Pending:
    jobs: list[JobSpec]
    attempts_left: dict[str, int]
    done: int
    exhausted: list[str]  # failed for good: max_attempts times, or once in a way a rerun cannot change;
    # rerun only with --retry-failed


def pending_jobs(sweep: Sweep, jobs: list[JobSpec], max_attempts: int, retry_failed: bool) -> Pending:
    completed = sweep.completed()
    failures = sweep.failures()
    todo, left, exhausted = [], {}, []
    for job in jobs:
        if job.job_id in completed:
            continue
        records = failures.get(job.job_id, [])
        used = max_attempts if records and not records[-1]["retryable"] else len(records)
        budget = max_attempts if retry_failed else max_attempts - used
        if budget <= 0:
            exhausted.append(job.job_id)
            continue
        todo.append(job)
        left[job.job_id] = budget
    return Pending(todo, left, len(jobs) - len(todo) - len(exhausted), exhausted)


def check_ready(jobs: list[JobSpec], source: str, submits: bool = False) -> None:
    """Data and weights the jobs need are in place. submits: the executor is a scheduler's."""
    problems = preflight(jobs)
    if problems:
        nothing = "nothing was created or submitted" if submits else "nothing was created"
        raise OrchError(f"{source}: {nothing}:\n" + "\n".join(f"  - {p}" for p in problems))


def prepare(plan: Plan, sweep: Sweep, cache_dir: Path | None) -> None:
    """Creates the sweep directory (or checks it matches) and records this launch's provenance.
    Call check_ready first: a launch that cannot run must not create anything."""
    sweep.create(plan, cache_dir or default_cache_dir(sweep.root))
    sweep.append_provenance({"time": now().isoformat(), **describe_launch(sys.argv)})
    sweep.clean_stale_tmp()
    sweep.clean_stale_running()


def job_states(sweep: Sweep, jobs: list[JobSpec], max_attempts: int) -> dict[str, str]:
    """done | queued | running | failed | lost | pending for every job. A shard is the only proof of
    done; the SLURM queue (read only if the sweep was ever submitted there) says queued or running, and
    so do the live records of the local executor (running/)."""
    from orchestrator.executors.slurm import active_jobs, latest_task

    completed, failures = sweep.completed(), sweep.failures()
    submitted = latest_task(sweep)
    active = active_jobs(sweep) if submitted else {}
    running_here = sweep.running()
    states = {}
    for job in jobs:
        records = failures.get(job.job_id, [])
        if job.job_id in completed:
            state = "done"
        elif job.job_id in running_here:
            state = "running"
        elif job.job_id in active:
            state = "queued" if active[job.job_id] == "pending" else "running"
        elif job.job_id in submitted and not (records and records[-1]["time"] > submitted[job.job_id][0].time):
            state = "lost"
        elif records:
            state = "failed"
        else:
            state = "pending"
        states[job.job_id] = state
    return states
