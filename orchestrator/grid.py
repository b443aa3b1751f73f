"""Grid files: load, apply a scale, validate against the kernel's declared parameters.

A grid is a YAML mapping (see README, "Grid format"). Every problem is collected and reported at once
with the file, the key path, what was expected and the nearest valid name. Nothing here touches disk
beyond reading the file, so `orch plan` and a failing `orch launch` create nothing.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import GridError, OrchError, unknown_name
from orchestrator.registry import kernels

TOP_LEVEL = ("name", "kernel", "description", "fixed", "axes", "zip", "exclude", "seeds", "replicates",
             "resources", "max_attempts", "scales", "default_scale")
OVERLAY = ("fixed", "axes", "zip", "exclude", "seeds", "replicates", "resources", "max_attempts")
RESOURCES = {"cpus": 1, "gpus": 0, "mem_gb": 4, "time_min": 60}


class _Loader(yaml.SafeLoader):
    """safe_load, but `1e-2` is a float as in YAML 1.2 (YAML 1.1 demands `1.0e-2`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


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
    seeds: list[int] | None
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
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise OrchError(f"{source}: cannot read grid file ({e.strerror})") from None
    return parse_grid(text, source, scale)


def parse_grid(text: str, source: str, scale: str | None = None) -> Grid:
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise GridError(source, [f"not valid YAML: {e}"]) from None
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise GridError(source, ["expected a mapping at the top level (name:, kernel:, axes:, ...)"])
    for key in raw:
        if key not in TOP_LEVEL:
            problems.append(f"{key}: {unknown_name('key', key, TOP_LEVEL)}")
    for key in ("name", "kernel"):
        if not isinstance(raw.get(key), str) or not raw.get(key):
            problems.append(f"{key}: required, expected a non-empty string")
    if problems:
        raise GridError(source, problems)
    table = kernels()
    if raw["kernel"] not in table:
        raise GridError(source, [f"kernel: {unknown_name('kernel', raw['kernel'], table)}"])
    kernel = table[raw["kernel"]]

    scales = raw.get("scales") or {}
    if not isinstance(scales, dict):
        raise GridError(source, ["scales: expected a mapping of scale name -> overlay"])
    chosen = scale or raw.get("default_scale")
    if scale is None and scales and chosen is None:
        raise GridError(source, [f"default_scale: required when scales are defined (one of: {', '.join(scales)})"])
    merged = copy.deepcopy({k: v for k, v in raw.items() if k in OVERLAY})
    if chosen is not None:
        if chosen not in scales:
            where = "--scale" if scale else "default_scale"
            raise GridError(source, [f"{where}: {unknown_name('scale', chosen, scales)}"])
        overlay = scales[chosen] or {}
        if not isinstance(overlay, dict):
            raise GridError(source, [f"scales.{chosen}: expected a mapping"])
        for key in overlay:
            if key not in OVERLAY:
                problems.append(f"scales.{chosen}.{key}: {unknown_name('key', key, OVERLAY)}")
        merged = _apply_overlay(merged, overlay)

    fixed = _mapping(merged, "fixed", problems)
    axes = _mapping(merged, "axes", problems)
    zips = merged.get("zip") or []
    if not isinstance(zips, list) or not all(isinstance(z, dict) for z in zips):
        problems.append("zip: expected a list of mappings (parameter -> list of values, equal lengths)")
        zips = []
    exclude = merged.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(r, dict) for r in exclude):
        problems.append("exclude: expected a list of mappings (parameter -> value or list of values)")
        exclude = []

    params = kernel.params
    seen: dict[str, str] = {}

    def claim(name: str, where: str) -> bool:
        if name not in params:
            problems.append(f"{where}: {unknown_name('parameter', name, params, f' of kernel {kernel.name!r}')}")
            return False
        if name in seen:
            problems.append(f"{where}: '{name}' is already set in {seen[name]}")
            return False
        seen[name] = where
        return True

    for name, value in fixed.items():
        if claim(name, f"fixed.{name}"):
            _check_value(params[name], value, f"fixed.{name}", problems)
    for name, values in axes.items():
        if claim(name, f"axes.{name}"):
            _check_values(params[name], values, f"axes.{name}", problems)
    for i, group in enumerate(zips):
        lengths = {len(v) for v in group.values() if isinstance(v, list)}
        if len(lengths) > 1:
            problems.append(f"zip[{i}]: lists of one group must have equal lengths, got {sorted(lengths)}")
        for name, values in group.items():
            if claim(name, f"zip[{i}].{name}"):
                _check_values(params[name], values, f"zip[{i}].{name}", problems)
    varying = set(axes) | {k for g in zips for k in g}
    for i, rule in enumerate(exclude):
        for name, value in rule.items():
            if name not in varying:
                problems.append(f"exclude[{i}].{name}: exclude rules name axes or zip parameters "
                                f"({', '.join(sorted(varying)) or 'none defined'})")
            elif name in params:
                for v in value if isinstance(value, list) else [value]:
                    _check_value(params[name], v, f"exclude[{i}].{name}", problems)

    seeds = _seeds(merged, params, seen, problems)
    for name, p in params.items():
        if p.required and name not in seen:
            problems.append(f"{name}: required by kernel '{kernel.name}': set it in fixed or axes")
    resources = _resources(merged.get("resources"), problems)
    max_attempts = merged.get("max_attempts", 2)
    if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
        problems.append(f"max_attempts: expected an integer >= 1, got {max_attempts!r}")
    if problems:
        if chosen:
            problems = [p if p.startswith("scales.") else f"{p} (scale '{chosen}')" for p in problems]
        raise GridError(source, problems)
    return Grid(name=raw["name"], kernel=kernel, source=source, text=text, scale=chosen, fixed=fixed, axes=axes,
                zips=zips, exclude=exclude, seeds=seeds, resources=resources, max_attempts=max_attempts,
                scales=list(scales))


