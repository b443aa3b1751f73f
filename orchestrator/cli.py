"""`orch`: plan, launch, resume, status and report sweeps of grid files."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.errors import OrchError
from orchestrator.expand import Plan, expand
from orchestrator.grid import load_grid
from orchestrator.launch import check_ready, default_sweep_dir, pending_jobs, prepare
from orchestrator.sweep import Sweep

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Sweeps of gradient inversion attacks: grid YAML -> jobs -> Parquet shards -> tables.")
# Wide enough for a factor table when the output goes to a log file rather than a terminal.
out = Console(width=None if Console().is_terminal else 160)
err = Console(stderr=True, width=None if Console(stderr=True).is_terminal else 160)

Scale = Annotated[Optional[str], typer.Option("--scale", help="named scale of the grid (default: its default_scale)")]
Workers = Annotated[Optional[int], typer.Option("--workers", help="local worker processes (default: cores / cpus per job)")]
RetryFailed = Annotated[bool, typer.Option("--retry-failed", help="give jobs that used up max_attempts another round")]


def _fail(error: OrchError) -> None:
    err.print(f"[red]error:[/red] {error}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(2)


def _print_plan(plan: Plan, first: int = 10) -> None:
    grid = plan.grid
    out.print(f"[bold]{grid.name}[/bold] ({grid.source}, kernel {grid.kernel.name}"
              f"{', scale ' + grid.scale if grid.scale else ''}): [bold]{len(plan.jobs)}[/bold] jobs"
              + (f" + {len(plan.prerequisites)} prerequisite job(s)" if plan.prerequisites else ""))
    counts = Table("parameter", "values (jobs each)", title="per-axis counts", title_justify="left")
    for name, counter in plan.axis_counts().items():
        if len(counter) > 12:  # a fan-out such as batch_index: its range says enough
            values = sorted(counter, key=str)
            counts.add_row(name, f"{len(counter)} values, {values[0]} .. {values[-1]}")
        else:
            counts.add_row(name, ", ".join(f"{v} ({n})" for v, n in counter.items()))
    out.print(counts)
    jobs = Table("job_id", "label", "requires", title=f"first {min(first, len(plan.all_jobs))} jobs", title_justify="left")
    for job in plan.all_jobs[:first]:
        jobs.add_row(job.job_id, job.label, ", ".join(job.requires))
    out.print(jobs)


@app.command()
def plan(grid: Path, scale: Scale = None, first: int = 10) -> None:
    """Expand and validate a grid; print the job count, per-axis counts and the first jobs. Creates nothing."""
    try:
        _print_plan(expand(load_grid(grid, scale)), first)
    except OrchError as e:
        _fail(e)


@app.command()
def launch(
    grid: Path,
    scale: Scale = None,
    sweep_dir: Annotated[Optional[Path], typer.Option(help="default: runs/<grid name>[-<scale>]")] = None,
    executor: Annotated[str, typer.Option(help="where jobs run: local")] = "local",
    workers: Workers = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="plan and check data, create nothing")] = False,
    retry_failed: RetryFailed = False,
    cache_dir: Annotated[Optional[Path], typer.Option(help="shared cache (default $ORCH_CACHE_DIR or <sweeps>/.cache)")] = None,
    report: Annotated[bool, typer.Option(help="write the report when a local sweep ends")] = True,
) -> None:
    """Run a grid. Jobs that already have a shard in the sweep directory are skipped."""
    try:
        the_plan = expand(load_grid(grid, scale))
        check_ready(the_plan.all_jobs, the_plan.grid.source)
        if dry_run:
            _print_plan(the_plan)
            return
        sweep = Sweep(sweep_dir or default_sweep_dir(the_plan))
        with sweep.lock():
            prepare(the_plan, sweep, cache_dir)
            _run(sweep, the_plan.all_jobs, the_plan.grid.max_attempts, retry_failed, executor, workers)
    except OrchError as e:
        _fail(e)
    if report:
        _report(sweep.root)


@app.command()
def resume(
    sweep_dir: Path,
    executor: Annotated[str, typer.Option(help="where jobs run: local")] = "local",
    workers: Workers = None,
    retry_failed: RetryFailed = False,
    report: Annotated[bool, typer.Option(help="write the report when a local sweep ends")] = True,
) -> None:
    """Run what a sweep directory still lacks, from the directory alone."""
    try:
        sweep = Sweep(sweep_dir)
        meta = sweep.meta()
        jobs = sweep.jobs()
        check_ready(jobs, str(sweep.root / "grid.yaml"))
        with sweep.lock():
            _run(sweep, jobs, meta["max_attempts"], retry_failed, executor, workers)
    except OrchError as e:
        _fail(e)
    if report:
        _report(sweep.root)


def _run(sweep: Sweep, jobs, max_attempts: int, retry_failed: bool, executor: str, workers: int | None) -> None:
    from orchestrator.executors import make_executor

    pending = pending_jobs(sweep, jobs, max_attempts, retry_failed)
    err.print(f"{sweep.root}: {len(jobs)} jobs, {pending.done} already done, {len(pending.jobs)} to run"
              + (f", {len(pending.exhausted)} failed {max_attempts} times (--retry-failed to rerun)"
                 if pending.exhausted else ""), highlight=False)
    if not pending.jobs:
        return
    started = time.monotonic()
    outcome = make_executor(executor, workers=workers).run(sweep, pending.jobs, pending.attempts_left)
    elapsed = time.monotonic() - started
    err.print(f"{len(outcome.done)} done, {len(outcome.failed)} failed, {len(outcome.blocked)} blocked "
              f"in {elapsed:.1f}s", highlight=False)
    if outcome.interrupted:
        raise OrchError(f"interrupted; finished results are kept. Continue with: orch resume {sweep.root}")
    if outcome.failed or outcome.blocked:
        err.print(f"see `orch status {sweep.root}` for the failures", highlight=False)


@app.command()
def status(sweep_dir: Path) -> None:
    """Counts of jobs by state, and failure reasons grouped."""
    try:
        sweep = Sweep(sweep_dir)
        meta = sweep.meta()
        jobs = sweep.jobs()
    except OrchError as e:
        _fail(e)
    completed, failures = sweep.completed(), sweep.failures()
    states: Counter = Counter()
    for job in jobs:
        kind = "prerequisite" if job.prerequisite else "grid"
        tries = len(failures.get(job.job_id, []))
        state = ("done" if job.job_id in completed else "failed" if tries >= meta["max_attempts"]
                 else "retrying" if tries else "pending")
        states[(kind, state)] += 1
    table = Table("jobs", "done", "pending", "retrying", "failed", title=f"{meta['name']} ({sweep.root})",
                  title_justify="left")
    for kind in ("grid", "prerequisite"):
        row = [states[(kind, s)] for s in ("done", "pending", "retrying", "failed")]
        if sum(row):
            table.add_row(kind, *map(str, row))
    out.print(table)
    reasons: Counter = Counter()
    example: dict[str, str] = {}
    for job_id, records in failures.items():
        if job_id in completed:
            continue
        reason = records[-1]["error"].splitlines()[0][:160]
        reasons[reason] += 1
        example.setdefault(reason, f"{sweep.root}/failures/{job_id}.{records[-1]['attempt']:03d}.json")
    if reasons:
        why = Table("jobs", "last error", "example record", title="failures", title_justify="left")
        for reason, n in reasons.most_common():
            why.add_row(str(n), reason, example[reason])
        out.print(why)


@app.command()
def report(sweep_dir: Path, out_dir: Annotated[Optional[Path], typer.Option(help="default: <sweep>/report")] = None) -> None:
    """Mean and std of PSNR / SSIM / LPIPS by the grid's factors, as a table, CSV, Markdown and PNGs."""
    _report(sweep_dir, out_dir)


def _report(sweep_dir: Path, out_dir: Path | None = None) -> None:
    from analysis.report import write_report
    from analysis.tables import compact

    try:
        result = write_report(sweep_dir, out_dir)
    except FileNotFoundError as e:
        err.print(f"no report: {e}", highlight=False)
        return
    shown = compact(result.table)
    table = Table(*shown.columns, title="metrics by factor (mean ± std over images and seeds)", title_justify="left")
    for row in shown.iter_rows():
        table.add_row(*map(str, row))
    out.print(table)
    for note in result.notes:
        out.print(f"note: {note}", highlight=False)
    for path in result.files:
        out.print(f"wrote {path}", highlight=False)


if __name__ == "__main__":
    app()
