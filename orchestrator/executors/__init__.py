"""Executors run a sweep's pending jobs through `orchestrator.runner.run_group` (see the Executor
protocol in orchestrator.contracts): `run()` returns an Outcome, whether the jobs ran here or were
submitted to SLURM.

Every executor has `check()`: what can be verified before anything is created (worker counts, the
scheduler being reachable, the profile's partition existing) raises an OrchError there, so that a
launch, and a dry run, refuses a bad executor before it touches the disk or the scheduler."""
from __future__ import annotations

from orchestrator.contracts import Executor
from orchestrator.errors import OrchError, unknown_name

EXECUTORS = ("local", "slurm")


def make_executor(name: str, workers: int | None = None, profile: str | None = None, bump: str | None = None,
                  progress: bool = True) -> Executor:
    """The executor, given only the options it takes: an option of the other executor is refused (it
    would do nothing). progress: the local executor's live bar on stderr."""
    if name not in EXECUTORS:
        raise OrchError(f"--executor: {unknown_name('executor', name, EXECUTORS)}")
    given = {"--workers": workers, "--profile": profile, "--bump": bump}
    takes = ("--workers",) if name == "local" else ("--profile", "--bump")
    for option, value in given.items():
        if value is not None and option not in takes:
            other = "slurm" if name == "local" else "local"
            raise OrchError(f"{option} applies to --executor {other} only, not to --executor {name}")
    if name == "local":
        from orchestrator.executors.local import LocalExecutor

        return LocalExecutor(workers=workers, progress=progress)
    from orchestrator.executors.slurm import SlurmExecutor, parse_bump
    from orchestrator.profiles import load_profile

    if profile is None:
        raise OrchError("--executor slurm needs --profile NAME (a file in slurm/profiles/, e.g. `local`)")
    return SlurmExecutor(load_profile(profile), parse_bump(bump))
