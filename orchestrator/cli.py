"""`orch`: plan, launch, resume, status and report sweeps of grid files, and studies (several grids as
one unit: a study file where a grid is taken, its study folder where a sweep is). A thin layer over
orchestrator.api: parse the arguments, call the API, print what it returns.

Exit codes: 0 all jobs done (SLURM: submitted), 1 some jobs failed for good or were blocked by a failed
prerequisite, 2 bad input or refused (nothing was created), 130 interrupted (Ctrl-C or SIGTERM)."""
from __future__ import annotations

import re
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestrator import api
from orchestrator.api import EXIT_DONE, EXIT_INTERRUPTED, EXIT_REFUSED, STATES, job_count
from orchestrator.errors import OrchError
from orchestrator.expand import Plan
from orchestrator.groups import group_jobs, group_size
from orchestrator.study import Study
# click's base of usage errors; recent typer vendors its own copy of click, so it is found from typer.
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _Orch(typer.Typer):
    """A mistyped option or command is one `error:` line with exit code 2, like every other refusal
    (click's own report takes four lines and a usage box)."""

    def __call__(self, *args, **kwargs):
        try:
            kwargs.setdefault("prog_name", "orch")  # also when run as `python -m orchestrator.cli`
            code = super().__call__(*args, standalone_mode=False, **kwargs)
        except _ClickException as error:
            where = f"{error.ctx.command_path}: " if getattr(error, "ctx", None) else ""
            hint = f" (see `{error.ctx.command_path} --help`)" if getattr(error, "ctx", None) else ""
            err.print(f"error: {where}{error.format_message()}{hint}", highlight=False, markup=False, soft_wrap=True)
            sys.exit(EXIT_REFUSED)
        except typer.Abort:
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else EXIT_DONE)


# Plain click help: typer's rich help shows a <bool> type beside every flag, as if it took a value.
app = _Orch(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
            help="Sweeps of gradient inversion attacks: grid YAML -> jobs -> Parquet shards -> tables.")
# Wide enough for a factor table when the output goes to a log file rather than a terminal.
out = Console(width=None if Console().is_terminal else 160)
err = Console(stderr=True, width=None if Console(stderr=True).is_terminal else 160)

Scale = Annotated[Optional[str], typer.Option("--scale", help="named scale of the grid (default: its default_scale)")]
Workers = Annotated[Optional[int], typer.Option("--workers", help="local worker processes (default: cores / cpus per job)")]
RetryFailed = Annotated[bool, typer.Option("--retry-failed", help="give jobs that used up max_attempts another round")]
Executor = Annotated[str, typer.Option(help="where jobs run: local (this machine) or slurm (needs --profile)")]
ProfileOpt = Annotated[Optional[str], typer.Option("--profile", help="SLURM site profile: NAME of slurm/profiles/NAME.yaml, or a path")]
Bump = Annotated[Optional[str], typer.Option(help="slurm: raise resources of jobs killed for memory or time, e.g. mem=2x,time=2x")]


def _fail(error: OrchError) -> None:
    # As Text, not markup: a message may hold brackets ("[A-Za-z0-9._-]+", a list of values).
    err.print(Text.assemble(("error:", "red"), " ", str(error)), highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_REFUSED)


def _stop_on_sigterm() -> None:
    """SIGTERM (what SLURM and `timeout` send) stops a launch as Ctrl-C does."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _interrupted(stop: KeyboardInterrupt) -> None:
    result = getattr(stop, "result", None)
    if result is not None:
        _print_outcome(result)
    sweep = getattr(stop, "sweep", None)
    if sweep is not None:
        err.print(f"interrupted; finished results are kept. Continue with: orch resume {sweep}", highlight=False)
    else:
        err.print("interrupted before the sweep was created; nothing to resume", highlight=False)
    raise typer.Exit(EXIT_INTERRUPTED)


def natural_key(value) -> tuple:
    """Numbers by value, then text with its digit runs compared as numbers: resnet18 < resnet34 < resnet101."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    parts = re.split(r"(\d+)", str(value))
    return (1, tuple(int(p) if i % 2 else p for i, p in enumerate(parts)))


