"""Runs jobs in worker processes on this machine, prerequisites first, with a live progress bar.

Workers die with the launcher (PR_SET_PDEATHSIG), ignore Ctrl-C (the launcher stops them), and write
only through the sweep's atomic publish: killing the launcher at any moment leaves no partial result.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from orchestrator.expand import JobSpec
from orchestrator.runner import run_job
from orchestrator.sweep import Sweep

_PR_SET_PDEATHSIG = 1


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # job id -> last error
    blocked: list[str] = field(default_factory=list)  # a prerequisite failed for good
    interrupted: bool = False


class LocalExecutor:
    blocking = True  # run() returns when every job has finished or failed for good

    def __init__(self, workers: int | None = None, console: Console | None = None):
        self.workers = workers
        self.console = console or Console(stderr=True)

    def run(self, sweep: Sweep, jobs: list[JobSpec], attempts_left: dict[str, int]) -> Outcome:
        cpus = max(int(j.resources.get("cpus", 1)) for j in jobs) if jobs else 1
        workers = self.workers or max(1, (os.cpu_count() or 1) // cpus)
        outcome = Outcome()
        completed = sweep.completed()
        waiting = {j.job_id: j for j in jobs}
        running: dict[Future, JobSpec] = {}
        failed_for_good: set[str] = set()
        context = multiprocessing.get_context("spawn")  # no fork of a process holding threads and locks
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init)
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("failed {task.fields[failed]}"), TimeElapsedColumn(), TextColumn("ETA"),
                            TimeRemainingColumn(), console=self.console, transient=False)
        task = progress.add_task(f"{sweep.meta()['name']} ({workers} workers)", total=len(jobs), failed=0)
        interactive = self.console.is_terminal

        def log(message: str) -> None:
            if not interactive:  # a live bar is noise in a log file: one line per finished job instead
                self.console.print(message, highlight=False, soft_wrap=True)

        def failure(job: JobSpec, message: str) -> None:
            attempts_left[job.job_id] -= 1
            outcome.failed[job.job_id] = message
            if attempts_left[job.job_id] > 0:
                waiting[job.job_id] = job
                log(f"retry  {job.job_id} {job.label}: {message}")
            else:
                failed_for_good.add(job.job_id)
                progress.update(task, advance=1, failed=len(failed_for_good))
                log(f"FAILED {job.job_id} {job.label}: {message}")

        try:
            with progress:
                while waiting or running:
                    for job_id in list(waiting):
                        if len(running) >= workers:
                            break
                        job = waiting[job_id]
                        if any(r in failed_for_good for r in job.requires):
                            outcome.blocked.append(job_id)
                            del waiting[job_id]
                            progress.advance(task)
                        elif all(r in completed for r in job.requires):
                            running[pool.submit(run_job, str(sweep.root), job)] = job
                            del waiting[job_id]
                    if not running:
                        break
                    finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                    broken: list[JobSpec] = []
                    for future in finished:
                        job = running.pop(future)
                        try:
                            summary = future.result()
                        except BrokenProcessPool:
                            broken.append(job)
                            continue
                        except Exception as error:  # the runner already wrote the failure record
                            failure(job, f"{type(error).__name__}: {error}")
                            continue
                        completed.add(job.job_id)
                        outcome.done.append(job.job_id)
                        progress.advance(task)
                        log(f"done   {job.job_id} {job.label} ({summary['seconds']:.1f}s)")
                    if broken:
                        # A dead worker breaks the whole pool: every job in flight is lost with it.
                        broken += list(running.values())
                        running.clear()
                        pool.shutdown(wait=False, cancel_futures=True)
                        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init)
                        for job in broken:
                            message = "a worker process died (killed, or out of memory) while this job ran"
                            sweep.record_failure(job, sweep.attempts(job.job_id) + 1, message, "")
                            failure(job, message)
        except KeyboardInterrupt:
            outcome.interrupted = True
            self._stop(pool)
            return outcome
        pool.shutdown(wait=True)
        for job_id in outcome.done:
            outcome.failed.pop(job_id, None)  # it failed once, then succeeded
        return outcome

    @staticmethod
    def _stop(pool: ProcessPoolExecutor) -> None:
        # Python 3.11 has no public way to kill a pool's workers; results in flight are lost, never
        # half-written, because a shard only appears by an atomic link.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
