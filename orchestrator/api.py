"""The orchestrator as Python functions: what `orch` does, callable from a notebook or a script.

    from orchestrator import api

    api.plan("grids/smoke.yaml").jobs                   # expand and validate; creates nothing
    result = api.launch("grids/smoke.yaml", workers=2)  # runs it here (or submits it: executor="slurm")
    api.status(result.sweep).counts                     # poll: jobs by state
    api.report(result.sweep).files                      # tables and figures (imports analysis then)

The same functions take a study (orchestrator/study.py: a file listing grids, each at a scale) where they
take a grid, and its study folder where they take a sweep folder: api.plan returns a Study, launch and
resume a StudyResult, status a StudyStatus and report a StudyReport, which answer the same questions
(exit_code, count, active, files) for all the grids together.

Every function checks everything first and raises OrchError for bad input before anything is created or
submitted. A launch stopped by Ctrl-C (or SIGTERM, where the caller turns it into KeyboardInterrupt as
`orch` does) raises Interrupted, which is a KeyboardInterrupt that knows the sweep to resume.
"""
from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator.contracts import Executor, Outcome
from orchestrator.errors import OrchError
from orchestrator.executors import make_executor
from orchestrator.expand import JobSpec, Plan, expand
from orchestrator.grid import load_grid
from orchestrator.launch import check_ready, default_cache_dir, default_sweep_dir, job_states, pending_jobs, prepare
from orchestrator.study import Study, StudyFolder, default_study_dir, is_study_folder, read_if_study, study_from
from orchestrator.sweep import Sweep

