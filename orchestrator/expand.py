"""Grid -> job specs. Deterministic: the same grid gives the same jobs, in the same order, with the
same ids, on every machine and in every run; resuming is "expand again, drop the ids already done"."""
from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from dataclasses import dataclass, field

from orchestrator.errors import GridError
from orchestrator.grid import Grid
from orchestrator.registry import get_kernel

MAX_REPORTED = 5  # distinct per-job problems shown; a bad rule can fail 100,000 jobs the same way


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    kernel: str
    params: dict
    label: str  # readable: the values that vary across the grid
    resources: dict
    requires: tuple[str, ...] = ()  # job ids that must be complete first
    prerequisite: bool = False  # produced for other jobs (e.g. a training run), not a grid point


@dataclass
class Plan:
    grid: Grid
    jobs: list[JobSpec]  # the grid's own jobs
    prerequisites: list[JobSpec] = field(default_factory=list)

    @property
    def all_jobs(self) -> list[JobSpec]:
        return self.prerequisites + self.jobs

    def axis_counts(self) -> dict[str, Counter]:
        names = self.grid.factors + [k for k in self.fan_out_keys() if k not in self.grid.factors]
        return {n: Counter(j.params[n] for j in self.jobs) for n in names}

    def fan_out_keys(self) -> list[str]:
        if not self.jobs:
            return []
        first = self.jobs[0].params
        return [k for k in first if k not in self.grid.fixed and k not in self.grid.factors
                and any(j.params[k] != first[k] for j in self.jobs)]


def job_id(kernel, params: dict) -> str:
    identity = {k: v for k, v in params.items() if getattr(kernel.params.get(k), "identity", True)}
    canonical = json.dumps({"kernel": kernel.name, "version": kernel.version, "params": identity},
                           sort_keys=True, separators=(",", ":"))
    return f"{kernel.name}-{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"


def _points(grid: Grid):
    """Every combination of axes x zip groups x seeds, as dicts of the varying parameters."""
    dims: list[list[dict]] = [[{name: v} for v in values] for name, values in grid.axes.items()]
    for group in grid.zips:
        names = list(group)
        dims.append([dict(zip(names, row)) for row in zip(*(group[n] for n in names))])
    if grid.seeds is not None:
        dims.append([{"seed": s} for s in grid.seeds])
    for combo in itertools.product(*dims):
        point: dict = {}
        for part in combo:
            point.update(part)
        yield point


def _excluded(point: dict, rules: list[dict]) -> bool:
    for rule in rules:
        if all(point[k] in (v if isinstance(v, list) else [v]) for k, v in rule.items()):
            return True
    return False


def expand(grid: Grid) -> Plan:
    kernel = grid.kernel
    defaults = {n: p.default for n, p in kernel.params.items() if not p.required}
    coerce = {n: p.coerce for n, p in kernel.params.items()}
    base = {**defaults, **grid.fixed}
    label_keys = grid.factors
    jobs: list[JobSpec] = []
    problems: Counter = Counter()
    prerequisites: dict[str, JobSpec] = {}
    for point in _points(grid):
        if _excluded(point, grid.exclude):
            continue
        params = {k: coerce[k](v) for k, v in {**base, **point}.items()}
        if kernel.resolve:
            params = kernel.resolve(params)
        for spec in kernel.fan_out(params) if kernel.fan_out else [params]:
            problem = kernel.check(spec) if kernel.check else None
            if problem:
                problems[problem] += 1
                continue
            requires = tuple(_prerequisite(kernel.prerequisites(spec), grid.resources, prerequisites))
            extra = [k for k in spec if k not in label_keys and k not in base]
            label = ",".join(f"{k}={spec[k]}" for k in [*label_keys, *extra]) or kernel.name
            jobs.append(JobSpec(job_id(kernel, spec), kernel.name, spec, label, grid.resources, requires))
    if problems:
        shown = [f"{count} job(s): {problem}" for problem, count in problems.most_common(MAX_REPORTED)]
        raise GridError(grid.source, shown)
    duplicates = [i for i, n in Counter(j.job_id for j in jobs).items() if n > 1]
    if duplicates:
        raise GridError(grid.source, [f"{len(duplicates)} job id(s) occur more than once (e.g. {duplicates[0]}): "
                                      "two grid points resolve to the same parameters"])
    return Plan(grid, jobs, list(prerequisites.values()))


def _prerequisite(needed: list[tuple[str, dict]], resources: dict, known: dict[str, JobSpec]):
    for name, params in needed:
        kernel = get_kernel(name)
        defaults = {n: p.default for n, p in kernel.params.items() if not p.required}
        full = {**defaults, **params}
        jid = job_id(kernel, full)
        if jid not in known:
            label = ",".join(f"{k}={v}" for k, v in params.items() if v is not None)
            known[jid] = JobSpec(jid, name, full, label, resources, prerequisite=True)
        yield jid


def preflight(jobs: list[JobSpec]) -> list[str]:
    """Checks of the outside world (data on disk), once per distinct answer, before submitting."""
    messages: dict[str, None] = {}
    for job in jobs:
        kernel = get_kernel(job.kernel)
        if kernel.preflight:
            message = kernel.preflight(job.params)
            if message:
                messages[message] = None
    return list(messages)
