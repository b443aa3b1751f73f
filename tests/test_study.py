"""Studies: several grids launched, followed, resumed and reported as one unit, through the real CLI; a
bad study refused before anything exists; the paper's study plans exactly its grids' jobs."""
import json
import re

import pytest

from orchestrator import api
from orchestrator.errors import OrchError
from tests.conftest import ROOT, orch
from tests.test_cli_inputs import run_refused

# Three grids of one job of seconds each, one per kind of kernel: an optimisation attack, an analytic
# attack and a gradient analysis.
GRIDS = {
    "ig": """
name: ig
kernel: ig
fixed: {dataset: embedded, num_images: 1, batch_size: 1, iterations: 2, model_state: untrained}
resources: {cpus: 1, mem_gb: 1, time_min: 10}
""",
    "rtf": """
name: rtf
kernel: rtf
fixed: {dataset: embedded, num_images: 2, batch_size: 2, bins: 8, model_state: untrained}
resources: {cpus: 1, mem_gb: 1, time_min: 10}
""",
    "similarity": """
name: similarity
kernel: gradient_similarity
fixed: {dataset: embedded, batch_size: 2, model_state: untrained}
resources: {cpus: 1, mem_gb: 1, time_min: 10}
""",
}
STUDY = """
name: tiny
description: three one-job grids
grids:
  - grid: grids/ig.yaml
  - grid: grids/rtf.yaml
  - grid: grids/similarity.yaml
"""


@pytest.fixture
def work(tmp_path):
    """A folder holding grids/ with the three grids and study.yaml, as a project checkout does."""
    folder = tmp_path / "work"
    (folder / "grids").mkdir(parents=True)
    for name, text in GRIDS.items():
        (folder / "grids" / f"{name}.yaml").write_text(text)
    (folder / "study.yaml").write_text(STUDY)
    return folder


