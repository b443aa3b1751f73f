"""Groups: jobs of one grid point's fan-out run together in one worker, yet each job keeps its own
shard and its own failure record; group_size is a resource, not part of any job id."""
from dataclasses import dataclass
from types import SimpleNamespace

import polars as pl
import pytest

import orchestrator.runner as runner_module
from orchestrator import api
from orchestrator.errors import GridError
from orchestrator.expand import JobSpec, expand
from orchestrator.grid import parse_grid
from orchestrator.groups import group_jobs
from orchestrator.sweep import Sweep
from tests.conftest import orch

# One grid point fanned out into 4 batches of one image, plus a second model state.
FAN_OUT = """
name: grouped
kernel: ig
fixed: {{dataset: embedded, num_images: 4, iterations: 2, batch_size: 1}}
axes: {{model_state: [untrained]}}
resources: {{cpus: 1, mem_gb: 1, time_min: 10, group_size: {size}}}
"""
# What differs between two runs of the same job: when, where and how long.
RUN_COLUMNS = ("started_at", "finished_at", "job_seconds", "kernel_seconds", "attack_seconds", "host", "git_sha",
               "scheduler_job")


def test_a_fan_out_forms_groups_of_group_size_and_ids_do_not_change():
    alone = expand(parse_grid(FAN_OUT.format(size=1), "g.yaml")).all_jobs
    grouped = expand(parse_grid(FAN_OUT.format(size=3), "g.yaml")).all_jobs
    assert [j.job_id for j in alone] == [j.job_id for j in grouped]
    assert [len(g) for g in group_jobs(alone)] == [1, 1, 1, 1]
    assert [[j.params["batch_index"] for j in g] for g in group_jobs(grouped)] == [[0, 1, 2], [3]]


def test_jobs_differing_in_more_than_the_group_varying_parameters_never_share_a_group():
    text = FAN_OUT.format(size=8).replace("[untrained]", "[untrained, trained]")
    groups = group_jobs(expand(parse_grid(text, "g.yaml")).all_jobs)
    # the training prerequisite alone; each model state's 4 batches together
    assert sorted(len(g) for g in groups) == [1, 4, 4]
    assert all(len({j.params.get("model_state") for j in g}) == 1 for g in groups)


@pytest.mark.parametrize("value", [0, 1.5, True, "2"])
def test_group_size_is_a_whole_count_of_at_least_one(value):
    with pytest.raises(GridError, match="resources.group_size: expected an integer >= 1"):
        parse_grid(FAN_OUT.format(size=repr(value) if isinstance(value, str) else str(value).lower()), "g.yaml")


def test_plan_prints_the_groups(write_grid):
    result = orch("plan", str(write_grid(FAN_OUT.format(size=2))))
    assert result.returncode == 0, result.stderr
    assert "4 jobs in 2 groups (group_size 2)" in result.stdout


def test_groups_of_two_give_the_shards_of_jobs_run_alone(tmp_path, write_grid, monkeypatch):
    monkeypatch.setenv("ORCH_CACHE_DIR", str(tmp_path / "cache"))
    shards = {}
    for size in (1, 2):
        grid = write_grid(FAN_OUT.format(size=size), f"g{size}.yaml")
        result = api.launch(grid, sweep_dir=tmp_path / f"s{size}", workers=1, progress=False)
        assert result.exit_code == 0 and len(result.outcome.done) == 4
        rows = pl.read_parquet(tmp_path / f"s{size}" / "shards" / "*.parquet")
        # the jobs of a group ran together and share its time equally: 2 groups, 2 distinct times
        assert rows["job_seconds"].n_unique() == (4 if size == 1 else 2)
        shards[size] = rows.drop(RUN_COLUMNS).sort("job_id", "image_index")
    assert shards[1].height == 4 and shards[1].equals(shards[2])


# --- one job of a group fails: a stand-in kernel, run in this process ----------------------------


@dataclass(frozen=True)
class _Int:
    type: type = int
    default: int = 0
    identity: bool = True
    required: bool = False


class _FailsOnSeedTwo:
    """A kernel whose job with seed 2 raises at run time, after every check passed."""
    name, version, doc = "seeded", "1", ""
    params = {"seed": _Int()}
    group_varying = ("seed",)
    check = resolve = fan_out = preflight = None

    @staticmethod
    def prerequisites(params):
        return []

    @staticmethod
    def load():
        def run(params, ctx):
            if params["seed"] == 2:
                raise ValueError("seed 2 is refused by this kernel")
            return SimpleNamespace(rows=[{"value": float(params["seed"])}], images=[], column_types={})
        return run


@pytest.mark.parametrize("own_run_group", [False, True], ids=["loop over run", "kernel's run_group"])
def test_one_failed_job_of_a_group_fails_alone(tmp_path, monkeypatch, own_run_group):
    kernel = _FailsOnSeedTwo()
    if own_run_group:  # a kernel's own run_group returns each job's exception at its place
        def run_group(params_list, contexts):
            outcomes = []
            for params, ctx in zip(params_list, contexts):
                try:
                    outcomes.append(kernel.load()(params, ctx))
                except ValueError as error:
                    outcomes.append(error)
            return outcomes
        kernel.load_group = lambda: run_group
    monkeypatch.setattr(runner_module, "get_kernel", lambda name: kernel)
    sweep = Sweep(tmp_path / "sweep")
    sweep.create(expand(parse_grid(FAN_OUT.format(size=3), "g.yaml")), tmp_path / "cache")
    jobs = [JobSpec(f"seeded-{seed}", "seeded", {"seed": seed}, f"seed={seed}", {"cpus": 1, "group_size": 3})
            for seed in (1, 2, 3)]

    runs = runner_module.run_group(str(sweep.root), jobs)

    assert [(r.job_id, r.status) for r in runs] == [("seeded-1", "done"), ("seeded-2", "failed"), ("seeded-3", "done")]
    assert runs[1].error == "ValueError: seed 2 is refused by this kernel" and not runs[1].retryable
    assert sweep.completed() == {"seeded-1", "seeded-3"}
    (record,) = sweep.failures()["seeded-2"]
    assert record["attempt"] == 1 and "seed 2 is refused" in record["traceback"]
    values = pl.read_parquet(sweep.root / "shards" / "*.parquet").sort("value")["value"].to_list()
    assert values == [1.0, 3.0]
    # Run again: the done jobs are skipped, the failed one runs (and fails) once more.
    again = runner_module.run_group(str(sweep.root), jobs)
    assert [r.status for r in again] == ["already-done", "failed", "already-done"]
    assert len(sweep.failures()["seeded-2"]) == 2
