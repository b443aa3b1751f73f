"""Finds kernels through the `orch.kernels` entry points, each a mapping of name -> kernel definition.

A kernel definition is duck-typed: what the orchestrator reads of it is written down in
orchestrator.contracts (the Kernel protocol).
"""
from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from orchestrator.contracts import Kernel
from orchestrator.errors import OrchError, unknown_name

GROUP = "orch.kernels"


@cache
def kernels() -> dict[str, Kernel]:
    found: dict = {}
    for ep in entry_points(group=GROUP):
        found.update(ep.load())
    if not found:
        raise OrchError(f"no kernels registered under the entry-point group '{GROUP}': is the project installed?")
    return found


def get_kernel(name: str) -> Kernel:
    table = kernels()
    if name not in table:
        raise OrchError(unknown_name("kernel", name, table))
    return table[name]
