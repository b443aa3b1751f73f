"""Grid -> job specs. Deterministic: the same grid gives the same jobs, in the same order, with the
same ids, on every machine and in every run; resuming is "expand again, drop the ids already done"."""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections import Counter
from dataclasses import dataclass, field

from orchestrator.errors import GridError
from orchestrator.grid import MAX_JOBS, Grid
from orchestrator.registry import get_kernel

MAX_REPORTED = 5  # distinct per-job problems kept; a bad rule can fail 100,000 jobs the same way


@dataclass(slots=True)  # built 100,000 times per grid: plain slots are cheapest
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


_TEMPLATES: dict[tuple[str, str], tuple[str, list[str], list[dict]]] = {}


def _template(kernel) -> tuple[str, list[str], list[dict]]:
    """The canonical JSON of a job of this kernel with a %s for each identity parameter's value, the
    parameter names in that order, and one cache of encoded values per parameter (a grid repeats the
    same few values across 100,000 jobs). Validation gives each parameter's values one type (ints
    become floats for float parameters, bools are refused for ints), so a cache keyed by value alone
    cannot confuse 1, 1.0 and True. Locations (identity=False, e.g. data_root) stay outside the id."""
    key = (kernel.name, kernel.version)
    if key not in _TEMPLATES:
        names = sorted(k for k, p in kernel.params.items() if getattr(p, "identity", True))
        body = ",".join(f"{json.dumps(n)}:%s" for n in names)  # parameter names are identifiers: no '%'
        head = json.dumps(kernel.name).replace("%", "%%")
        tail = json.dumps(kernel.version).replace("%", "%%")
        _TEMPLATES[key] = (f'{{"kernel":{head},"params":{{{body}}},"version":{tail}}}', names, [{} for _ in names])
    return _TEMPLATES[key]


def _encoded(cache: dict, value) -> str:
    if value not in cache:
        cache[value] = json.dumps(value)
    return cache[value]


def job_id(kernel, params: dict) -> str:
    """<kernel>-<first 12 hex of SHA-256> of the canonical JSON of {"kernel": name, "params": identity
    parameters, "version": kernel version}: byte for byte json.dumps(..., sort_keys=True,
    separators=(",", ":")), filled into a per-kernel template because it runs once per job."""
    template, names, caches = _template(kernel)
    values = map(params.__getitem__, names)
    canonical = template % tuple([c[v] if v in c else _encoded(c, v) for c, v in zip(caches, values)])
    return f"{kernel.name}-{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"


def _points(grid: Grid, coerce: dict):
    """Every combination of axes x zip groups x seeds, as dicts of the varying parameters (coerced
    to their declared types once per value, not once per job)."""
    names: list[str] = []
    dims: list[list[tuple]] = []  # per dimension: the rows of values its parameters take together
    for name, values in grid.axes.items():
        names.append(name)
        dims.append([(coerce[name](v),) for v in values])
    for group in grid.zips:
        names.extend(group)
        dims.append([tuple(coerce[n](v) for n, v in zip(group, row)) for row in zip(*group.values())])
    if grid.seeds is not None:
        names.append("seed")
        dims.append([(s,) for s in grid.seeds])
    for combo in itertools.product(*dims):
        yield dict(zip(names, itertools.chain.from_iterable(combo)))


def _excluded(point: dict, rules: list[dict]) -> bool:
    for rule in rules:
        if all(point[k] in (v if isinstance(v, list) else [v]) for k, v in rule.items()):
            return True
    return False


def count_points(grid: Grid) -> int:
    """axes x zip groups x seeds, before exclusions and the kernel's fan-out: a lower bound of the
    job count (exclusions aside), known without building anything."""
    count = 1
    for values in grid.axes.values():
        count *= len(values)
    for group in grid.zips:
        count *= len(next(iter(group.values())))
    if grid.seeds is not None:
        count *= len(grid.seeds)
    return count


def _too_many(grid: Grid, count: int, what: str) -> GridError:
    shown = f"{count:,}" if count < 10**15 else f"about 10^{int(math.log10(count))}"
    return GridError(grid.source, [f"{what} {shown} jobs, above the cap of {MAX_JOBS:,} per sweep: "
                                   "narrow the axes or split the grid"])


def expand(grid: Grid) -> Plan:
    points = count_points(grid)
    if points > MAX_JOBS:  # refused before a single job is built, however large the product
        raise _too_many(grid, points, "the grid's axes x zip x seeds make")
    kernel = grid.kernel
    defaults = {n: p.default for n, p in kernel.params.items() if not p.required}
    coerce = {n: p.coerce for n, p in kernel.params.items()}
    base = {k: coerce[k](v) for k, v in {**defaults, **grid.fixed}.items()}
    label_keys = grid.factors  # the fan-out's keys are appended per job
    jobs: list[JobSpec] = []
    problems: Counter = Counter()
    prerequisites: dict[str, JobSpec] = {}
    exclude = grid.exclude
    kept = 0  # points left after the exclude rules
    for point in _points(grid, coerce):
        if exclude and _excluded(point, exclude):
            continue
        kept += 1
        params = {**base, **point}
        if kernel.resolve:
            params = kernel.resolve(params)
        point_label = ",".join([f"{k}={params[k]}" for k in label_keys])
        fan = kernel.fan_out(params) if kernel.fan_out else None
        if fan and len(jobs) + math.prod(map(len, fan.values())) > MAX_JOBS:
            raise _too_many(grid, len(jobs) + math.prod(map(len, fan.values())), "the kernel's fan-out makes at least")
        for extra, suffix in _variants(fan):
            spec = {**params, **extra} if extra else params
            if kernel.check and (problem := kernel.check(spec)):
                problems[problem] += 1
                continue
            needed = kernel.prerequisites(spec)
            requires = tuple(_prerequisite(needed, grid.resources, prerequisites)) if needed else ()
            label = (point_label + suffix if point_label else suffix[1:]) or kernel.name
            jobs.append(JobSpec(job_id(kernel, spec), kernel.name, spec, label, grid.resources, requires))
    if problems:
        shown = [f"{count} job(s): {problem}" for problem, count in problems.most_common(MAX_REPORTED)]
        raise GridError(grid.source, shown)
    if not jobs:
        why = "its exclude rules remove every point" if not kept else "the kernel's fan-out gives none for its points"
        raise GridError(grid.source, [f"the grid makes no jobs: {why}"])
    duplicates = [i for i, n in Counter(j.job_id for j in jobs).items() if n > 1]
    if duplicates:
        raise GridError(grid.source, [f"{len(duplicates)} job id(s) occur more than once (e.g. {duplicates[0]}): "
                                      "two grid points resolve to the same parameters"])
    return Plan(grid, jobs, list(prerequisites.values()))


_NO_FAN_OUT = [({}, "")]


def _variants(fan: dict[str, list] | None) -> list[tuple[dict, str]]:
    """The fan-out's combinations, each with its label suffix (',batch_index=3')."""
    if not fan:
        return _NO_FAN_OUT
    keys = list(fan)
    return [(dict(zip(keys, combo)), "".join(f",{k}={v}" for k, v in zip(keys, combo)))
            for combo in itertools.product(*fan.values())]


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
