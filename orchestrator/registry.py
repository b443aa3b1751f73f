"""Finds kernels through the `orch.kernels` entry points, each a mapping of name -> kernel definition.

A kernel definition is duck-typed: name, version, entry, params (name -> object with .check(value),
.coerce(value), .default, .required), optional check / resolve / fan_out / prerequisites / preflight
hooks, and load() -> run(params, ctx).
"""
from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from orchestrator.errors import OrchError, unknown_name

GROUP = "orch.kernels"


@cache
def kernels() -> dict:
    found: dict = {}
    for ep in entry_points(group=GROUP):
        found.update(ep.load())
    if not found:
        raise OrchError(f"no kernels registered under the entry-point group '{GROUP}': is the project installed?")
    return found


def get_kernel(name: str):
    table = kernels()
    if name not in table:
        raise OrchError(unknown_name("kernel", name, table))
    return table[name]
