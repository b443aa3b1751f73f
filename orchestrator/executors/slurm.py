"""Dispatches jobs to SLURM as submitit job arrays and reads their state back from the queue.

One array per resource class (and per stage: prerequisites first, the jobs needing them with an
`afterok` dependency), split at the cluster's MaxArraySize, throttled with %N. Each array task runs
`jobs_per_task` groups of jobs (orchestrator.groups: one job each unless the grid sets group_size)
through the same runner as the local executor. Every submission is recorded in
<sweep>/scheduler/submissions.jsonl, so status, cancel, logs and resume work from the directory alone.
The queue is read with one `squeue` call; accounting (sacct) is not needed.

A launcher can be killed at any moment (SIGKILL, a dropped ssh session, Ctrl-C), also between a
successful `sbatch` and the line that records its array. So every array is submitted in four steps:

    1. an intent (job ids per task, resources, and a job name unique to this array and carrying the
       sweep's tag) is appended to scheduler/intents.jsonl;
    2. `sbatch --hold` with that job name: SLURM holds the array, nothing of it runs yet;
    3. submitit puts each task's pickle in place and the array id is appended to submissions.jsonl;
    4. `scontrol release` lets it run.

An array that SLURM holds but the sweep has not recorded is an orphan: `status`, `cancel` and `resume`
find it in `squeue` by its job name. `resume` adopts an orphan whose pickles are in place (records it,
releases it) and cancels one whose pickles are not (it has never run and could not: its tasks would
wait for pickles that will never come), then submits what is still missing: each job runs once.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import subprocess
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import submitit
from submitit.core.utils import FailedJobError, FailedSubmissionError
from submitit.helpers import Checkpointable

from orchestrator.contracts import JobRun, Outcome
from orchestrator.errors import OrchError, unknown_name
from orchestrator.expand import JobSpec
from orchestrator.groups import group_jobs
from orchestrator.profiles import Profile
from orchestrator.runner import run_group
from orchestrator.sweep import Sweep, now

ACTIVE = {"PENDING": "pending", "CONFIGURING": "running", "RUNNING": "running", "COMPLETING": "running",
          "REQUEUED": "pending", "REQUEUE_HOLD": "pending", "REQUEUE_FED": "pending", "RESIZING": "running",
          "SUSPENDED": "running", "STOPPED": "running", "SIGNALING": "running", "STAGE_OUT": "running"}
HELD_BY_USER = "JobHeldUser"  # squeue's reason for an array submitted with --hold and not yet released
QUERY_TIMEOUT_S = 20  # a controller that does not answer sinfo/squeue in this long is treated as down


class ArrayTask(Checkpointable):
    """What one array task runs: its groups of jobs one after another (a group is one job unless the
    grid sets group_size). On SIGUSR2 (time limit near, or preemption) submitit calls checkpoint() and
    requeues this same task: finished jobs are skipped because their shards exist, and a long attack
    resumes from its own periodic checkpoint."""

    def __init__(self, sweep_root: str):
        self.sweep_root = sweep_root

    def __call__(self, groups: list[list[JobSpec]]) -> list[JobRun]:
        runs, errors = [], []
        for group in groups:
            try:
                runs += run_group(self.sweep_root, group)
            except Exception as error:  # raised outside the kernels (no record): the task's other groups still run
                errors.append(f"{', '.join(job.job_id for job in group)}: {type(error).__name__}: {error}")
        errors += [f"{run.job_id}: {run.error}" for run in runs if run.status == "failed"]  # recorded by the runner
        if errors:  # the task fails, so that SLURM's afterok holds back the jobs that depend on it
            raise RuntimeError("; ".join(errors))
        return runs


def _slurm(*args: str, timeout: float = QUERY_TIMEOUT_S) -> str:
    try:
        result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise OrchError(f"`{args[0]}` not found: is this a SLURM login node? (slurm/local-cluster.sh starts one here)")
    except subprocess.TimeoutExpired:
        raise OrchError(f"`{' '.join(args)}` did not answer within {timeout:.0f}s: is the SLURM controller up?")
    if result.returncode:
        message = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise OrchError(f"`{' '.join(args)}` failed: {message[0][:300] if message else f'exit {result.returncode}'}")
    return result.stdout


def max_array_size() -> int:
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", _slurm("scontrol", "show", "config"), re.MULTILINE)
    return int(match.group(1)) if match else 1001


def chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def sweep_tag(sweep: Sweep) -> str:
    """A short token for the sweep folder, in the job name of each of its arrays (`squeue -n` finds them)."""
    return hashlib.sha256(str(sweep.root).encode()).hexdigest()[:10]


@dataclass
class Submission:
    array_id: str
    tasks: list[list[str]]  # job ids per array task index
    resources: dict
    dependency: str | None
    time: str = field(default_factory=lambda: now().isoformat())
    name: str | None = None  # the SLURM job name: orch-<sweep tag>-<array nonce> (None in older sweeps)

    def slurm_id(self, index: int) -> str:
        """SLURM's id of one task: submitit submits a single task as a plain job, not an array."""
        return self.array_id if len(self.tasks) == 1 else f"{self.array_id}_{index}"

    def pickles_in_place(self, sweep: Sweep) -> bool:
        """submitit moves each task's pickle to its final name only after sbatch returned."""
        folder = sweep.root / "logs" / "slurm"
        return all((folder / f"{self.slurm_id(i)}_submitted.pkl").exists() for i in range(len(self.tasks)))


