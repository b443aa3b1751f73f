"""`orch`: plan, launch, resume, status and report sweeps of grid files.

Exit codes: 0 all jobs done (SLURM: submitted), 1 some jobs failed for good or were blocked by a failed
prerequisite, 2 bad input or refused (nothing was created), 130 interrupted (Ctrl-C or SIGTERM)."""
from __future__ import annotations

import re
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestrator.errors import OrchError
from orchestrator.executors import check_executor, make_executor
from orchestrator.expand import JobSpec, Plan, expand
from orchestrator.grid import load_grid
from orchestrator.launch import check_ready, default_sweep_dir, job_states, pending_jobs, prepare
from orchestrator.sweep import Sweep

EXIT_DONE, EXIT_FAILED, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 130
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


def _interrupted(sweep: Sweep | None) -> None:
    if sweep is not None and sweep.exists():
        err.print(f"interrupted; finished results are kept. Continue with: orch resume {sweep.root}", highlight=False)
    else:
        err.print("interrupted before the sweep was created; nothing to resume", highlight=False)
    raise typer.Exit(EXIT_INTERRUPTED)


def natural_key(value) -> tuple:
    """Numbers by value, then text with its digit runs compared as numbers: resnet18 < resnet34 < resnet101."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    parts = re.split(r"(\d+)", str(value))
    return (1, tuple(int(p) if i % 2 else p for i, p in enumerate(parts)))


def job_count(jobs: list[JobSpec]) -> str:
    """'10 jobs + 1 prerequisite', the same words in plan, launch and resume."""
    prerequisites = sum(1 for j in jobs if j.prerequisite)
    grid_jobs = len(jobs) - prerequisites
    text = f"{grid_jobs} job{'s' if grid_jobs != 1 else ''}"
    if prerequisites:
        text += f" + {prerequisites} prerequisite{'s' if prerequisites != 1 else ''}"
    return text


def _print_plan(plan: Plan, first: int = 10) -> None:
    grid = plan.grid
    out.print(f"[bold]{grid.name}[/bold] ({grid.source}, kernel {grid.kernel.name}"
              f"{', scale ' + grid.scale if grid.scale else ''}): [bold]{job_count(plan.all_jobs)}[/bold]",
              highlight=False)
    counts = Table("parameter", "values (jobs each)", title="per-axis counts", title_justify="left")
    for name, counter in plan.axis_counts().items():
        values = sorted(counter, key=natural_key)
        if len(counter) > 12:  # a fan-out such as batch_index: its range says enough
            counts.add_row(name, f"{len(counter)} values, {values[0]} .. {values[-1]}")
        else:
            counts.add_row(name, ", ".join(f"{v} ({counter[v]})" for v in values))
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
    dry_run: Annotated[bool, typer.Option("--dry-run", help="every check a launch makes; create and submit nothing")] = False,
    retry_failed: RetryFailed = False,
    cache_dir: Annotated[Optional[Path], typer.Option(help="shared cache (default $ORCH_CACHE_DIR or <sweeps>/.cache)")] = None,
    report: Annotated[bool, typer.Option(help="write the report when a local sweep ends")] = True,
) -> None:
    """Run a grid. Jobs that already have a shard in the sweep directory are skipped."""
    _stop_on_sigterm()
    sweep = None
    try:
        # Every check first, in this order; only then does anything touch the disk or the scheduler.
        the_plan = expand(load_grid(grid, scale))
        check_ready(the_plan.all_jobs, the_plan.grid.source, submits=executor == "slurm")
        runner = make_executor(executor, workers=workers, profile=profile)
        check_executor(runner)
        target = Sweep(sweep_dir or default_sweep_dir(the_plan))
        target.check_target()
        target.check_compatible(the_plan)
        if dry_run:
            _print_plan(the_plan)
            err.print(f"dry run: every check passed; would launch into {target.root}; nothing was created",
                      highlight=False)
            return
        sweep = target
        with sweep.lock():
            prepare(the_plan, sweep, cache_dir)
            code = _run(sweep, the_plan.all_jobs, the_plan.grid.max_attempts, retry_failed, runner)
    except OrchError as e:
        _fail(e)
    except KeyboardInterrupt:
        _interrupted(sweep)
    _finish(sweep, runner, report, code)


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
    _stop_on_sigterm()
    sweep = Sweep(sweep_dir)
    try:
        meta = sweep.meta()
        jobs = sweep.jobs()
        check_ready(jobs, str(sweep.root / "grid.yaml"), submits=executor == "slurm")
        runner = make_executor(executor, workers=workers, profile=profile, bump=bump)
        check_executor(runner)
        with sweep.lock():
            sweep.clean_stale_running()
            code = _run(sweep, jobs, meta["max_attempts"], retry_failed, runner)
    except OrchError as e:
        _fail(e)
    except KeyboardInterrupt:
        _interrupted(sweep)
    _finish(sweep, runner, report, code)


def _finish(sweep: Sweep, runner, report: bool, code: int) -> None:
    if report and runner.blocking:
        _report(sweep.root)
    raise typer.Exit(code)


def _run(sweep: Sweep, jobs, max_attempts: int, retry_failed: bool, runner) -> int:
    """Runs or submits what is pending; returns the exit code."""
    pending = pending_jobs(sweep, jobs, max_attempts, retry_failed)
    err.print(f"{sweep.root}: {job_count(jobs)}, {pending.done} already done, {len(pending.jobs)} to run"
              + (f", {len(pending.exhausted)} failed for good (--retry-failed to rerun)" if pending.exhausted else ""),
              highlight=False)
    if not pending.jobs:
        return EXIT_FAILED if pending.exhausted else EXIT_DONE
    if not runner.blocking:
        made = runner.run(sweep, pending.jobs, pending.attempts_left)
        count = sum(len(task) for s in made for task in s.tasks)
        if count < len(pending.jobs):
            err.print(f"{len(pending.jobs) - count} of them are already queued or running: not submitted again",
                      highlight=False)
        if made:
            err.print(f"submitted {count} jobs in {len(made)} array(s): {', '.join(s.array_id for s in made)}; "
                      f"follow with `orch status {sweep.root}`", highlight=False)
        return EXIT_DONE
    started = time.monotonic()
    outcome = runner.run(sweep, pending.jobs, pending.attempts_left)
    elapsed = time.monotonic() - started
    err.print(f"{len(outcome.done)} done, {len(outcome.failed)} failed, {len(outcome.blocked)} blocked "
              f"in {elapsed:.1f}s", highlight=False)
    if outcome.interrupted:
        raise KeyboardInterrupt
    if outcome.failed or outcome.blocked or pending.exhausted:
        err.print(f"see `orch status {sweep.root}` for the failures", highlight=False)
        return EXIT_FAILED
    return EXIT_DONE


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
    out.print("failed: its last attempt raised (orch resume retries it while attempts remain, unless a rerun "
              "cannot change it); lost: SLURM no longer holds it and it left neither shard nor failure record "
              "(cancelled, killed, node lost)", style="dim", highlight=False)
    running = sweep.running()
    if running:
        now_running = Table("job_id", "job", "host", "since", title="running here", title_justify="left")
        for job_id, record in sorted(running.items(), key=lambda item: item[1].get("started", "")):
            now_running.add_row(job_id, f"{record.get('kernel', '')} {record.get('label', '')}"[:100],
                                str(record.get("host")), str(record.get("started", ""))[:19])
        out.print(now_running)
    failures = sweep.failures()
    reasons: Counter = Counter()
    example: dict[str, str] = {}
    for job_id, records in failures.items():
        if states.get(job_id) != "failed":
            continue
        last = records[-1]
        reason = (last["error"].splitlines() or [""])[0][:160]
        key = (reason, "yes" if last["retryable"] else "no: fails the same way again")
        reasons[key] += 1
        example.setdefault(key, f"{sweep.root}/failures/{job_id}.{last['attempt']:03d}.json")
    if reasons:
        why = Table("jobs", "last error", "rerun can help", "example record", title="failures", title_justify="left")
        for (reason, again), n in reasons.most_common():
            why.add_row(str(n), reason, again, example[(reason, again)])
        out.print(why)


@app.command()
def cancel(sweep_dir: Path) -> None:
    """Cancel the sweep's SLURM arrays that are still queued or running."""
    from orchestrator.executors.slurm import cancel as cancel_arrays

    try:
        sweep = Sweep(sweep_dir)
        sweep.check()
        arrays = cancel_arrays(sweep)
    except OrchError as e:
        _fail(e)
    out.print(f"cancelled arrays: {', '.join(arrays)}" if arrays else "nothing of this sweep is queued or running")


@app.command()
def logs(sweep_dir: Path, job_id: str) -> None:
    """A SLURM job's stdout and stderr (the log of the array task that ran it)."""
    from orchestrator.executors.slurm import log_paths

    try:
        sweep = Sweep(sweep_dir)
        sweep.check()
        paths = log_paths(sweep, job_id)
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
    try:
        Sweep(sweep_dir).check()  # a wrong path is refused before a report folder is made there
    except OrchError as e:
        _fail(e)
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
