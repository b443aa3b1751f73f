"""Executors run a sweep's pending jobs through `orchestrator.runner.run_job`.

Every executor has `check()`: what can be verified before anything is created (worker counts, the
scheduler being reachable, the profile's partition existing) raises an OrchError there, so that a
launch, and a dry run, refuses a bad executor before it touches the disk or the scheduler."""
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


def check_executor(executor) -> None:
    """Runs the executor's own checks, where it has any."""
    check = getattr(executor, "check", None)
    if check is not None:
        check()