@dataclass(frozen=True)
class QueueEntry:
    state: str  # PENDING, RUNNING, ...
    name: str  # the job name
    reason: str  # why it is pending (JobHeldUser, Dependency, BeginTime, ...)


def _read_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    # A launcher killed while appending leaves at most its last line incomplete: skip what is not JSON.
    records = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            records.append(json.loads(line))
    return [r for r in records if isinstance(r, dict)]


def recorded_submissions(sweep: Sweep) -> list[Submission]:
    """The arrays written to submissions.jsonl, oldest first."""
    return [Submission(**r) for r in _read_lines(sweep.root / "scheduler" / "submissions.jsonl")]


def _intents_path(sweep: Sweep) -> Path:
    return sweep.root / "scheduler" / "intents.jsonl"


def _append_record(path: Path, record: dict) -> None:
    # One write() of one line in append mode: concurrent appenders never interleave within a line.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _settle(sweep: Sweep, name: str, how: str) -> None:
    """Marks an intent that will never be an array of the sweep (sbatch refused it, or its held orphan
    was cancelled), so later commands need not look for it in the queue."""
    _append_record(_intents_path(sweep), {"name": name, "settled": how, "time": now().isoformat()})


def orphans(sweep: Sweep, entries: dict[str, QueueEntry] | None = None) -> list[Submission]:
    """Arrays that SLURM holds under a job name of this sweep's intents but that were never recorded
    (the launcher died between sbatch and the record). Reads the queue only if such an intent exists."""
    lines = _read_lines(_intents_path(sweep))
    known = {s.name for s in recorded_submissions(sweep)} | {i.get("name") for i in lines if "settled" in i}
    waiting = {i["name"]: i for i in lines if "tasks" in i and i.get("name") not in known}
    if not waiting:
        return []
    entries = queue() if entries is None else entries
    found: dict[str, Submission] = {}
    for slurm_id, entry in entries.items():
        intent = waiting.get(entry.name)
        if intent is not None and entry.name not in found:
            found[entry.name] = Submission(slurm_id.split("_")[0], intent["tasks"], intent["resources"],
                                           intent["dependency"], intent["time"], intent["name"])
    return list(found.values())


def submissions(sweep: Sweep, entries: dict[str, QueueEntry] | None = None) -> list[Submission]:
    """Recorded arrays, then the orphans found in the queue."""
    return recorded_submissions(sweep) + orphans(sweep, entries)