# The exit codes of `orch`, also LaunchResult.exit_code.
EXIT_DONE, EXIT_FAILED, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 130
STATES = ("done", "queued", "running", "failed", "lost", "pending")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a launch or resume. Finished results are kept. sweep: the folder to
    resume, None when the sweep was not created yet; result: what the run got done, when it had begun."""

    def __init__(self, sweep: Path | None, result: LaunchResult | None = None):
        super().__init__(sweep)
        self.sweep = sweep
        self.result = result


class NothingToReport(Exception):
    """The sweep holds no results to report yet."""


@dataclass(frozen=True)
class LaunchResult:
    sweep: Path
    jobs: list[JobSpec]  # every job of the sweep, prerequisites first
    already_done: int  # jobs whose shard existed before this launch
    failed_before: list[str]  # failed for good before this launch, not rerun (retry_failed reruns them)
    to_run: int  # jobs handed to the executor
    outcome: Outcome = field(default_factory=Outcome)  # what the executor did with them
    plan: Plan | None = None  # launch only (resume reads the jobs from the sweep folder)
    dry_run: bool = False  # every check passed; nothing was created or submitted

    @property
    def exit_code(self) -> int:
        """0: every job done, or everything pending handed to SLURM; 1: some jobs failed for good or were
        blocked by a prerequisite that did; 130: interrupted."""
        if self.outcome.interrupted:
            return EXIT_INTERRUPTED
        if self.outcome.running_elsewhere:
            return EXIT_DONE
        failed = self.outcome.failed or self.outcome.blocked or self.failed_before
        return EXIT_FAILED if failed else EXIT_DONE


@dataclass(frozen=True)
class FailureReason:
    """Jobs whose last attempt failed the same way."""
    reason: str  # the first line of the error, at most 160 characters
    retryable: bool  # whether a rerun can change it
    jobs: int
    example: Path  # one of their failure records


@dataclass(frozen=True)
class SweepStatus:
    name: str
    root: Path
    states: dict[str, str]  # job id -> one of STATES; a shard is the only proof of done
    counts: dict[str, Counter]  # "grid" / "prerequisite" -> state -> jobs
    running_here: dict[str, dict]  # job id -> record, for jobs running on the local executor now
    failures: list[FailureReason]  # of the jobs in state failed, most common first

    def count(self, state: str) -> int:
        return sum(counter[state] for counter in self.counts.values())

    @property
    def active(self) -> int:
        """Jobs queued or running: poll until this is 0."""
        return self.count("queued") + self.count("running")


@dataclass(frozen=True)
class Report:
    summary: Any  # metrics by factor (a polars DataFrame, compacted for display)
    notes: list[str]  # why a metric or a table is missing, once each
    files: list[Path]  # every file written


def job_count(jobs: list[JobSpec]) -> str:
    """'10 jobs + 1 prerequisite', the same words in plan, launch and resume."""
    prerequisites = sum(1 for j in jobs if j.prerequisite)
    grid_jobs = len(jobs) - prerequisites
    text = f"{grid_jobs} job{'s' if grid_jobs != 1 else ''}"
    if prerequisites:
        text += f" + {prerequisites} prerequisite{'s' if prerequisites != 1 else ''}"
    return text


def plan(grid: str | Path, scale: str | None = None) -> Plan | Study:
    """Loads, validates and expands a grid file (a Plan), or every grid of a study file (a Study, at the
    study scale `scale`); creates nothing."""
    study = read_if_study(grid)
    if study is not None:
        return study_from(study, scale)
    return expand(load_grid(grid, scale))


def launch(grid: str | Path, scale: str | None = None, sweep_dir: str | Path | None = None, executor: str = "local",
           profile: str | None = None, workers: int | None = None, dry_run: bool = False,
           retry_failed: bool = False, cache_dir: str | Path | None = None, progress: bool = True) -> LaunchResult:
    """Runs a grid's jobs that have no shard in the sweep folder (default runs/<grid name>[-<scale>]),
    or with executor="slurm" submits them and returns. progress: a line of counts and the local
    executor's live bar on stderr. A study file runs (or submits) all its grids into one study folder
    (default runs/<study>[-<scale>]) and returns a StudyResult."""
    study = read_if_study(grid)
    if study is not None:
        return _launch_study(study_from(study, scale), sweep_dir, executor, profile, workers, dry_run, retry_failed,
                             cache_dir, progress)
    # Every check first, in this order; only then does anything touch the disk or the scheduler.
    the_plan = plan(grid, scale)
    check_ready(the_plan.all_jobs, the_plan.grid.source, submits=executor == "slurm")
    runner = make_executor(executor, workers=workers, profile=profile, progress=progress)
    runner.check()
    sweep = Sweep(sweep_dir or default_sweep_dir(the_plan))
    sweep.check_target()
    sweep.check_compatible(the_plan)
    if dry_run:
        return LaunchResult(sweep.root, the_plan.all_jobs, 0, [], 0, plan=the_plan, dry_run=True)
    try:
        with sweep.lock():
            prepare(the_plan, sweep, Path(cache_dir) if cache_dir else None)
            result = _run(sweep, the_plan.all_jobs, the_plan.grid.max_attempts, retry_failed, runner, progress)
    except Interrupted:
        raise
    except KeyboardInterrupt:
        raise Interrupted(sweep.root if sweep.exists() else None) from None
    return replace(result, plan=the_plan)


def resume(sweep_dir: str | Path, executor: str = "local", profile: str | None = None, bump: str | None = None,
           workers: int | None = None, retry_failed: bool = False, progress: bool = True) -> LaunchResult:
    """Runs what a sweep folder still lacks, from the folder alone (its frozen grid and manifest). Jobs
    that SLURM still holds are never submitted again. bump (SLURM): e.g. "mem=2x,time=2x" raises the
    resources of jobs killed for memory or time. A study folder resumes each of its grids in turn."""
    if is_study_folder(sweep_dir):
        return _resume_study(StudyFolder(sweep_dir), executor, profile, bump, workers, retry_failed, progress)
    sweep = Sweep(sweep_dir)
    meta = sweep.meta()
    jobs = sweep.jobs()
    check_ready(jobs, str(sweep.root / "grid.yaml"), submits=executor == "slurm")
    runner = make_executor(executor, workers=workers, profile=profile, bump=bump, progress=progress)
    runner.check()
    try:
        with sweep.lock():
            sweep.clean_stale_running()
            return _run(sweep, jobs, meta["max_attempts"], retry_failed, runner, progress)
    except Interrupted:
        raise
    except KeyboardInterrupt:
        raise Interrupted(sweep.root) from None


def _run(sweep: Sweep, jobs: list[JobSpec], max_attempts: int, retry_failed: bool, runner: Executor,
         progress: bool) -> LaunchResult:
    pending = pending_jobs(sweep, jobs, max_attempts, retry_failed)
    if progress:
        print(f"{sweep.root}: {job_count(jobs)}, {pending.done} already done, {len(pending.jobs)} to run"
              + (f", {len(pending.exhausted)} failed for good (--retry-failed to rerun)" if pending.exhausted else ""),
              file=sys.stderr, flush=True)
    outcome = runner.run(sweep, pending.jobs, pending.attempts_left) if pending.jobs else Outcome()
    result = LaunchResult(sweep.root, jobs, pending.done, pending.exhausted, len(pending.jobs), outcome)
    if outcome.interrupted:
        raise Interrupted(sweep.root, result)
    return result


def status(sweep_dir: str | Path) -> SweepStatus:
    """Jobs by state, merging the SLURM queue (if the sweep was submitted there) with the shards, and
    the failure reasons grouped. A study folder: a StudyStatus, one SweepStatus per grid."""
    if is_study_folder(sweep_dir):
        folder = StudyFolder(sweep_dir)
        meta = folder.meta()
        name = meta["name"] if meta["scale"] is None else f"{meta['name']}-{meta['scale']}"
        return StudyStatus(name, folder.root, {s.root.name: status(s.root) for s in folder.sweeps()})
    sweep = Sweep(sweep_dir)
    meta = sweep.meta()
    jobs = sweep.jobs()
    states = job_states(sweep, jobs, meta["max_attempts"])
    counts: dict[str, Counter] = {"grid": Counter(), "prerequisite": Counter()}
    for job in jobs:
        counts["prerequisite" if job.prerequisite else "grid"][states[job.job_id]] += 1
    reasons: Counter = Counter()
    example: dict[tuple[str, bool], Path] = {}
    for job_id, records in sweep.failures().items():
        if states.get(job_id) != "failed":
            continue
        last = records[-1]
        key = ((last["error"].splitlines() or [""])[0][:160], bool(last["retryable"]))
        reasons[key] += 1
        example.setdefault(key, sweep.root / "failures" / f"{job_id}.{last['attempt']:03d}.json")
    failures = [FailureReason(reason, again, n, example[(reason, again)])
                for (reason, again), n in reasons.most_common()]
    return SweepStatus(meta["name"], sweep.root, states, counts, sweep.running(), failures)


def cancel(sweep_dir: str | Path) -> list[str]:
    """Cancels the sweep's SLURM arrays that are still queued or running (of every grid, for a study
    folder); returns their ids."""
    from orchestrator.executors.slurm import cancel as cancel_arrays

    if is_study_folder(sweep_dir):
        return [array for sweep in StudyFolder(sweep_dir).sweeps() for array in cancel(sweep.root)]
    sweep = Sweep(sweep_dir)
    sweep.check()
    return cancel_arrays(sweep)


def logs(sweep_dir: str | Path, job_id: str) -> list[Path]:
    """The stdout and stderr files of the SLURM array task that ran a job (they may not exist yet); in a
    study folder, of the grid that holds the job."""
    from orchestrator.executors.slurm import log_paths

    if is_study_folder(sweep_dir):
        folder = StudyFolder(sweep_dir)
        for sweep in folder.sweeps():
            if any(job.job_id == job_id for job in sweep.jobs()):
                return logs(sweep.root, job_id)
        raise OrchError(f"{folder.root}: no grid of this study has a job {job_id!r}")
    sweep = Sweep(sweep_dir)
    sweep.check()
    return log_paths(sweep, job_id)


def report(sweep_dir: str | Path, out_dir: str | Path | None = None, html: bool = False,
           pdf: bool = False) -> Report:
    """Every table and figure the sweep has data for, in out_dir (default <sweep>/report); html: also
    report.html, one self-contained page; pdf: every figure as PDF too. The analysis layer is imported
    here, not with the orchestrator. Raises NothingToReport when the sweep has no results yet. A study
    folder: one report of every grid with results (a StudyReport)."""
    if is_study_folder(sweep_dir):
        return _report_study(StudyFolder(sweep_dir), out_dir, html, pdf)
    sweep = Sweep(sweep_dir)
    sweep.check()  # a wrong path is refused before a report folder is made there
    from analysis.report import write_report
    from analysis.tables import compact

    try:
        written = write_report(sweep.root, out_dir, pdf=pdf, grids=html)
    except FileNotFoundError as error:
        raise NothingToReport(str(error)) from None
    files = list(written.files)
    if html:
        from analysis.html_report import write_html

        states = job_states(sweep, sweep.jobs(), sweep.meta()["max_attempts"])
        files.append(write_html(sweep.root, written, states,
                                (Path(out_dir) if out_dir else sweep.root / "report") / "report.html"))
    return Report(compact(written.table), list(written.notes), files)


# --- studies: the grids of a study file as one unit ----------------------------------------------------


@dataclass(frozen=True)
class StudyResult:
    """A study's launch or resume: one LaunchResult per grid it got to, in the study's order."""
    sweep: Path  # the study folder: what status, resume and report take
    grids: list[LaunchResult]
    study: Study | None = None  # launch only
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        """As a grid's: 130 interrupted, 1 some job of some grid failed for good or was blocked, else 0."""
        codes = {result.exit_code for result in self.grids}
        return next((code for code in (EXIT_INTERRUPTED, EXIT_FAILED) if code in codes), EXIT_DONE)


