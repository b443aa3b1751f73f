"""Grid files: load, check, apply a scale, validate against the kernel's declared parameters.

A grid is a YAML mapping (see README, "Grid format"), read by the strict loader of yaml_source. The
checks run in three rounds; each runs only when the one before found nothing, so that one mistake
is not echoed by the checks that depend on it:

1. the file: its top-level keys, `name`, `kernel`, the shape of `scales` and `default_scale`;
2. every section where it is written, at the top level and in every scale (not only the one being
   planned): its shape, its parameter names, its values;
3. every scale's merged view (the grid's own when it has no scales): one setting per parameter,
   every required parameter set, exclude rules naming what varies.

Every problem names the full key path where it was written (`scales.small.fixed.train_epochs`) and
its `line:column`. Nothing here touches disk beyond reading the file, so `orch plan` and a failing
`orch launch` create nothing.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import GridError, Problem, got, key_path, short, unknown_name, valid_list
from orchestrator.registry import kernels
from orchestrator.yaml_source import Document, parse_yaml, read_yaml

TOP_LEVEL = ("name", "kernel", "description", "fixed", "axes", "zip", "exclude", "seeds", "replicates",
             "resources", "max_attempts", "scales", "default_scale")
OVERLAY = ("fixed", "axes", "zip", "exclude", "seeds", "replicates", "resources", "max_attempts")
# group_size: jobs run together by one worker or array task (orchestrator.groups); not in job ids.
RESOURCES = {"cpus": 1, "gpus": 0, "mem_gb": 4, "time_min": 60, "group_size": 1}
# A grid's name (and a scale's) names its folder, runs/<name>[-<scale>]: one path component, never
# `.` or `..`. Only --sweep-dir puts a sweep elsewhere.
NAME = re.compile(r"[A-Za-z0-9._-]+")
MAX_JOBS = 10_000_000  # jobs in one sweep; a grid above it is refused before any job is built


@dataclass
class Grid:
    name: str
    kernel: Any
    source: str
    text: str
    scale: str | None
    fixed: dict
    axes: dict[str, list]
    zips: list[dict[str, list]]
    exclude: list[dict]
    seeds: Sequence[int] | None  # a list, or a range for `replicates: N`
    resources: dict
    max_attempts: int
    scales: list[str] = field(default_factory=list)

    @property
    def factors(self) -> list[str]:
        """Parameters that vary across the grid's points (not the kernel's fan-out)."""
        names = list(self.axes) + [k for group in self.zips for k in group]
        if self.seeds and len(self.seeds) > 1:
            names.append("seed")
        return names


def load_grid(path: str | Path, scale: str | None = None) -> Grid:
    return _grid(read_yaml(path, "grid file"), scale)


def parse_grid(text: str, source: str, scale: str | None = None) -> Grid:
    return _grid(parse_yaml(text, source), scale)


class Problems:
    """Problems of one grid, study or profile file, each placed at the line and column its key path was written at."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.items: list[Problem] = []

    def add(self, path: tuple, message: str, where: str | None = None) -> None:
        self.items.append(Problem(key_path(path) if where is None else where, message, self.doc.position(path)))

    def raise_if_any(self) -> None:
        if self.items:
            unique = dict.fromkeys(self.items)  # a top-level mistake is seen once per scale
            raise GridError(self.doc.source, sorted(unique, key=lambda p: p.position or (math.inf, math.inf)))


