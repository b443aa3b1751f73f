"""What a kernel is, what it may use and what it returns: the contract between kernels and whoever runs them.

A kernel is one module of kernels/jobs/, named like the kernel, holding one `Kernel` declaration and
its run function. The declaration is pure Python (no torch): the orchestrator validates and expands
grids of 100,000 jobs with it. Torch and the algorithms are imported inside the run function, when a
job runs.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kernels.params import Param

FAMILIES = ("OP", "ANA", "GEN", "PEFT", "analysis", "training")  # the paper's attack families, then the rest
# What an attack works on within its family: the paper's Table I splits GEN and ANA into these rows.
MECHANISMS = {
    "GEN": ("optimised_latent_vector", "optimised_generator", "trained_inversion_model"),
    "ANA": ("manipulated_architecture", "manipulated_parameters"),
}
# A descriptor's value (Kernel.describe): one typed manifest column per key.
Scalar = bool | int | float | str


class Context(Protocol):
    """What a kernel may use besides its parameters (the orchestrator's runner passes one)."""

    cache_dir: Path  # shared between sweeps: trained checkpoints and the like
    cpus: int
    job_id: str
    scratch_dir: Path  # this job's own folder, for checkpoints of a long attack


@dataclass
class KernelResult:
    rows: list[dict]  # the metrics table: one row per attacked image (or one per job without images)
    images: list[dict] = field(default_factory=list)  # image_index, original_png, reconstruction_png
    # Arrow type of every row column (Kernel.columns): every shard of a sweep then has the same schema,
    # also where a column is null throughout one job. Filled by Kernel.load()'s run.
    column_types: dict[str, str] = field(default_factory=dict)


Run = Callable[[dict, Context], KernelResult]
RunGroup = Callable[[list[dict], list[Context]], list]


@dataclass(frozen=True)
class Kernel:
    name: str
    version: str  # part of every job id: bump it when results would change
    family: str  # one of FAMILIES: the attack family the analysis groups rows by
    doc: str
    # name -> declaration. The order is the shard's column order; the job id does not depend on it.
    params: Mapping[str, Param]
    # Every column of the rows -> Arrow type alias ("float64", "int64", "string", "bool"), in shard order.
    columns: Mapping[str, str]
    run: Run  # one job: the module's run(params, ctx); call it through load(), which checks its rows
    # Cross-parameter checks on one resolved job; returns a problem or None.
    check: Callable[[dict], str | None] | None = None
    # Fills defaults that depend on other parameters, so the manifest shows the value used.
    resolve: Callable[[dict], dict] | None = None
    # One grid point -> several jobs: parameter -> values to expand, like an extra axis
    # (e.g. one job per batch of the 64-image subset).
    fan_out: Callable[[dict], Mapping[str, range | list]] | None = None
    # Jobs that must finish first, as (kernel name, params); deduplicated by the orchestrator.
    prerequisites: Callable[[dict], list[tuple[str, dict]]] = field(default=lambda p: [])
    # Cheap check of the outside world (data on disk) run before anything is submitted.
    preflight: Callable[[dict], str | None] | None = None
    # Parameters in which the jobs of one group may differ (a fan-out of one grid point); () never groups.
    group_varying: tuple[str, ...] = ()
    # Several jobs of one group at once (model and data loaded once); default: run() one job after another.
    run_group: RunGroup | None = None
    # One of MECHANISMS[family], for the families the paper splits (Table I's rows).
    mechanism: str | None = None
    # What analysis needs to know of a job beyond its parameters, from its resolved parameters (e.g. the
    # target model's parameter count); describe() adds the family and mechanism. Pure Python, no torch.
    descriptors: Callable[[dict], Mapping[str, Scalar]] | None = None

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"kernel {self.name}: family {self.family!r} is not one of {', '.join(FAMILIES)}")
        # The runner writes the parameters and the rows side by side in one shard.
        if clash := sorted(set(self.params) & set(self.columns)):
            raise ValueError(f"kernel {self.name}: columns {clash} repeat parameter names")
        if unknown := sorted(set(self.group_varying) - set(self.params)):
            raise ValueError(f"kernel {self.name}: group_varying names {unknown}, which are not parameters")
        if self.mechanism not in (None, *MECHANISMS.get(self.family, ())):
            raise ValueError(f"kernel {self.name}: mechanism {self.mechanism!r} is not one of "
                             f"{MECHANISMS.get(self.family, ())} (family {self.family})")

    def describe(self, params: dict) -> dict[str, Scalar]:
        """What the orchestrator writes beside the job in manifest.parquet, one column per key, and
        analysis joins to every row of the job: its attack family (and mechanism), and descriptors."""
        described: dict[str, Scalar] = {"attack_family": self.family}
        if self.mechanism:
            described["attack_mechanism"] = self.mechanism
        extra = dict(self.descriptors(params)) if self.descriptors else {}
        if clash := sorted(set(described) & set(extra)):
            raise ValueError(f"kernel {self.name}: descriptors {clash} repeat what describe() sets itself")
        return {**described, **extra}

    def load(self) -> Run:
        """run(params, ctx) -> KernelResult whose rows hold exactly the declared columns, in their order."""
        def run(params: dict, ctx: Context) -> KernelResult:
            return self.conform(self.run(params, ctx))
        return run

    def load_group(self) -> RunGroup:
        """run_group(params_list, contexts) -> one KernelResult or Exception per job, in order: a job
        that raises is returned at its place, and the others still run."""
        def run_group(params_list: list[dict], contexts: list[Context]) -> list:
            if len(params_list) != len(contexts):
                raise ValueError(f"{len(params_list)} jobs but {len(contexts)} contexts")
            if self.run_group is None:
                outcomes = [_outcome(self.run, params, ctx) for params, ctx in zip(params_list, contexts)]
            else:
                outcomes = self.run_group(params_list, contexts)
            return [o if isinstance(o, Exception) else _outcome(self.conform, o) for o in outcomes]
        return run_group

    def conform(self, result: KernelResult) -> KernelResult:
        """The rows rebuilt in the declared column order, with the declared types; a row holding a
        column that is not declared, or lacking one that is, is the kernel's bug and raises."""
        declared = list(self.columns)
        for row in result.rows:
            if row.keys() != self.columns.keys():
                missing, extra = sorted(set(declared) - set(row)), sorted(set(row) - set(declared))
                raise ValueError(f"kernel {self.name}: a row lacks declared columns {missing} and holds undeclared "
                                 f"columns {extra}: its declaration (kernels/jobs/{self.name}.py) and run disagree")
        return KernelResult(rows=[{name: row[name] for name in declared} for row in result.rows],
                            images=result.images, column_types=dict(self.columns))


def _outcome(function: Callable, *args):
    """function(*args), or the Exception it raised (run_group's per-job outcome)."""
    try:
        return function(*args)
    except Exception as error:  # noqa: BLE001 - whatever one job raises is that job's outcome alone
        return error


def columns(*groups: Mapping[str, str]) -> dict[str, str]:
    """The column groups joined in order; a name given twice is refused (it would silently move)."""
    return _join(groups, "column")


def parameters(*groups: Mapping[str, Param]) -> dict[str, Param]:
    """The parameter groups joined in order (the shard's column order); a name given twice is refused:
    an override is written as a group of its own, never by re-declaring a key after a merge."""
    return _join(groups, "parameter")


def _join(groups, what: str) -> dict:
    joined: dict = {}
    for group in groups:
        if twice := sorted(set(joined) & set(group)):
            raise ValueError(f"{what}s {twice} are declared twice")
        joined.update(group)
    return joined