def _print_plan(plan: Plan, first: int = 10) -> None:
    grid = plan.grid
    groups = ""
    if any(group_size(job) > 1 for job in plan.all_jobs):
        groups = f" in {len(group_jobs(plan.all_jobs))} groups (group_size {grid.resources['group_size']})"
    out.print(f"[bold]{grid.name}[/bold] ({grid.source}, kernel {grid.kernel.name}"
              f"{', scale ' + grid.scale if grid.scale else ''}): [bold]{job_count(plan.all_jobs)}[/bold]{groups}",
              highlight=False)
    counts = Table("parameter", "values (jobs each)", title="per-axis counts", title_justify="left")
    for name, counter in plan.axis_counts().items():
        values = sorted(counter, key=natural_key)
        if len(counter) > 12:  # a fan-out such as batch_index: its range says enough
            counts.add_row(name, f"{len(counter)} values, {values[0]} .. {values[-1]}")
        else:
            counts.add_row(name, ", ".join(f"{v} ({counter[v]})" for v in values))
    out.print(counts)
    jobs = Table("job_id", "label", "requires", title=f"first {min(first, len(plan.all_jobs))} jobs",
                 title_justify="left")
    for job in plan.all_jobs[:first]:
        jobs.add_row(job.job_id, job.label, ", ".join(job.requires))
    out.print(jobs)


def _print_outcome(result: api.LaunchResult) -> None:
    outcome = result.outcome
    if not result.to_run:
        return
    if outcome.already_queued:
        err.print(f"{len(outcome.already_queued)} of them are already queued or running: not submitted again",
                  highlight=False)
    if outcome.submitted:
        err.print(f"submitted {outcome.submitted_jobs} jobs in {len(outcome.submitted)} array(s): "
                  f"{', '.join(outcome.submitted)}; follow with `orch status {result.sweep}`", highlight=False)
    if outcome.running_elsewhere:
        return
    err.print(f"{len(outcome.done)} done, {len(outcome.failed)} failed, {len(outcome.blocked)} blocked "
              f"in {outcome.seconds:.1f}s", highlight=False)
    if not outcome.interrupted and (outcome.failed or outcome.blocked or result.failed_before):
        err.print(f"see `orch status {result.sweep}` for the failures", highlight=False)


def _print_study(study: Study) -> None:
    """One row per grid: its file, scale, kernel and job counts; then the total."""
    title = f"{study.name} ({study.source}{', scale ' + study.scale if study.scale else ''})"
    table = Table("grid", "file", "scale", "kernel", "jobs", "prerequisites", title=title, title_justify="left")
    for grid in study.grids:
        planned = grid.plan
        table.add_row(grid.folder, planned.grid.source, planned.grid.scale or "", planned.grid.kernel.name,
                      str(len(planned.jobs)), str(len(planned.prerequisites)))
    table.add_row("total", "", "", "", str(sum(len(g.plan.jobs) for g in study.grids)),
                  str(sum(len(g.plan.prerequisites) for g in study.grids)), style="bold")
    out.print(table)
    prerequisites = [job.job_id for grid in study.grids for job in grid.plan.prerequisites]
    if len(set(prerequisites)) < len(prerequisites):  # the same training run needed by several grids
        out.print(f"{len(set(prerequisites))} distinct prerequisites: a model trained for one grid is reused by "
                  "the others from the shared cache", style="dim", highlight=False)


@app.command()
def plan(grid: Path, scale: Scale = None, first: int = 10) -> None:
    """Expand and validate a grid (print the job count, per-axis counts and the first jobs) or a study (the
    job counts per grid and in total). Creates nothing."""
    try:
        planned = api.plan(grid, scale)
    except OrchError as e:
        _fail(e)
    if isinstance(planned, Study):
        _print_study(planned)
    else:
        _print_plan(planned, first)


