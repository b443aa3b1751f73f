"""What the orchestrator expects of the things it does not own, and what it hands back, in one place.

Kernels are found through the `orch.kernels` entry points and duck-typed: the orchestrator never imports
a kernel module by name, so these Protocols are the written contract, not base classes to inherit.
Five attributes are newer than the others (`family`, `columns`, `group_varying`, `load_group`,
`describe`): read them through getattr or the functions below, which fall back to what a kernel
without them means.

The second half holds the results both executors return (one `Outcome` type, whether the jobs ran here
or were handed to SLURM) and what the runner reports per job (`JobRun`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # for the annotations only: this module imports nothing of the orchestrator
    from orchestrator.expand import JobSpec
    from orchestrator.sweep import Sweep

# --- what a kernel is -------------------------------------------------------------------------------


class Param(Protocol):
    """One declared parameter of a kernel."""

    type: type  # int, float, str or bool: decides the Arrow type of its shard column
    default: Any
    identity: bool  # False for locations (data_root): kept out of the job id

    @property
    def required(self) -> bool: ...

    def check(self, value: Any) -> str | None: ...  # why the value is refused, or None

    def coerce(self, value: Any) -> Any: ...  # the canonical form hashed into the job id


class KernelResult(Protocol):
    """What a kernel's run function returns for one job."""

    rows: list[dict]  # the metrics table; every row has the same keys, in the same order
    images: list[dict]  # image_index, original_png, reconstruction_png (may be empty)
    column_types: dict[str, str]  # column -> Arrow type alias, for columns that may be null in a whole job


@dataclass(frozen=True)
class RunContext:
    """What a kernel may use besides its parameters."""

    cache_dir: Path  # shared between sweeps: trained checkpoints and the like
    cpus: int
    job_id: str
    scratch_dir: Path  # this job's own folder for checkpoints of a long attack


RunFunction = Callable[[dict, RunContext], KernelResult]
# One outcome per job, in order: a result, or the exception that job raised (the others still ran).
GroupRunFunction = Callable[[list[dict], list[RunContext]], list["KernelResult | Exception"]]


class Kernel(Protocol):
    """A kernel as `orchestrator.registry.get_kernel(name)` returns it."""

    name: str
    version: str  # part of every job id: a new version reruns the kernel's jobs
    params: Mapping[str, Param]  # in the order their shard columns appear
    doc: str
    check: Callable[[dict], str | None] | None  # cross-parameter check of one job, at expansion
    resolve: Callable[[dict], dict] | None  # fills defaults that depend on other parameters
    fan_out: Callable[[dict], dict[str, list]] | None  # one grid point -> several jobs
    prerequisites: Callable[[dict], list[tuple[str, dict]]]  # (kernel name, params) that must finish first
    preflight: Callable[[dict], str | None] | None  # cheap check of the outside world (data on disk)

    def load(self) -> RunFunction: ...

    # Newer, optional (read them through the functions below):
    #   family: str                     "OP", "ANA", "GEN", "PEFT", "analysis" or "training"
    #   columns: dict[str, str]         every output column -> Arrow type alias, in row order
    #   group_varying: tuple[str, ...]  parameters in which the jobs of one group may differ
    #   load_group() -> GroupRunFunction
    #   describe(params) -> dict[str, bool | int | float | str]   what the manifest records of a job
    #                                   for its readers (one column per key; read by orchestrator.sweep)


def group_varying(kernel: Kernel) -> tuple[str, ...]:
    """The parameters in which jobs of one group may differ; () (never group) for a kernel that does
    not say."""
    return tuple(getattr(kernel, "group_varying", ()))


def declared_columns(kernel: Kernel) -> dict[str, str]:
    """The kernel's declared output columns and their Arrow types ({} for a kernel that declares none)."""
    return dict(getattr(kernel, "columns", None) or {})


def load_group_run(kernel: Kernel) -> GroupRunFunction:
    """The kernel's own run_group, or a loop over its run function: one outcome per job, an exception
    in one job returned at its place."""
    load_group = getattr(kernel, "load_group", None)
    if load_group is not None:
        return load_group()
    run = kernel.load()

    def run_each(params_list: list[dict], contexts: list[RunContext]) -> list:
        outcomes: list = []
        for params, context in zip(params_list, contexts):
            try:
                outcomes.append(run(params, context))
            except Exception as error:  # this job fails alone
                outcomes.append(error)
        return outcomes

    return run_each


# --- what the runner and the executors report -------------------------------------------------------


@dataclass(frozen=True)
class JobRun:
    """What happened to one job in one worker (or array task): plain data, so that it crosses a
    process boundary whatever the kernel raised. A failure's record is already written."""

    job_id: str
    status: str  # "done", "already-done" (its shard existed) or "failed"
    seconds: float = 0.0
    error: str | None = None  # "ValueError: ..." for a failure
    retryable: bool = False  # whether a rerun can change a failure's outcome


@dataclass
class Outcome:
    """What an executor did with the pending jobs it was given: the local executor fills done, failed
    and blocked (it returns when every job ran or failed for good, or on Ctrl-C); the SLURM executor
    fills submitted and already_queued and returns at once."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # job id -> last error, of jobs not done
    blocked: list[str] = field(default_factory=list)  # a prerequisite failed for good
    submitted: dict[str, list[str]] = field(default_factory=dict)  # SLURM array id -> its job ids
    already_queued: list[str] = field(default_factory=list)  # held by SLURM already: not submitted again
    interrupted: bool = False  # Ctrl-C or SIGTERM stopped the run; finished results are kept
    seconds: float = 0.0

    @property
    def running_elsewhere(self) -> bool:
        """Whether jobs go on running after run() returned (on a scheduler): the sweep is not over."""
        return bool(self.submitted or self.already_queued)

    @property
    def submitted_jobs(self) -> int:
        return sum(len(ids) for ids in self.submitted.values())


class Executor(Protocol):
    """Runs (or submits) a sweep's pending jobs through orchestrator.runner.run_group."""

    def check(self) -> None:
        """What can be verified before anything is created (raises OrchError)."""

    def run(self, sweep: Sweep, jobs: list[JobSpec], attempts_left: dict[str, int]) -> Outcome:
        """Runs (local) or submits (SLURM) the jobs; attempts_left: job id -> attempts it may still use."""