def latest_task(sweep: Sweep) -> dict[str, tuple[Submission, int]]:
    """job id -> (its most recent submission, task index in that array)."""
    where: dict[str, tuple[Submission, int]] = {}
    for submission in submissions(sweep):
        for index, job_ids in enumerate(submission.tasks):
            for job_id in job_ids:
                where[job_id] = (submission, index)
    return where


def queue() -> dict[str, QueueEntry]:
    """'<array>_<task>' (or '<job>') -> its state, name and reason, for every job in the queue, in one
    squeue call."""
    entries = {}
    for line in _slurm("squeue", "--noheader", "--array", "--format=%i|%T|%r|%j").splitlines():
        parts = line.strip().split("|", 3)
        if len(parts) == 4:
            entries[parts[0]] = QueueEntry(state=parts[1], reason=parts[2], name=parts[3])
    return entries


def active_jobs(sweep: Sweep) -> dict[str, str]:
    """job id -> 'pending' or 'running' for the sweep's jobs that SLURM still holds."""
    return _active(sweep, queue())


def _active(sweep: Sweep, entries: dict[str, QueueEntry]) -> dict[str, str]:
    where: dict[str, tuple[Submission, int]] = {}
    for submission in submissions(sweep, entries):
        for index, job_ids in enumerate(submission.tasks):
            for job_id in job_ids:
                where[job_id] = (submission, index)
    found = {}
    for job_id, (submission, index) in where.items():
        entry = entries.get(submission.slurm_id(index))
        if entry is not None and entry.state in ACTIVE:
            found[job_id] = ACTIVE[entry.state]
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
    """Submits the pending jobs as job arrays and returns at once; SLURM runs them."""

    def __init__(self, profile: Profile, bump: dict[str, float] | None = None):
        self.profile = profile
        self.bump = bump or {}

    def check(self) -> None:
        """Before anything is created: the controller answers and the profile's partition exists.
        `scontrol ping` first: on a controller that is down it answers at once, where sinfo retries for
        about ten seconds. Then one `sinfo`. Milliseconds each on a live cluster."""
        try:
            answer = _slurm("scontrol", "ping")
            if " is UP" not in answer:
                raise OrchError(f"`scontrol ping`: {answer.strip().splitlines()[0] if answer.strip() else 'no answer'}")
            listing = _slurm("sinfo", "--noheader", "--format=%P")
        except OrchError as error:
            raise OrchError(f"the SLURM controller does not answer, so nothing was created or submitted: {error}") \
                from None
        partitions = sorted({name.rstrip("*") for name in listing.split()})
        wanted = self.profile.partition
        if wanted is not None and wanted not in partitions:
            raise OrchError(f"{self.profile.source or 'profile ' + self.profile.name}: partition: "
                            f"{unknown_name('partition', wanted, partitions, ' on this cluster')}")
        if not partitions:
            raise OrchError("SLURM answers but has no partition (`sinfo` lists none): nothing can run")

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

    def run(self, sweep: Sweep, jobs: list[JobSpec], attempts_left: dict[str, int]) -> Outcome:
        """Submits and returns at once; SLURM runs the sweep without the launching shell.
        Called under the sweep's lock, so it may adopt orphans and release held arrays."""
        settle_interrupted_submissions(sweep)
        active = active_jobs(sweep)
        outcome = Outcome(already_queued=[j.job_id for j in jobs if j.job_id in active])
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
                # A task runs jobs_per_task groups, each of up to group_size jobs.
                for part in chunks(chunks(group_jobs(members), self.profile.jobs_per_task), array_limit):
                    record = self._submit(sweep, folder, part, resources_of[key], dependency, made, len(jobs))
                    made.append(record)
                    for task in record.tasks:
                        for job_id in task:
                            where[job_id] = record.array_id
        outcome.submitted = {s.array_id: [job_id for task in s.tasks for job_id in task] for s in made}
        return outcome

    def _submit(self, sweep: Sweep, folder: Path, part: list[list[list[JobSpec]]], resources: dict,
                dependency: str | None, made: list[Submission], total: int) -> Submission:
        """One array (its tasks, each a list of groups), in the four steps of the module docstring."""
        name = f"orch-{sweep_tag(sweep)}-{uuid.uuid4().hex[:8]}"
        tasks = [[job.job_id for group in task for job in group] for task in part]
        intent = {"name": name, "tasks": tasks, "resources": resources, "dependency": dependency,
                  "time": now().isoformat()}
        _append_record(_intents_path(sweep), intent)
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=self.profile.max_requeues,
                                          python=self.profile.python)
        # time_min is per job: a task's limit covers the most jobs one of its tasks may hold.
        parameters = self._parameters(resources, self.profile.jobs_per_task * int(resources.get("group_size", 1)))
        parameters["job_name"] = name
        parameters["additional_parameters"] = {**parameters["additional_parameters"], "hold": True}
        if dependency:
            parameters["dependency"] = dependency
        executor.update_parameters(**parameters)
        sbatch_said = io.StringIO()
        try:
            with contextlib.redirect_stderr(sbatch_said):  # submitit echoes sbatch's stderr: it goes in our message
                submitted = executor.map_array(ArrayTask(str(sweep.root)), part)
        except (FailedJobError, FailedSubmissionError, OSError) as error:
            _settle(sweep, name, "refused by sbatch")
            raise OrchError(self._refusal(sweep, error, sum(map(len, tasks)), made, total)) from None
        record = Submission(submitted[0].job_id.split("_")[0], tasks, resources, dependency, intent["time"], name)
        sweep.append_submission(record.__dict__)
        try:
            _slurm("scontrol", "release", record.array_id)
        except OrchError as error:
            raise OrchError(f"array {record.array_id} was submitted and recorded but SLURM still holds it: {error}\n"
                            f"`orch resume {sweep.root}` releases it") from None
        return record

    @staticmethod
    def _refusal(sweep: Sweep, error: Exception, jobs: int, made: list[Submission], total: int) -> str:
        said = [line for line in str(error).splitlines() if line.strip()]
        reason = said[-1].strip()[:300] if said else type(error).__name__
        submitted = sum(len(task) for s in made for task in s.tasks)
        before = (f"{submitted} jobs in array(s) {', '.join(s.array_id for s in made)} were submitted and recorded"
                  if made else "nothing was submitted")
        return (f"sbatch refused an array of {jobs} jobs: {reason}\n"
                f"{before}; {total - submitted} jobs were not submitted\n"
                f"fix the cause, then `orch resume {sweep.root}` submits only what is missing")