@dataclass(frozen=True)
class StudyStatus:
    name: str
    root: Path
    grids: dict[str, SweepStatus]  # sweep folder name -> its status, in the study's order

    def count(self, state: str) -> int:
        return sum(found.count(state) for found in self.grids.values())

    @property
    def active(self) -> int:
        """Jobs queued or running in any grid: poll until this is 0."""
        return sum(found.active for found in self.grids.values())


@dataclass(frozen=True)
class StudyReport:
    grids: dict[str, Any]  # sweep folder name -> its analysis.report.Report, None while it has no results
    files: list[Path]  # every file written: index.md (and report.html) first, then each grid's


def _launch_study(study: Study, study_dir: str | Path | None, executor: str, profile: str | None,
                  workers: int | None, dry_run: bool, retry_failed: bool, cache_dir: str | Path | None,
                  progress: bool) -> StudyResult:
    """Every check of every grid first; then the study folder and all its sweep folders; then the grids
    one after another (on SLURM: each submitted in turn)."""
    for grid in study.grids:
        check_ready(grid.plan.all_jobs, grid.plan.grid.source, submits=executor == "slurm")
    runner = make_executor(executor, workers=workers, profile=profile, progress=progress)
    runner.check()
    folder = StudyFolder(study_dir or default_study_dir(study))
    folder.check_target(study)
    sweeps = [Sweep(folder.root / grid.folder) for grid in study.grids]
    for sweep, grid in zip(sweeps, study.grids):
        sweep.check_target()
        sweep.check_compatible(grid.plan)
    if dry_run:
        return StudyResult(folder.root, [LaunchResult(sweep.root, grid.plan.all_jobs, 0, [], 0, plan=grid.plan,
                                                      dry_run=True) for sweep, grid in zip(sweeps, study.grids)],
                           study, dry_run=True)
    # One cache for every grid, beside the study folder as beside a sweep: a model is trained once.
    cache = Path(cache_dir) if cache_dir else default_cache_dir(folder.root)
    results: list[LaunchResult] = []
    try:
        with folder.lock():
            first = not folder.exists()
            if first:
                folder.freeze(study)
            for sweep, grid in zip(sweeps, study.grids):
                with sweep.lock():
                    prepare(grid.plan, sweep, cache)
            if first:
                folder.commit(study)  # from here on the folder alone resumes the study
            for n, (sweep, grid) in enumerate(zip(sweeps, study.grids), 1):
                _announce(folder, n, len(sweeps), sweep, progress)
                with sweep.lock():
                    result = _run(sweep, grid.plan.all_jobs, grid.plan.grid.max_attempts, retry_failed, runner,
                                  progress)
                results.append(replace(result, plan=grid.plan))
    except Interrupted as stop:
        raise Interrupted(folder.root, stop.result) from None
    except KeyboardInterrupt:
        raise Interrupted(folder.root if folder.exists() else None) from None
    return StudyResult(folder.root, results, study)