def _grid(doc: Document, scale: str | None) -> Grid:
    raw = doc.data
    problems = Problems(doc)
    if not isinstance(raw, dict):
        problems.add((), "expected a mapping at the top level (name:, kernel:, axes:, ...)", where="")
        problems.raise_if_any()
    for key in raw:
        if key not in TOP_LEVEL:
            problems.add((key,), unknown_name("key", key, TOP_LEVEL))
    for key in ("name", "kernel"):
        if not isinstance(raw.get(key), str) or not raw.get(key):
            problems.add((key,), f"required, expected a non-empty string, got {short(raw.get(key))}")
    if isinstance(raw.get("name"), str) and raw["name"] and not is_folder_name(raw["name"]):
        problems.add(("name",), f"{short(raw['name'])} is not a folder name: use letters, digits, '.', '_' and "
                                "'-' (it names runs/<name>; --sweep-dir chooses another place)")
    if not isinstance(raw.get("description"), (str, type(None))):
        problems.add(("description",), f"expected a string, got {got(raw['description'])}")
    table = kernels()
    kernel = None
    if isinstance(raw.get("kernel"), str) and raw["kernel"]:
        if raw["kernel"] in table:
            kernel = table[raw["kernel"]]
        else:
            problems.add(("kernel",), unknown_name("kernel", raw["kernel"], table))
    scales = _scales(raw, problems)
    chosen = _chosen_scale(raw, scales, scale, problems)
    problems.raise_if_any()

    _check_section(kernel, raw, (), problems)
    for name, overlay in scales.items():
        _check_section(kernel, overlay, ("scales", name), problems)
    problems.raise_if_any()

    if scales:
        views = {name: _View.merge(raw, overlay, ("scales", name)) for name, overlay in scales.items()}
    else:
        views = {None: _View.merge(raw, {}, ())}
    _check_views(kernel, views, problems)
    problems.raise_if_any()

    view = views[chosen]
    return Grid(name=raw["name"], kernel=kernel, source=doc.source, text=doc.text, scale=chosen, fixed=view.fixed,
                axes=view.axes, zips=view.zips, exclude=view.exclude, seeds=view.seeds,
                resources={**RESOURCES, **view.resources}, max_attempts=view.max_attempts, scales=list(scales))


def is_folder_name(value) -> bool:
    """A grid's, scale's or study's name: one folder under runs/, never a path."""
    return isinstance(value, str) and bool(NAME.fullmatch(value)) and value not in (".", "..")


def _scales(raw: dict, problems: Problems) -> dict:
    scales = raw.get("scales")
    if scales is None:
        return {}
    if not isinstance(scales, dict):
        problems.add(("scales",), f"expected a mapping of scale name -> overlay, got {got(scales)}")
        return {}
    found = {}
    for name, overlay in scales.items():
        if not is_folder_name(name):
            problems.add(("scales", name), f"scale name {short(name)} is not a folder name: use letters, digits, "
                                           "'.', '_' and '-' (it names runs/<grid>-<scale>)")
        if overlay is not None and not isinstance(overlay, dict):
            problems.add(("scales", name), f"expected a mapping (fixed:, axes:, ...), got {got(overlay)}")
        else:
            found[name] = overlay or {}
    return found


def _chosen_scale(raw: dict, scales: dict, scale: str | None, problems: Problems) -> str | None:
    default = raw.get("default_scale")
    if default is not None and not isinstance(default, str):
        problems.add(("default_scale",), f"expected the name of a scale, got {got(default)}")
        return None
    if scale is not None:
        if not scales:
            problems.add((), "this grid defines no scales", where="--scale")
        elif scale not in scales:
            problems.add((), unknown_name("scale", scale, scales), where="--scale")
        return scale
    if default is not None:
        if not scales:
            problems.add(("default_scale",), "names a scale, but the grid defines no scales")
        elif default not in scales:
            problems.add(("default_scale",), unknown_name("scale", default, scales))
        return default
    if scales:
        problems.add(("default_scale",), f"required when scales are defined (one of: {valid_list(scales)})",
                     where="default_scale")
    return None


# --- round 2: each section where it is written -------------------------------------------------------