@app.command()
def launch(
    grid: Path,
    scale: Scale = None,
    sweep_dir: Annotated[Optional[Path], typer.Option(help="default: runs/<grid name>[-<scale>]")] = None,
    executor: Executor = "local",
    profile: ProfileOpt = None,
    workers: Workers = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="every check a launch makes; create and submit nothing")] = False,
    retry_failed: RetryFailed = False,
    cache_dir: Annotated[Optional[Path], typer.Option(help="shared cache (default $ORCH_CACHE_DIR or <sweeps>/.cache)")] = None,
    report: Annotated[bool, typer.Option(help="write the report when a local sweep ends")] = True,
) -> None:
    """Run a grid, or every grid of a study into one study folder. Jobs that already have a shard in the
    sweep directory are skipped."""
    _stop_on_sigterm()
    try:
        result = api.launch(grid, scale, sweep_dir, executor=executor, profile=profile, workers=workers,
                            dry_run=dry_run, retry_failed=retry_failed, cache_dir=cache_dir)
    except OrchError as e:
        _fail(e)
    except KeyboardInterrupt as stop:
        _interrupted(stop)
    if result.dry_run:
        if isinstance(result, api.StudyResult):
            _print_study(result.study)
        else:
            _print_plan(result.plan)
        err.print(f"dry run: every check passed; would launch into {result.sweep}; nothing was created",
                  highlight=False)
        return
    _finish(result, report)


@app.command()
def resume(
    sweep_dir: Path,
    executor: Executor = "local",
    profile: ProfileOpt = None,
    bump: Bump = None,
    workers: Workers = None,
    retry_failed: RetryFailed = False,
    report: Annotated[bool, typer.Option(help="write the report when a local sweep ends")] = True,
) -> None:
    """Run what a sweep directory (or each sweep of a study folder) still lacks, from the directory alone.
    Jobs that SLURM still holds (queued or running) are never submitted again."""
    _stop_on_sigterm()
    try:
        result = api.resume(sweep_dir, executor=executor, profile=profile, bump=bump, workers=workers,
                            retry_failed=retry_failed)
    except OrchError as e:
        _fail(e)
    except KeyboardInterrupt as stop:
        _interrupted(stop)
    _finish(result, report)


def _finish(result: api.LaunchResult | api.StudyResult, report: bool) -> None:
    grids = result.grids if isinstance(result, api.StudyResult) else [result]
    for each in grids:
        _print_outcome(each)
    if report and not any(each.outcome.running_elsewhere for each in grids):  # what SLURM still runs: later
        _report(result.sweep)
    raise typer.Exit(result.exit_code)


@app.command()
def status(sweep_dir: Path) -> None:
    """Jobs by state, merging the SLURM queue (if the sweep was submitted there) with the shards, which
    are the only proof that a job is done; failure reasons grouped. A study folder: one row per grid."""
    try:
        found = api.status(sweep_dir)
    except OrchError as e:
        _fail(e)
    if isinstance(found, api.StudyStatus):
        _print_study_status(found)
        return
    table = Table("jobs", *STATES, title=f"{found.name} ({found.root})", title_justify="left")
    for kind, counter in found.counts.items():
        if sum(counter.values()):
            table.add_row(kind, *(str(counter[state]) for state in STATES))
    out.print(table)
    out.print("failed: its last attempt raised (orch resume retries it while attempts remain, unless a rerun "
              "cannot change it); lost: SLURM no longer holds it and it left neither shard nor failure record "
              "(cancelled, killed, node lost)", style="dim", highlight=False)
    if found.running_here:
        now_running = Table("job_id", "job", "host", "since", title="running here", title_justify="left")
        for job_id, record in sorted(found.running_here.items(), key=lambda item: item[1].get("started", "")):
            now_running.add_row(job_id, f"{record.get('kernel', '')} {record.get('label', '')}"[:100],
                                str(record.get("host")), str(record.get("started", ""))[:19])
        out.print(now_running)
    if found.failures:
        why = Table("jobs", "last error", "rerun can help", "example record", title="failures", title_justify="left")
        for failure in found.failures:
            again = "yes" if failure.retryable else "no: fails the same way again"
            why.add_row(str(failure.jobs), failure.reason, again, str(failure.example))
        out.print(why)