def _resume_study(folder: StudyFolder, executor: str, profile: str | None, bump: str | None, workers: int | None,
                  retry_failed: bool, progress: bool) -> StudyResult:
    loaded = [(sweep, sweep.meta(), sweep.jobs()) for sweep in folder.sweeps()]
    for sweep, _, jobs in loaded:
        check_ready(jobs, str(sweep.root / "grid.yaml"), submits=executor == "slurm")
    runner = make_executor(executor, workers=workers, profile=profile, bump=bump, progress=progress)
    runner.check()
    results: list[LaunchResult] = []
    try:
        with folder.lock():
            for n, (sweep, meta, jobs) in enumerate(loaded, 1):
                _announce(folder, n, len(loaded), sweep, progress)
                with sweep.lock():
                    sweep.clean_stale_running()
                    results.append(_run(sweep, jobs, meta["max_attempts"], retry_failed, runner, progress))
    except Interrupted as stop:
        raise Interrupted(folder.root, stop.result) from None
    except KeyboardInterrupt:
        raise Interrupted(folder.root) from None
    return StudyResult(folder.root, results)


def _announce(folder: StudyFolder, n: int, total: int, sweep: Sweep, progress: bool) -> None:
    if progress:
        print(f"{folder.root.name}: grid {n} of {total}, {sweep.root.name}", file=sys.stderr, flush=True)


