"""Dispatches jobs to SLURM as submitit job arrays and reads their state back from the queue.

One array per resource class (and per stage: prerequisites first, the jobs needing them with an
`afterok` dependency), split at the cluster's MaxArraySize, throttled with %N. Each array task runs one
or more jobs through the same runner as the local executor. Every submission is recorded in
<sweep>/scheduler/submissions.jsonl, so status, cancel, logs and resume work from the directory alone.
The queue is read with one `squeue` call; accounting (sacct) is not needed.
"""
from __future__ import annotations

import json
import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import submitit
from submitit.helpers import Checkpointable

from orchestrator.errors import OrchError
from orchestrator.expand import JobSpec
from orchestrator.profiles import Profile
from orchestrator.runner import run_job
from orchestrator.sweep import Sweep, now

ACTIVE = {"PENDING": "pending", "CONFIGURING": "running", "RUNNING": "running", "COMPLETING": "running",
          "REQUEUED": "pending", "REQUEUE_HOLD": "pending", "REQUEUE_FED": "pending", "RESIZING": "running",
          "SUSPENDED": "running", "STOPPED": "running", "SIGNALING": "running", "STAGE_OUT": "running"}


class ArrayTask(Checkpointable):
    """What one array task runs: its jobs one after another. On SIGUSR2 (time limit near, or
    preemption) submitit calls checkpoint() and requeues this same task: finished jobs are skipped
    because their shards exist, and a long attack resumes from its own periodic checkpoint."""

    def __init__(self, sweep_root: str):
        self.sweep_root = sweep_root

    def __call__(self, jobs: list[JobSpec]) -> list[dict]:
        results, errors = [], []
        for job in jobs:
            try:
                results.append(run_job(self.sweep_root, job))
            except Exception as error:  # recorded by the runner; the task's other jobs still run
                errors.append(f"{job.job_id}: {type(error).__name__}: {error}")
        if errors:
            raise RuntimeError("; ".join(errors))
        return results