def _print_study_status(found: api.StudyStatus) -> None:
    table = Table("grid", *STATES, title=f"{found.name} ({found.root})", title_justify="left")
    for name, grid in found.grids.items():
        table.add_row(name, *(str(grid.count(state)) for state in STATES))
    table.add_row("total", *(str(found.count(state)) for state in STATES), style="bold")
    out.print(table)
    out.print("jobs of each grid, training prerequisites included", style="dim", highlight=False)
    for name, grid in found.grids.items():
        if grid.failures:
            out.print(f"{name}: {grid.failures[0].reason} ({grid.failures[0].jobs} job(s)); "
                      f"see `orch status {grid.root}`", highlight=False)


@app.command()
def cancel(sweep_dir: Path) -> None:
    """Cancel the sweep's (or every grid of a study's) SLURM arrays that are still queued or running."""
    try:
        arrays = api.cancel(sweep_dir)
    except OrchError as e:
        _fail(e)
    out.print(f"cancelled arrays: {', '.join(arrays)}" if arrays else "nothing of this sweep is queued or running")


@app.command()
def logs(sweep_dir: Path, job_id: str) -> None:
    """A SLURM job's stdout and stderr (the log of the array task that ran it)."""
    try:
        paths = api.logs(sweep_dir, job_id)
    except OrchError as e:
        _fail(e)
    for path in paths:
        out.rule(str(path))
        out.print(path.read_text(errors="replace") if path.exists() else "(not written yet)", highlight=False,
                  markup=False)


@app.command()
def report(sweep_dir: Path, out_dir: Annotated[Optional[Path], typer.Option(help="default: <sweep>/report")] = None,
           html: Annotated[bool, typer.Option("--html", help="also write report.html: one self-contained page")] = False,
           pdf: Annotated[bool, typer.Option("--pdf", help="write every figure as PDF too (PNG always)")] = False) -> None:
    """PSNR / SSIM / LPIPS by the grid's factors and the paper's tables the sweep has data for (CSV, Markdown,
    LaTeX), the figures, and with --html one page holding all of it. A study folder: every grid's report
    under <study>/report/<grid>/, and one index.md (and report.html) with a heading per grid."""
    _report(sweep_dir, out_dir, html=html, pdf=pdf)


def _report(sweep_dir: Path, out_dir: Path | None = None, html: bool = False, pdf: bool = False) -> None:
    try:
        written = api.report(sweep_dir, out_dir, html=html, pdf=pdf)
    except OrchError as e:
        _fail(e)
    except api.NothingToReport as e:
        err.print(f"no report: {e}", highlight=False)
        return
    if isinstance(written, api.StudyReport):
        for name, grid in written.grids.items():
            out.print(f"{name}: " + (f"{len(grid.tables)} table(s), {len(grid.figures)} figure(s)" if grid
                                     else "no results yet"), highlight=False)
        for path in written.files[:2 if html else 1]:
            out.print(f"wrote {path}", highlight=False)
        out.print(f"and {len(written.files) - (2 if html else 1)} files of the grids beside it", highlight=False)
        return
    table = Table(*written.summary.columns, title="metrics by factor (mean ± std over images and seeds)",
                  title_justify="left")
    for row in written.summary.iter_rows():
        table.add_row(*map(str, row))
    out.print(table)
    for note in written.notes:
        out.print(f"note: {note}", highlight=False)
    for path in written.files:
        out.print(f"wrote {path}", highlight=False)


if __name__ == "__main__":
    app()
