"""Site profiles and the resubmission rules, without a cluster."""
import pytest

from orchestrator.errors import GridError, OrchError
from orchestrator.executors.slurm import SlurmExecutor, Submission, death_causes, parse_bump
from orchestrator.expand import expand
from orchestrator.grid import parse_grid
from orchestrator.profiles import load_profile
from orchestrator.sweep import Sweep
from tests.conftest import TINY_GRID


def test_shipped_profiles_load():
    local = load_profile("local")
    assert local.partition == "debug" and local.jobs_per_task == 1
    site = load_profile("example-gpu-cluster")
    assert site.gpu_request == "gres" and site.setup and site.sbatch == {"mail-type": "FAIL"}


def test_profile_errors_name_the_key(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text("partiton: gpu\ngpu_request: gres2\narray_parallelism: 0\n")
    with pytest.raises(GridError) as info:
        load_profile(str(path))
    text = str(info.value)
    assert "partiton: unknown key 'partiton'; did you mean 'partition'?" in text
    assert "gpu_request: unknown value 'gres2'; did you mean 'gres'?" in text
    assert "array_parallelism: expected an integer >= 1, got 0" in text
    with pytest.raises(OrchError, match="did you mean 'local'"):
        load_profile("locl")


@pytest.mark.parametrize("text, expected", [
    ("partition: debug\nsignal_delay_s: -5\n", "site.yaml:2:1: signal_delay_s: expected an integer >= 0, got -5"),
    ("setup:\n  - module load cuda\n  - 42\n", "site.yaml:3:5: setup[1]: expected a shell line (a string), got int 42"),
    ("setup: source venv\n", "site.yaml:1:1: setup: expected a list of shell lines (strings), got str"),
    ("sbatch: {mail-type: [FAIL, END]}\n", "site.yaml:1:10: sbatch.mail-type: expected a string or an integer"),
    ("sbatch: [mail-type]\n", "site.yaml:1:1: sbatch: expected a mapping of sbatch option -> value"),
    ("jobs_per_task: 2.5\n", "site.yaml:1:1: jobs_per_task: expected an integer >= 1, got 2.5"),
    ("partition: ''\n", "site.yaml:1:1: partition: expected a non-empty string, got ''"),
    ("partition: debug\npartition: gpu\n", "site.yaml:2:1: duplicate key 'partition': first on line 1, again on line 2"),
    ("partition: !!python/object/apply:os.system [touch planted]\n", "site.yaml:1:12: tag !!python/object/apply"),
    ("- partition\n", "site.yaml:1:1: expected a mapping of profile keys"),
])
def test_profile_values_are_checked_where_written(tmp_path, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "site.yaml").write_text(text)
    with pytest.raises(GridError) as info:
        load_profile("site.yaml")
    assert str(info.value).startswith(expected), str(info.value)
    assert len(str(info.value).splitlines()) <= 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.yaml"]  # the planted tag made nothing


def test_profile_path_that_does_not_exist(tmp_path):
    (tmp_path / "site.yaml").write_text("partition: debug\n")
    with pytest.raises(OrchError, match=r"cannot read profile \(No such file or directory\); did you mean .*site.yaml"):
        load_profile(str(tmp_path / "sit.yaml"))
    assert load_profile(str(tmp_path / "site.yaml")).partition == "debug"


def test_gpu_request_styles():
    resources = {"cpus": 4, "gpus": 2, "mem_gb": 8, "time_min": 30}
    gres = SlurmExecutor(load_profile("example-gpu-cluster"))._parameters(resources, jobs_per_task=4)
    assert gres["gres"] == "gpu:2" and "gpus_per_node" not in gres
    assert gres["time"] == 120 and gres["mem"] == "8192M" and gres["additional_parameters"]["requeue"] is True
    local = SlurmExecutor(load_profile("local"))._parameters(resources, jobs_per_task=1)
    assert local["gpus_per_node"] == 2 and "gres" not in local


def test_bump_raises_only_what_killed_the_job(tmp_path):
    assert parse_bump("mem=2x,time=1.5x") == {"mem": 2.0, "time": 1.5}
    with pytest.raises(OrchError, match="--bump"):
        parse_bump("cpu=2x")
    plan = expand(parse_grid(TINY_GRID.format(iterations=2), "t.yaml"))
    sweep = Sweep(tmp_path / "sweep")
    sweep.create(plan, tmp_path / "cache")
    timed_out, oom, fine = plan.jobs[:3]
    sweep.append_submission(Submission("41", [[timed_out.job_id], [oom.job_id], [fine.job_id]], {}, None).__dict__)
    logs = sweep.root / "logs" / "slurm"
    logs.mkdir(parents=True)
    # The lines slurmstepd writes when it kills a task.
    (logs / "41_0_0_log.err").write_text("slurmstepd: error: *** JOB 42 ON vm CANCELLED AT 2026-11-22T03:00:00 "
                                         "DUE TO TIME LIMIT ***\n")
    (logs / "41_1_0_log.err").write_text("slurmstepd: error: Detected 1 oom-kill event(s) in StepId=43.batch\n")
    (logs / "41_2_0_log.err").write_text("")
    causes = death_causes(sweep, [j.job_id for j in plan.jobs])
    assert [causes[j.job_id] for j in (timed_out, oom, fine)] == ["time", "mem", None]
    assert set(causes) == {timed_out.job_id, oom.job_id, fine.job_id}  # the others were never submitted
    executor = SlurmExecutor(load_profile("local"), parse_bump("mem=2x,time=3x"))
    bumped = {j.job_id: executor.bumped(j, causes[j.job_id]) for j in (timed_out, oom, fine)}
    assert bumped[timed_out.job_id]["time_min"] == 30 and bumped[timed_out.job_id]["mem_gb"] == 1
    assert bumped[oom.job_id]["mem_gb"] == 2 and bumped[oom.job_id]["time_min"] == 10
    assert bumped[fine.job_id] == fine.resources