def settle_interrupted_submissions(sweep: Sweep) -> None:
    """Finishes what a killed launcher left between `sbatch --hold` and `scontrol release`: an orphan
    whose pickles are in place is recorded and released, one without them is cancelled (it never ran),
    and a recorded array still held is released. Needs the sweep's lock."""
    entries = queue()
    for orphan in orphans(sweep, entries):
        if orphan.pickles_in_place(sweep):
            sweep.append_submission(orphan.__dict__)
        else:
            _slurm("scancel", orphan.array_id)
            _settle(sweep, orphan.name, f"held array {orphan.array_id} cancelled: its pickles were never in place")
    held = sorted({s.array_id for s in recorded_submissions(sweep)
                   if any(entries.get(s.slurm_id(i), QueueEntry("", "", "")).reason == HELD_BY_USER
                          for i in range(len(s.tasks)))})
    if held:
        _slurm("scontrol", "release", *held)


def cancel(sweep: Sweep) -> list[str]:
    """scancel every array of the sweep that still has tasks queued or running, orphans included."""
    entries = queue()
    arrays = sorted({s.array_id for s in submissions(sweep, entries)
                     if any(s.slurm_id(i) in entries for i in range(len(s.tasks)))})
    if arrays:
        _slurm("scancel", *arrays)
    return arrays
