"""Executors run a sweep's pending jobs through `orchestrator.runner.run_job`."""
from __future__ import annotations

from orchestrator.errors import OrchError, unknown_name


def make_executor(name: str, **options):
    from orchestrator.executors.local import LocalExecutor

    executors = {"local": LocalExecutor}
    if name not in executors:
        raise OrchError(f"--executor: {unknown_name('executor', name, executors)}")
    return executors[name](**options)