def _check_section(kernel, section: dict, prefix: tuple, problems: Problems) -> None:
    """The grid's overlay keys at the top level (prefix ()) or in one scale (("scales", name))."""
    params = kernel.params
    if prefix:
        for key in section:
            if key not in OVERLAY:
                problems.add(prefix + (key,), unknown_name("key", key, OVERLAY))

    def known(name, path) -> bool:
        if name in params:
            return True
        problems.add(path, unknown_name("parameter", name, params, f" of kernel {kernel.name!r}"))
        return False

    fixed = _shaped(section, "fixed", dict, prefix, "a mapping of parameter -> value", problems)
    for name, value in fixed.items():
        if known(name, prefix + ("fixed", name)):
            _check_value(params[name], value, prefix + ("fixed", name), problems)
    axes = _shaped(section, "axes", dict, prefix, "a mapping of parameter -> list of values", problems)
    for name, values in axes.items():
        if known(name, prefix + ("axes", name)):
            _check_values(params[name], values, prefix + ("axes", name), problems)
    for i, group in enumerate(_shaped(section, "zip", list, prefix, "a list of mappings (parameter -> list of "
                                      "values, equal lengths)", problems)):
        path = prefix + ("zip", i)
        if not isinstance(group, dict) or not group:
            problems.add(path, f"expected a mapping of parameter -> list of values, got {got(group)}")
            continue
        lengths = {len(v) for v in group.values() if isinstance(v, list)}
        if len(lengths) > 1:
            problems.add(path, f"lists of one group must have equal lengths, got {sorted(lengths)[:6]}")
        for name, values in group.items():
            if known(name, path + (name,)):
                _check_values(params[name], values, path + (name,), problems)
    for i, rule in enumerate(_shaped(section, "exclude", list, prefix, "a list of mappings (parameter -> value "
                                     "or list of values)", problems)):
        path = prefix + ("exclude", i)
        if not isinstance(rule, dict) or not rule:
            problems.add(path, f"expected a mapping of parameter -> value or list of values, got {got(rule)}")
            continue
        for name, value in rule.items():
            if known(name, path + (name,)):
                for j, v in enumerate(value if isinstance(value, list) else [value]):
                    _check_value(params[name], v, path + (name,) + ((j,) if isinstance(value, list) else ()),
                                 problems)
    _check_seeds(params, section, prefix, problems)
    resources = _shaped(section, "resources", dict, prefix, "a mapping (cpus, gpus, mem_gb, time_min)", problems)
    for key, value in resources.items():
        if key not in RESOURCES:
            problems.add(prefix + ("resources", key), unknown_name("key", key, RESOURCES))
        elif problem := _resource_problem(key, value):
            problems.add(prefix + ("resources", key), problem)
    if "max_attempts" in section and not _is_int(section["max_attempts"], 1):
        problems.add(prefix + ("max_attempts",), f"expected an integer >= 1, got {short(section['max_attempts'])}")


def _shaped(section: dict, key: str, kind: type, prefix: tuple, expected: str, problems: Problems):
    """section[key] when it has the expected shape; absent or null reads as empty."""
    value = section.get(key)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        problems.add(prefix + (key,), f"expected {expected}, got {got(value)}")
        return kind()
    return value