def _report_study(folder: StudyFolder, out_dir: str | Path | None, html: bool, pdf: bool) -> StudyReport:
    """Each grid's report in <out>/<sweep folder>/ (out: default <study>/report), composed into
    <out>/index.md and, with html, <out>/report.html. Grids without results keep their heading."""
    from analysis.report import write_report
    from analysis.study_report import GridSection, write_index, write_study_html

    meta = folder.meta()
    out = Path(out_dir) if out_dir else folder.root / "report"
    sections, reports, grid_files = [], {}, []
    for entry, sweep in zip(meta["grids"], folder.sweeps()):
        sweep_meta = sweep.check()
        try:
            written = write_report(sweep.root, out / sweep.root.name, pdf=pdf, grids=html)
            grid_files += written.files
        except FileNotFoundError:  # no results yet
            written = None
        reports[sweep.root.name] = written
        states = job_states(sweep, sweep.jobs(), sweep_meta["max_attempts"])
        heading = f"{sweep.root.name}: {entry['grid']}, kernel {sweep_meta['kernel']}" + \
            (f", scale {entry['scale']}" if entry.get("scale") else "")
        sections.append(GridSection(heading, sweep.root, written, states))
    if not any(reports.values()):
        raise NothingToReport(f"{folder.root}: no grid of the study has results yet")
    title = f"Study {meta['name']}" + (f", scale {meta['scale']}" if meta["scale"] else "")
    files = [write_index(title, sections, out)]
    if html:
        files.append(write_study_html(title, sections, out / "report.html"))
    return StudyReport(reports, files + grid_files)
