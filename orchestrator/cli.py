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
from orchestrator.executors import make_executor
from orchestrator.expand import Plan, expand
from orchestrator.grid import load_grid
from orchestrator.launch import check_ready, default_sweep_dir, job_states, pending_jobs, prepare
from orchestrator.sweep import Sweep

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Sweeps of gradient inversion attacks: grid YAML -> jobs -> Parquet shards -> tables.")
# Wide enough for a factor table when the output goes to a log file rather than a terminal.
out = Console(width=None if Console().is_terminal else 160)
err = Console(stderr=True, width=None if Console(stderr=True).is_terminal else 160)

Scale = Annotated[Optional[str], typer.Option("--scale", help="named scale of the grid (default: its default_scale)")]
Workers = Annotated[Optional[int], typer.Option("--workers", help="local worker processes (default: cores / cpus per job)")]
RetryFailed = Annotated[bool, typer.Option("--retry-failed", help="give jobs that used up max_attempts another round")]
Executor = Annotated[str, typer.Option(help="where jobs run: local (this machine) or slurm (needs --profile)")]
ProfileOpt = Annotated[Optional[str], typer.Option("--profile", help="SLURM site profile: slurm/profiles/<NAME>.yaml")]
Bump = Annotated[Optional[str], typer.Option(help="slurm: raise resources of jobs killed for memory or time, e.g. mem=2x,time=2x")]


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
    executor: Executor = "local",
    profile: ProfileOpt = None,
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
        runner = make_executor(executor, workers=workers, profile=profile)
        sweep = Sweep(sweep_dir or default_sweep_dir(the_plan))
        with sweep.lock():
            prepare(the_plan, sweep, cache_dir)
            _run(sweep, the_plan.all_jobs, the_plan.grid.max_attempts, retry_failed, runner)
    except OrchError as e:
        _fail(e)
    if report and runner.blocking:
        _report(sweep.root)


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
    """Run what a sweep directory still lacks, from the directory alone. Jobs that SLURM still holds
    (queued or running) are never submitted again."""
    try:
        sweep = Sweep(sweep_dir)
        meta = sweep.meta()
        jobs = sweep.jobs()
        check_ready(jobs, str(sweep.root / "grid.yaml"))
        runner = make_executor(executor, workers=workers, profile=profile, bump=bump)
        with sweep.lock():
            _run(sweep, jobs, meta["max_attempts"], retry_failed, runner)
    except OrchError as e:
        _fail(e)
    if report and runner.blocking:
        _report(sweep.root)


def _run(sweep: Sweep, jobs, max_attempts: int, retry_failed: bool, runner) -> None:
    pending = pending_jobs(sweep, jobs, max_attempts, retry_failed)
    err.print(f"{sweep.root}: {len(jobs)} jobs, {pending.done} already done, {len(pending.jobs)} to run"
              + (f", {len(pending.exhausted)} failed {max_attempts} times (--retry-failed to rerun)"
                 if pending.exhausted else ""), highlight=False)
    if not pending.jobs:
        return
    if not runner.blocking:
        made = runner.run(sweep, pending.jobs, pending.attempts_left)
        count = sum(len(task) for s in made for task in s.tasks)
        if count < len(pending.jobs):
            err.print(f"{len(pending.jobs) - count} of them are already queued or running: not submitted again",
                      highlight=False)
        if made:
            err.print(f"submitted {count} jobs in {len(made)} array(s): {', '.join(s.array_id for s in made)}; "
                      f"follow with `orch status {sweep.root}`", highlight=False)
        return
    started = time.monotonic()
    outcome = runner.run(sweep, pending.jobs, pending.attempts_left)
    elapsed = time.monotonic() - started
    err.print(f"{len(outcome.done)} done, {len(outcome.failed)} failed, {len(outcome.blocked)} blocked "
              f"in {elapsed:.1f}s", highlight=False)
    if outcome.interrupted:
        raise OrchError(f"interrupted; finished results are kept. Continue with: orch resume {sweep.root}")
    if outcome.failed or outcome.blocked:
        err.print(f"see `orch status {sweep.root}` for the failures", highlight=False)


@app.command()
def status(sweep_dir: Path) -> None:
    """Jobs by state, merging the SLURM queue (if the sweep was submitted there) with the shards, which
    are the only proof that a job is done; failure reasons grouped."""
    try:
        sweep = Sweep(sweep_dir)
        meta = sweep.meta()
        jobs = sweep.jobs()
        states = job_states(sweep, jobs, meta["max_attempts"])
    except OrchError as e:
        _fail(e)
    columns = ("done", "queued", "running", "failed", "lost", "pending")
    counts: Counter = Counter((("prerequisite" if j.prerequisite else "grid"), states[j.job_id]) for j in jobs)
    table = Table("jobs", *columns, title=f"{meta['name']} ({sweep.root})", title_justify="left")
    for kind in ("grid", "prerequisite"):
        row = [counts[(kind, c)] for c in columns]
        if sum(row):
            table.add_row(kind, *map(str, row))
    out.print(table)
    out.print("failed: its last attempt raised (orch resume retries it while attempts remain); lost: SLURM "
              "no longer holds it and it left neither shard nor failure record (cancelled, killed, node lost)",
              style="dim", highlight=False)
    failures = sweep.failures()
    reasons: Counter = Counter()
    example: dict[str, str] = {}
    for job_id, records in failures.items():
        if states.get(job_id) != "failed":
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
def cancel(sweep_dir: Path) -> None:
    """Cancel the sweep's SLURM arrays that are still queued or running."""
    from orchestrator.executors.slurm import cancel as cancel_arrays

    try:
        arrays = cancel_arrays(Sweep(sweep_dir))
    except OrchError as e:
        _fail(e)
    out.print(f"cancelled arrays: {', '.join(arrays)}" if arrays else "nothing of this sweep is queued or running")


@app.command()
def logs(sweep_dir: Path, job_id: str) -> None:
    """A SLURM job's stdout and stderr (the log of the array task that ran it)."""
    from orchestrator.executors.slurm import log_paths

    try:
        paths = log_paths(Sweep(sweep_dir), job_id)
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
    LaTeX), the figures, and with --html one page holding all of it."""
    _report(sweep_dir, out_dir, html=html, pdf=pdf)


def _report(sweep_dir: Path, out_dir: Path | None = None, html: bool = False, pdf: bool = False) -> None:
    from analysis.report import write_report
    from analysis.tables import compact

    try:
        result = write_report(sweep_dir, out_dir, pdf=pdf, grids=html)
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
    files = list(result.files)
    if html:
        from analysis.html_report import write_html

        sweep = Sweep(sweep_dir)
        try:
            states = job_states(sweep, sweep.jobs(), sweep.meta()["max_attempts"])
        except OrchError as e:
            _fail(e)
        files.append(write_html(sweep_dir, result, states,
                                (Path(out_dir) if out_dir else Path(sweep_dir) / "report") / "report.html"))
    for path in files:
        out.print(f"wrote {path}", highlight=False)


if __name__ == "__main__":
    app()
