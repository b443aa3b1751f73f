"""Runs jobs in worker processes on this machine, prerequisites first, with a live progress bar.
Each worker task is one group of jobs (orchestrator.groups; one job unless the grid sets group_size);
progress, retries and failures stay per job.

Workers die with the launcher (PR_SET_PDEATHSIG), ignore Ctrl-C and SIGTERM (the launcher stops them),
and write only through the sweep's atomic publish: killing the launcher at any moment leaves no partial
result. While a job runs, its worker keeps a record in <sweep>/running/ for `orch status`.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from orchestrator.contracts import JobRun, Outcome
from orchestrator.errors import OrchError
from orchestrator.expand import JobSpec
from orchestrator.groups import group_jobs
from orchestrator.runner import retryable, run_group
from orchestrator.sweep import Sweep

_PR_SET_PDEATHSIG = 1
_REFRESH_SECONDS = 1.0  # how often the ETA and the running jobs are redrawn while nothing finishes
_NAME_WIDTH = 48  # characters of each running job's name in the progress line


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a signal to the whole process group: the launcher decides
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _run_in_worker(sweep_root: str, group: list[JobSpec]) -> list[JobRun]:
    """run_group, with a record of each running job that `orch status` reads while it runs."""
    sweep = Sweep(sweep_root)
    for job in group:
        sweep.mark_running(job)
    try:
        return run_group(sweep_root, group)
    finally:
        for job in group:
            sweep.unmark_running(job.job_id)


def job_name(job: JobSpec, width: int = _NAME_WIDTH) -> str:
    """'train_model dataset=embedded,model=resnet18,…': the kernel, then as much of the label as fits."""
    text = f"{job.kernel} {job.label}".strip()
    return text if len(text) <= width else text[:width - 1] + "…"


def eta_text(durations: list[float], remaining: int, workers: int) -> str:
    """Mean duration of the finished jobs x jobs left / workers busy on them; '?' before any finished."""
    if not remaining:
        return "0:00:00"
    if not durations:
        return "?"
    seconds = sum(durations) / len(durations) * remaining / min(workers, remaining)
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds < 86400 else f"{seconds / 86400:.1f} days"


class _SweepProgress(Progress):
    """The bar, and below it one line naming the jobs running now (beside the bar, long names would
    squeeze it out of the line)."""

    running_now = ""

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        if self.running_now:
            width = self.console.width - 1
            line = self.running_now if len(self.running_now) <= width else self.running_now[:width - 1] + "…"
            yield Text(line)


class LocalExecutor:
    """Runs every job before run() returns (or on Ctrl-C), one group per worker at a time."""

    def __init__(self, workers: int | None = None, progress: bool = True):
        self.workers = workers
        self.progress = progress  # the live bar (or one line per job in a log file) on stderr
        self.console = Console(stderr=True, quiet=not progress)

    def check(self) -> None:
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise OrchError(f"--workers: expected an integer >= 1, got {self.workers}")

    def run(self, sweep: Sweep, jobs: list[JobSpec], attempts_left: dict[str, int]) -> Outcome:
        cpus = max(int(j.resources.get("cpus", 1)) for j in jobs) if jobs else 1
        workers = self.workers or max(1, (os.cpu_count() or 1) // max(1, cpus))
        outcome = Outcome()
        clock = time.monotonic()
        completed = sweep.completed()
        waiting: list[list[JobSpec]] = group_jobs(jobs)  # a group's jobs share their prerequisites
        running: dict[Future, list[JobSpec]] = {}
        failed_for_good: set[str] = set()
        durations: list[float] = []  # seconds per job finished in this launch, for the ETA
        context = multiprocessing.get_context("spawn")  # no fork of a process holding threads and locks
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init)
        progress = _SweepProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("failed {task.fields[failed]}"), TimeElapsedColumn(),
                                  TextColumn("ETA {task.fields[eta]}"), console=self.console, transient=False,
                                  disable=not self.progress)
        task = progress.add_task(f"{sweep.meta()['name']} ({workers} workers)", total=len(jobs), failed=0, eta="?")
        interactive = self.console.is_terminal

        def log(message: str) -> None:
            if not interactive:  # a live bar is noise in a log file: one line per started and finished job
                self.console.print(message, highlight=False, soft_wrap=True, markup=False)

        def redraw() -> None:
            left = sum(map(len, waiting)) + sum(map(len, running.values()))
            names = [job_name(job) for group in running.values() for job in group]
            progress.running_now = "running: " + "; ".join(names) if names else ""
            progress.update(task, eta=eta_text(durations, left, workers))

        def failure(job: JobSpec, message: str, again: bool, retry: list[JobSpec]) -> None:
            attempts_left[job.job_id] -= 1
            outcome.failed[job.job_id] = message
            if again and attempts_left[job.job_id] > 0:
                retry.append(job)
                log(f"retry  {job.job_id} {job.label}: {message}")
            else:
                failed_for_good.add(job.job_id)
                progress.update(task, advance=1, failed=len(failed_for_good))
                log(f"FAILED {job.job_id} {job.label}: {message}" + ("" if again else " (a rerun cannot change it)"))

        def finished_group(group: list[JobSpec], runs: list[JobRun], retry: list[JobSpec]) -> None:
            for job, run in zip(group, runs):
                if run.status == "failed":  # the runner already wrote the failure record
                    failure(job, run.error or "", run.retryable, retry)
                    continue
                completed.add(job.job_id)
                outcome.done.append(job.job_id)
                if run.status == "done":
                    durations.append(run.seconds)
                progress.advance(task)
                log(f"done   {job.job_id} {job.label} ({run.seconds:.1f}s)")

        try:
            with progress:
                while waiting or running:
                    still_waiting = []
                    for group in waiting:
                        requires = group[0].requires
                        if len(running) >= workers:
                            still_waiting.append(group)
                        elif any(r in failed_for_good for r in requires):
                            outcome.blocked.extend(job.job_id for job in group)
                            progress.advance(task, len(group))
                        elif all(r in completed for r in requires):
                            running[pool.submit(_run_in_worker, str(sweep.root), group)] = group
                            for job in group:
                                log(f"start  {job_name(job, 200)}")
                        else:
                            still_waiting.append(group)
                    waiting = still_waiting
                    if not running:
                        break
                    redraw()
                    finished, _ = wait(list(running), timeout=_REFRESH_SECONDS, return_when=FIRST_COMPLETED)
                    broken: list[JobSpec] = []
                    retry: list[JobSpec] = []
                    for future in finished:
                        group = running.pop(future)
                        try:
                            finished_group(group, future.result(), retry)
                        except BrokenProcessPool:
                            broken.extend(group)
                        except Exception as error:  # raised outside the kernel: no record yet
                            message = f"{type(error).__name__}: {error}"
                            for job in group:
                                sweep.record_failure(job, sweep.attempts(job.job_id) + 1, message, "",
                                                     retryable=retryable(error))
                                failure(job, message, retryable(error), retry)
                    if broken:
                        # A dead worker breaks the whole pool: every job in flight is lost with it.
                        broken += [job for group in running.values() for job in group]
                        running.clear()
                        pool.shutdown(wait=False, cancel_futures=True)
                        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init)
                        for job in broken:
                            message = "a worker process died (killed, or out of memory) while this job ran"
                            sweep.record_failure(job, sweep.attempts(job.job_id) + 1, message, "")
                            sweep.unmark_running(job.job_id)  # its worker could not remove the record
                            failure(job, message, True, retry)
                    waiting += group_jobs(retry)  # the jobs to retry still share what made their groups
                redraw()
        except KeyboardInterrupt:
            outcome.interrupted = True
            self._stop(pool)
            for group in running.values():
                for job in group:
                    sweep.unmark_running(job.job_id)
            outcome.seconds = time.monotonic() - clock
            return outcome
        pool.shutdown(wait=True)
        for job_id in outcome.done:
            outcome.failed.pop(job_id, None)  # it failed once, then succeeded
        outcome.seconds = time.monotonic() - clock
        return outcome

    @staticmethod
    def _stop(pool: ProcessPoolExecutor) -> None:
        # Python 3.11 has no public way to kill a pool's workers; results in flight are lost, never
        # half-written, because a shard only appears by an atomic link.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
