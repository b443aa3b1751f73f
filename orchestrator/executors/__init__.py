"""Executors run a sweep's pending jobs through `orchestrator.runner.run_job`."""
from __future__ import annotations

from orchestrator.errors import OrchError, unknown_name


EXECUTORS = ("local", "slurm")


def make_executor(name: str, workers: int | None = None, profile: str | None = None, bump: str | None = None):
    if name not in EXECUTORS:
        raise OrchError(f"--executor: {unknown_name('executor', name, EXECUTORS)}")
    if name == "local":
        from orchestrator.executors.local import LocalExecutor

        return LocalExecutor(workers=workers)
    from orchestrator.executors.slurm import SlurmExecutor, parse_bump
    from orchestrator.profiles import load_profile

    if profile is None:
        raise OrchError("--executor slurm needs --profile NAME (a file in slurm/profiles/, e.g. `local`)")
    return SlurmExecutor(load_profile(profile), parse_bump(bump))