def test_a_study_runs_end_to_end_with_one_command_then_status_resume_and_report(work, tmp_path):
    env = {"ORCH_CACHE_DIR": str(tmp_path / "cache")}
    planned = orch("plan", "study.yaml", cwd=work, env=env)
    assert planned.returncode == 0, planned.stderr
    assert all(name in planned.stdout for name in ("ig", "rtf", "similarity", "total"))

    launched = orch("launch", "study.yaml", "--workers", "1", cwd=work, env=env)
    assert launched.returncode == 0, launched.stderr
    assert "tiny: grid 3 of 3, similarity" in launched.stderr  # the grids ran one after another, shown
    study = work / "runs" / "tiny"
    meta = json.loads((study / "study.json").read_text())
    assert [g["sweep"] for g in meta["grids"]] == ["ig", "rtf", "similarity"]
    assert (study / "study.yaml").read_text() == STUDY
    for name in GRIDS:  # each grid is an ordinary sweep folder with its one shard
        assert len(list((study / name / "shards").glob("*.parquet"))) == 1, name
        assert json.loads((study / name / "sweep.json").read_text())["cache_dir"] == str(tmp_path / "cache")
    assert (study / "report" / "index.md").is_file()  # a local launch ends with the study's report

    status = orch("status", str(study), cwd=work)
    assert status.returncode == 0, status.stderr
    rows = {cells[0]: cells[1:] for line in status.stdout.splitlines()
            if len(cells := [c.strip() for c in re.split("[│┃]", line)[1:-1]]) == 1 + len(api.STATES)}
    assert list(rows) == ["grid", "ig", "rtf", "similarity", "total"], status.stdout
    assert rows["grid"] == list(api.STATES) and rows["total"] == ["3", "0", "0", "0", "0", "0"], status.stdout

    (next((study / "rtf" / "shards").glob("*.parquet"))).unlink()  # one job lost: resume reruns it alone
    resumed = orch("resume", str(study), "--no-report", cwd=work, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("0 to run") == 2 and "1 already done, 0 to run" in resumed.stderr
    assert "0 already done, 1 to run" in resumed.stderr, resumed.stderr

    relaunched = orch("launch", "study.yaml", "--no-report", cwd=work, env=env)  # again: nothing is missing
    assert relaunched.returncode == 0 and relaunched.stderr.count("1 already done, 0 to run") == 3, relaunched.stderr

    reported = orch("report", str(study), "--html", cwd=work)
    assert reported.returncode == 0, reported.stderr
    page = (study / "report" / "report.html").read_text()
    for name, kernel in (("ig", "ig"), ("rtf", "rtf"), ("similarity", "gradient_similarity")):
        assert f"{name}: grids/{name}.yaml, kernel {kernel}" in page
        assert (study / "report" / name / "summary.csv").is_file()
    assert "Cosine similarity between each image" in page  # the analysis's Table II
    assert page.count("data:image/png;base64") >= 2


def test_the_python_api_plans_launches_polls_and_reports_a_study(work, tmp_path, monkeypatch):
    monkeypatch.chdir(work)
    monkeypatch.setenv("ORCH_CACHE_DIR", str(tmp_path / "cache"))
    planned = api.plan("study.yaml")
    assert [g.folder for g in planned.grids] == ["ig", "rtf", "similarity"] and len(planned.all_jobs) == 3
    dry = api.launch("study.yaml", dry_run=True)
    assert dry.dry_run and dry.sweep == work / "runs" / "tiny" and not (work / "runs").exists()

    result = api.launch("study.yaml", workers=1, progress=False)
    assert result.exit_code == api.EXIT_DONE and [r.to_run for r in result.grids] == [1, 1, 1]
    status = api.status(result.sweep)
    assert list(status.grids) == ["ig", "rtf", "similarity"] and status.count("done") == 3 and status.active == 0
    written = api.report(result.sweep)
    assert written.files[0] == result.sweep / "report" / "index.md" and all(written.grids.values())
    index = written.files[0].read_text()
    assert all(f"## {name}: grids/{name}.yaml" in index for name in ("ig", "rtf", "similarity"))


def test_a_bad_study_is_refused_before_anything_exists(work):
    def study(text: str) -> str:
        (work / "bad.yaml").write_text(text)
        return "bad.yaml"

    run_refused(work, "launch", study(STUDY.replace("grids/rtf.yaml", "grids/rtf.yml")),
                names=["bad.yaml:6:5", "grids[1].grid", "did you mean grids/rtf.yaml?"])
    run_refused(work, "plan", study(STUDY.replace("- grid: grids/rtf", "- gird: grids/rtf")),
                names=["bad.yaml:6:5", "grids[1].gird", "did you mean 'grid'?"])
    run_refused(work, "launch", study(STUDY + "scales: {small: {}}\n"), "--scale", "smal",
                names=["--scale", "did you mean 'small'?"])
    # A study scale must name scales every grid has: these grids have none, so no grid scale may be named.
    run_refused(work, "launch", study(STUDY + "scales: {quick: {rtf: tiny}}\n"), "--scale", "quick",
                names=["bad.yaml:8:18", "scales.quick.rtf", "defines no scales"])
    run_refused(work, "launch", study(STUDY + "  - grid: grids/ig.yaml\n"),
                names=["bad.yaml:8:5", "grids[3]", "grids[0] already plans grid 'ig'"])
    (work / "grids" / "ig.yaml").write_text(GRIDS["ig"].replace("iterations", "iteratoins"))
    run_refused(work, "launch", "study.yaml",  # a mistake inside a grid is named in the grid file
                names=["grids/ig.yaml:4:58", "fixed.iteratoins", "did you mean 'iterations'?"])


def test_the_paper_study_plans_exactly_its_grids_jobs(monkeypatch):
    monkeypatch.chdir(ROOT)  # its grid paths are relative to the project's root, as on the command line
    study = api.plan("studies/paper.yaml", "small")
    assert len(study.grids) == 12 and all(g.plan.grid.scale == "small" for g in study.grids)
    for grid in study.grids:  # a study adds no job of its own, and changes none
        alone = api.plan(grid.plan.grid.source, "small")
        assert [j.job_id for j in grid.plan.all_jobs] == [j.job_id for j in alone.all_jobs]
    with pytest.raises(OrchError, match="unknown scale 'tiny'"):
        api.plan("studies/paper.yaml", "tiny")