def _apply_overlay(base: dict, overlay: dict) -> dict:
    """fixed/axes/resources merge key by key (a parameter moves between fixed and axes if the
    overlay says so); zip, exclude, seeds, replicates and max_attempts are replaced."""
    merged = dict(base)
    fixed, axes = dict(base.get("fixed") or {}), dict(base.get("axes") or {})
    for name, value in (overlay.get("fixed") or {}).items():
        fixed[name] = value
        axes.pop(name, None)
    for name, values in (overlay.get("axes") or {}).items():
        axes[name] = values
        fixed.pop(name, None)
    merged["fixed"], merged["axes"] = fixed, axes
    merged["resources"] = {**(base.get("resources") or {}), **(overlay.get("resources") or {})}
    for key in ("zip", "exclude", "seeds", "replicates", "max_attempts"):
        if key in overlay:
            merged[key] = overlay[key]
    if "seeds" in overlay:
        merged.pop("replicates", None)
    if "replicates" in overlay:
        merged.pop("seeds", None)
    return merged


def _mapping(merged: dict, key: str, problems: list[str]) -> dict:
    value = merged.get(key) or {}
    if not isinstance(value, dict):
        problems.append(f"{key}: expected a mapping of parameter -> value, got {type(value).__name__}")
        return {}
    return value


def _check_value(param, value, where: str, problems: list[str]) -> None:
    problem = param.check(value)
    if problem:
        problems.append(f"{where}: {problem}")


def _check_values(param, values, where: str, problems: list[str]) -> None:
    if not isinstance(values, list) or not values:
        problems.append(f"{where}: expected a non-empty list of values, got {values!r}")
        return
    for i, value in enumerate(values):
        _check_value(param, value, f"{where}[{i}]", problems)
    if len({repr(v) for v in values}) != len(values):
        problems.append(f"{where}: repeated values {values!r}")


def _seeds(merged: dict, params, seen: dict, problems: list[str]) -> list[int] | None:
    if "seeds" in merged and "replicates" in merged:
        problems.append("seeds, replicates: give one of them, not both")
        return None
    if "seeds" in merged:
        seeds = merged["seeds"]
        ok = isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        if not ok or len(set(seeds)) != len(seeds):
            problems.append(f"seeds: expected a non-empty list of distinct integers, got {seeds!r}")
            return None
    elif "replicates" in merged:
        n = merged["replicates"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            problems.append(f"replicates: expected an integer >= 1, got {n!r}")
            return None
        seeds = list(range(n))
    else:
        return None
    if "seed" not in params:
        problems.append("seeds: this kernel has no 'seed' parameter")
    elif "seed" in seen:
        problems.append(f"seeds: 'seed' is already set in {seen['seed']}")
    return seeds


def _resources(value, problems: list[str]) -> dict:
    value = value or {}
    if not isinstance(value, dict):
        problems.append("resources: expected a mapping (cpus, gpus, mem_gb, time_min)")
        return dict(RESOURCES)
    for key, v in value.items():
        if key not in RESOURCES:
            problems.append(f"resources.{key}: {unknown_name('key', key, RESOURCES)}")
        elif not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            problems.append(f"resources.{key}: expected a number >= 0, got {v!r}")
    return {**RESOURCES, **{k: v for k, v in value.items() if k in RESOURCES}}
