"""The Python API as a notebook uses it: launch a sweep, poll its status while it runs, write its report;
and bad input refused before anything exists, as on the command line."""
import threading
import time

import pytest

from orchestrator import api
from orchestrator.errors import OrchError
from orchestrator.executors import make_executor

# Two jobs of a few seconds: Inverting Gradients on two embedded images, one per batch.
TWO_JOBS = """
name: notebook
kernel: ig
fixed: {dataset: embedded, num_images: 2, iterations: 2, model_state: untrained, batch_size: 1}
resources: {cpus: 1, mem_gb: 1, time_min: 10}
"""


def test_launch_poll_and_report_from_python(tmp_path, write_grid, monkeypatch):
    monkeypatch.setenv("ORCH_CACHE_DIR", str(tmp_path / "cache"))
    grid, sweep = write_grid(TWO_JOBS), tmp_path / "sweep"
    planned = api.plan(grid)
    assert len(planned.all_jobs) == 2

    launched: dict = {}
    worker = threading.Thread(target=lambda: launched.update(
        result=api.launch(grid, sweep_dir=sweep, workers=1, progress=False)))
    worker.start()
    seen: list[dict] = []
    while worker.is_alive():
        try:
            polled = api.status(sweep)
        except OrchError:  # the launch has not created the sweep yet
            polled = None
        if polled is not None:
            seen.append({state: polled.count(state) for state in api.STATES})
        time.sleep(0.2)
    worker.join()

    result = launched["result"]
    assert result.exit_code == api.EXIT_DONE and result.to_run == 2 and sorted(result.outcome.done) == \
        sorted(job.job_id for job in planned.all_jobs)
    assert seen and all(sum(counts.values()) == 2 for counts in seen)
    final = api.status(sweep)
    assert final.count("done") == 2 and final.active == 0 and final.failures == []

    written = api.report(sweep)
    assert (sweep / "report" / "summary.csv") in written.files and written.summary.height == 1
    assert all(path.stat().st_size > 0 for path in written.files)

    again = api.resume(sweep, progress=False)  # nothing left: runs nothing
    assert again.already_done == 2 and again.to_run == 0 and again.exit_code == api.EXIT_DONE


def test_bad_input_raises_before_anything_exists(tmp_path, write_grid):
    grid = write_grid(TWO_JOBS)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(OrchError, match="--workers: expected an integer >= 1"):
        api.launch(grid, sweep_dir=tmp_path / "sweep", workers=0)
    with pytest.raises(OrchError, match="no such sweep directory"):
        api.status(tmp_path / "sweep")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_option_of_the_other_executor_is_refused():
    """No executor swallows an argument it would ignore."""
    with pytest.raises(OrchError, match="--profile applies to --executor slurm only"):
        make_executor("local", profile="local")
    with pytest.raises(OrchError, match="--bump applies to --executor slurm only"):
        make_executor("local", bump="mem=2x")
    with pytest.raises(OrchError, match="--workers applies to --executor local only"):
        make_executor("slurm", workers=2, profile="local")


def test_a_dry_run_returns_the_plan_and_creates_nothing(tmp_path, write_grid):
    result = api.launch(write_grid(TWO_JOBS), sweep_dir=tmp_path / "sweep", dry_run=True)
    assert result.dry_run and result.plan is not None and len(result.jobs) == 2
    assert not (tmp_path / "sweep").exists()