def _slurm(*args: str) -> str:
    try:
        result = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise OrchError(f"`{args[0]}` not found: is this a SLURM login node? (slurm/local-cluster.sh starts one here)")
    if result.returncode:
        raise OrchError(f"`{' '.join(args)}` failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def max_array_size() -> int:
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", _slurm("scontrol", "show", "config"), re.MULTILINE)
    return int(match.group(1)) if match else 1001


def chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


@dataclass
class Submission:
    array_id: str
    tasks: list[list[str]]  # job ids per array task index
    resources: dict
    dependency: str | None
    time: str = field(default_factory=lambda: now().isoformat())

    def slurm_id(self, index: int) -> str:
        """SLURM's id of one task: submitit submits a single task as a plain job, not an array."""
        return self.array_id if len(self.tasks) == 1 else f"{self.array_id}_{index}"


def submissions(sweep: Sweep) -> list[Submission]:
    path = sweep.root / "scheduler" / "submissions.jsonl"
    if not path.exists():
        return []
    return [Submission(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def latest_task(sweep: Sweep) -> dict[str, tuple[Submission, int]]:
    """job id -> (its most recent submission, task index in that array)."""
    where: dict[str, tuple[Submission, int]] = {}
    for submission in submissions(sweep):
        for index, job_ids in enumerate(submission.tasks):
            for job_id in job_ids:
                where[job_id] = (submission, index)
    return where


def queue() -> dict[str, str]:
    """'<array>_<task>' -> SLURM state, for every job in the queue, in one squeue call."""
    states = {}
    for line in _slurm("squeue", "--noheader", "--array", "--format=%i|%T").splitlines():
        if "|" in line:
            task, state = line.strip().split("|", 1)
            states[task] = state
    return states


def active_jobs(sweep: Sweep) -> dict[str, str]:
    """job id -> 'pending' or 'running' for the sweep's jobs that SLURM still holds."""
    states = queue()
    found = {}
    for job_id, (submission, index) in latest_task(sweep).items():
        state = states.get(submission.slurm_id(index))
        if state in ACTIVE:
            found[job_id] = ACTIVE[state]
    return found


def _task_logs(sweep: Sweep, submission: Submission, index: int) -> list[Path]:
    folder = sweep.root / "logs" / "slurm"
    return [folder / f"{submission.slurm_id(index)}_0_log.{ext}" for ext in ("out", "err")]


def log_paths(sweep: Sweep, job_id: str) -> list[Path]:
    where = latest_task(sweep).get(job_id)
    if where is None:
        raise OrchError(f"{job_id} was never submitted to SLURM from {sweep.root}")
    return _task_logs(sweep, *where)


def death_causes(sweep: Sweep, job_ids: list[str]) -> dict[str, str | None]:
    """'time' or 'mem' for each submitted job whose last task was killed for its time limit or memory
    (None otherwise). The submissions and failure records are read once, not once per job."""
    where, failures = latest_task(sweep), sweep.failures()
    causes: dict[str, str | None] = {}
    for job_id in job_ids:
        if job_id not in where:
            continue
        text = "".join(path.read_text(errors="replace")[-20000:] for path in _task_logs(sweep, *where[job_id])
                       if path.exists())
        text += "".join(r["error"] for r in failures.get(job_id, [])[-1:])
        if "DUE TO TIME LIMIT" in text:
            causes[job_id] = "time"
        elif re.search(r"out of memory|oom-kill|OUT_OF_MEMORY|MemoryError", text, re.IGNORECASE):
            causes[job_id] = "mem"
        else:
            causes[job_id] = None
    return causes


def parse_bump(text: str | None) -> dict[str, float]:
    """'mem=2x,time=1.5x' -> {'mem': 2.0, 'time': 1.5}."""
    factors: dict[str, float] = {}
    for part in filter(None, (text or "").split(",")):
        key, _, value = part.partition("=")
        if key not in ("mem", "time") or not re.fullmatch(r"\d+(\.\d+)?x", value):
            raise OrchError(f"--bump: expected e.g. 'mem=2x,time=2x', got {part!r}")
        factors[key] = float(value[:-1])
    return factors


class SlurmExecutor:
    blocking = False

    def __init__(self, profile: Profile, bump: dict[str, float] | None = None, **_):
        self.profile = profile
        self.bump = bump or {}

    def _parameters(self, resources: dict, jobs_per_task: int) -> dict:
        p = self.profile
        gpus = int(resources.get("gpus", 0))
        parameters = {
            "job_name": "orch", "partition": p.partition, "account": p.account, "qos": p.qos,
            "constraint": p.constraint, "cpus_per_task": int(resources.get("cpus", 1)),
            "mem": f"{int(resources.get('mem_gb', 4) * 1024)}M",
            "time": int(resources.get("time_min", 60) * jobs_per_task),
            "array_parallelism": p.array_parallelism, "signal_delay_s": p.signal_delay_s,
            "setup": list(p.setup), "additional_parameters": {"requeue": True, "kill-on-invalid-dep": "yes",
                                                              **p.sbatch},
        }
        if gpus:
            parameters.update({"gres": f"gpu:{gpus}"} if p.gpu_request == "gres" else {"gpus_per_node": gpus})
        return {k: v for k, v in parameters.items() if v is not None}

    def bumped(self, job: JobSpec, cause: str | None) -> dict:
        """The job's resources, raised by --bump for what killed its last task."""
        resources = dict(job.resources)
        if cause == "mem" and "mem" in self.bump:
            resources["mem_gb"] = resources.get("mem_gb", 4) * self.bump["mem"]
        if cause == "time" and "time" in self.bump:
            resources["time_min"] = resources.get("time_min", 60) * self.bump["time"]
        return resources

    def run(self, sweep: Sweep, jobs: list[JobSpec], attempts_left: dict[str, int]) -> list[Submission]:
        """Submits and returns at once; SLURM runs the sweep without the launching shell."""
        active = active_jobs(sweep)
        jobs = [j for j in jobs if j.job_id not in active]  # never submit what the queue already holds
        array_limit = max_array_size()
        completed = sweep.completed()
        where = {job_id: s.array_id for job_id, (s, _) in latest_task(sweep).items() if job_id in active}
        causes = death_causes(sweep, [j.job_id for j in jobs]) if self.bump else {}
        made: list[Submission] = []
        folder = sweep.root / "logs" / "slurm"
        for stage in ([j for j in jobs if j.prerequisite], [j for j in jobs if not j.prerequisite]):
            # One array per resource class and per set of arrays it must wait for: an untrained-model
            # attack does not wait behind the training job that the trained-model attacks need.
            classes: dict[tuple[str, tuple[str, ...]], list[JobSpec]] = defaultdict(list)
            resources_of: dict[str, dict] = {}
            for job in stage:
                resources = self.bumped(job, causes.get(job.job_id))
                key = json.dumps(resources, sort_keys=True)
                resources_of[key] = resources
                waits_for = tuple(sorted({where[r] for r in job.requires if r not in completed and r in where}))
                classes[(key, waits_for)].append(job)
            for (key, waits_for), members in classes.items():
                dependency = "afterok:" + ":".join(waits_for) if waits_for else None
                for part in chunks(chunks(members, self.profile.jobs_per_task), array_limit):
                    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=self.profile.max_requeues,
                                                      python=self.profile.python)
                    parameters = self._parameters(resources_of[key], self.profile.jobs_per_task)
                    if dependency:
                        parameters["dependency"] = dependency
                    executor.update_parameters(**parameters)
                    submitted = executor.map_array(ArrayTask(str(sweep.root)), part)
                    array_id = submitted[0].job_id.split("_")[0]
                    record = Submission(array_id, [[j.job_id for j in task] for task in part], resources_of[key],
                                        dependency)
                    sweep.append_submission(record.__dict__)
                    made.append(record)
                    for task in part:
                        for job in task:
                            where[job.job_id] = array_id
        return made


def cancel(sweep: Sweep) -> list[str]:
    """scancel every array of the sweep that still has tasks queued or running."""
    states = queue()
    arrays = sorted({s.array_id for s in submissions(sweep)
                     if any(s.slurm_id(i) in states for i in range(len(s.tasks)))})
    if arrays:
        _slurm("scancel", *arrays)
    return arrays