def _is_int(value, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _check_value(param, value, path: tuple, problems: Problems) -> None:
    problem = param.check(value)
    if problem:
        problems.add(path, problem)


def _check_values(param, values, path: tuple, problems: Problems) -> None:
    if not isinstance(values, list) or not values:
        problems.add(path, f"expected a non-empty list of values, got {short(values)}")
        return
    for i, value in enumerate(values):
        _check_value(param, value, path + (i,), problems)
    seen: set[str] = set()
    for i, value in enumerate(values):
        canonical = repr(param.coerce(value))  # 1 and 1.0 are one value of a float parameter
        if canonical in seen:
            problems.add(path + (i,), f"repeated value {short(value)}")
            return
        seen.add(canonical)


def _check_seeds(params, section: dict, prefix: tuple, problems: Problems) -> None:
    if "seeds" in section and "replicates" in section:
        problems.add(prefix + ("seeds",), "give seeds or replicates, not both", where=key_path(prefix + ("seeds",))
                     + ", replicates")
        return
    if "seeds" not in section and "replicates" not in section:
        return
    if "seed" not in params:
        key = "seeds" if "seeds" in section else "replicates"
        problems.add(prefix + (key,), "this kernel has no 'seed' parameter")
    elif "seeds" in section:
        seeds = section["seeds"]
        if not isinstance(seeds, list) or not seeds:
            problems.add(prefix + ("seeds",), f"expected a non-empty list of distinct integers, got {short(seeds)}")
            return
        for i, seed in enumerate(seeds):
            _check_value(params["seed"], seed, prefix + ("seeds", i), problems)
        if len(set(map(repr, seeds))) != len(seeds):
            problems.add(prefix + ("seeds",), f"expected distinct integers, got {short(seeds)}")
    elif not _is_int(section["replicates"], 1) or section["replicates"] > MAX_JOBS:
        problems.add(prefix + ("replicates",), f"expected an integer in [1, {MAX_JOBS:,}], "
                                               f"got {short(section['replicates'])}")


def _resource_problem(key: str, value) -> str | None:
    """cpus, gpus and group_size are whole counts (`gpus: 0.5` would become 0 GPUs; `cpus: 0` divides
    by zero); memory and time are finite and positive."""
    if key in ("cpus", "gpus", "group_size"):
        least = 0 if key == "gpus" else 1
        return None if _is_int(value, least) else f"expected an integer >= {least}, got {short(value)}"
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        return f"expected a finite number > 0, got {short(value)}"
    return None


# --- round 3: every scale's merged view -------------------------------------------------------------

@dataclass
class _View:
    """The grid as one scale plans it: the top level with that scale's overlay applied. `origin`
    keeps where each setting was written, so that a conflict names the line to change."""
    fixed: dict
    axes: dict
    zips: list
    exclude: list
    seeds: Sequence[int] | None
    resources: dict
    max_attempts: int
    prefix: tuple  # the scale's key path, () for a grid without scales
    origin: dict = field(default_factory=dict)  # (section, parameter) or section -> key path

    @classmethod
    def merge(cls, base: dict, overlay: dict, prefix: tuple) -> _View:
        """fixed/axes/resources merge key by key (a parameter moves between fixed and axes if the
        overlay says so); zip, exclude, seeds, replicates and max_attempts are replaced. Both have
        passed round 2, so every section has its shape."""
        origin: dict = {}
        fixed, axes = {}, {}
        for source, path in ((base, ()), (overlay, prefix)):
            for name, value in (source.get("fixed") or {}).items():
                fixed[name] = value
                axes.pop(name, None)
                origin["fixed", name] = path + ("fixed", name)
            for name, values in (source.get("axes") or {}).items():
                axes[name] = values
                fixed.pop(name, None)
                origin["axes", name] = path + ("axes", name)
        replaced = {}
        for key in ("zip", "exclude", "seeds", "replicates", "max_attempts"):
            for source, path in ((base, ()), (overlay, prefix)):
                if key in source:
                    replaced[key] = source[key]
                    origin[key] = path + (key,)
        if "seeds" in overlay:
            replaced.pop("replicates", None)
        if "replicates" in overlay:
            replaced.pop("seeds", None)
        seeds = replaced.get("seeds")
        if seeds is None and replaced.get("replicates") is not None:
            seeds = range(replaced["replicates"])  # a range, not a list: expansion counts before it builds
            origin["seeds"] = origin["replicates"]
        resources = {**(base.get("resources") or {}), **(overlay.get("resources") or {})}
        return cls(fixed=fixed, axes=axes, zips=replaced.get("zip") or [], exclude=replaced.get("exclude") or [],
                   seeds=seeds, resources=resources, max_attempts=replaced.get("max_attempts", 2), prefix=prefix,
                   origin=origin)

    def note(self, path: tuple) -> str:
        """' (scale small)' when a setting written outside this scale is wrong only in it."""
        return f" (scale '{self.prefix[1]}')" if self.prefix and path[:2] != self.prefix else ""


def _check_views(kernel, views: dict[str | None, _View], problems: Problems) -> None:
    params = kernel.params
    missing: dict[str, list[_View]] = {}
    for view in views.values():
        seen: dict[str, tuple] = {}  # parameter -> where it is set

        def claim(name: str, path: tuple) -> None:
            if name in seen:
                problems.add(path, f"'{name}' is already set in {key_path(seen[name])}{view.note(path)}")
            else:
                seen[name] = path

        for name in view.fixed:
            claim(name, view.origin["fixed", name])
        for name in view.axes:
            claim(name, view.origin["axes", name])
        for i, group in enumerate(view.zips):
            for name in group:
                claim(name, view.origin["zip"] + (i, name))
        if view.seeds is not None:
            claim("seed", view.origin["seeds"])
        for name, p in params.items():
            if p.required and name not in seen:
                missing.setdefault(name, []).append(view)
        varying = set(view.axes) | {k for g in view.zips for k in g}
        for i, rule in enumerate(view.exclude):
            for name in rule:
                if name not in varying:
                    path = view.origin["exclude"] + (i, name)
                    problems.add(path, f"exclude rules name axes or zip parameters "
                                       f"({valid_list(sorted(varying)) or 'none defined'}){view.note(path)}")
    for name, lacking in missing.items():
        if len(lacking) == len(views):
            problems.add((), f"required by kernel '{kernel.name}': set it in fixed or axes", where=name)
        else:
            for view in lacking:
                problems.add(view.prefix, f"{name}: required by kernel '{kernel.name}': set it in this scale's "
                                          "fixed or axes, or at the top level")
