"""Grid files: expansion, job ids, and the errors a user sees."""
import time

import pytest

from orchestrator.errors import GridError
from orchestrator.expand import expand
from orchestrator.grid import parse_grid
from tests.conftest import orch

BASE = """
name: t
kernel: ig
fixed: {dataset: embedded, num_images: 8, iterations: 3}
axes:
  batch_size: [1, 4]
  model_state: [untrained, trained]
"""


def plan(text, scale=None):
    return expand(parse_grid(text, "t.yaml", scale))


def test_cartesian_product_with_fan_out_and_prerequisite():
    p = plan(BASE)
    # batch 1: 8 batches, batch 4: 2 batches; x 2 states
    assert len(p.jobs) == 2 * (8 + 2)
    assert len(p.prerequisites) == 1  # one training run serves every trained job
    trained = [j for j in p.jobs if j.params["model_state"] == "trained"]
    assert all(j.requires == (p.prerequisites[0].job_id,) for j in trained)
    assert {j.params["batch_index"] for j in p.jobs if j.params["batch_size"] == 4} == {0, 1}


def test_ids_are_stable_and_content_addressed():
    a, b = plan(BASE), plan(BASE)
    assert [j.job_id for j in a.jobs] == [j.job_id for j in b.jobs]
    # Pinned: an id changes only if the parameters, their defaults or the kernel version change.
    first = a.jobs[0]
    assert first.params["batch_size"] == 1 and first.params["batch_index"] == 0
    assert first.job_id == "ig-22e0ec0fff8d"
    # ...and it is the documented contract: sha256 of the canonical JSON of kernel, version, parameters.
    import hashlib
    import json

    canonical = json.dumps({"kernel": "ig", "version": "ig-4",
                            "params": {k: v for k, v in first.params.items() if k not in ("data_root", "checkpoint_every_s")}},
                           sort_keys=True, separators=(",", ":"))
    assert first.job_id == "ig-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]
    assert len({j.job_id for j in a.jobs}) == len(a.jobs)
    # Axis order in the file does not change ids; a changed value does.
    reordered = BASE.replace("  batch_size: [1, 4]\n  model_state: [untrained, trained]",
                             "  model_state: [untrained, trained]\n  batch_size: [1, 4]")
    assert {j.job_id for j in plan(reordered).jobs} == {j.job_id for j in a.jobs}
    changed = plan(BASE.replace("iterations: 3", "iterations: 4"))
    assert not {j.job_id for j in changed.jobs} & {j.job_id for j in a.jobs}


def test_data_root_is_not_part_of_the_id():
    moved = plan(BASE.replace("dataset: embedded,", "dataset: embedded, data_root: /elsewhere,"))
    assert [j.job_id for j in moved.jobs] == [j.job_id for j in plan(BASE).jobs]


def test_zip_exclude_and_seeds():
    text = """
name: t
kernel: ig
fixed: {num_images: 4, iterations: 3, batch_index: 0}
zip:
  - {batch_size: [1, 2, 4], lr: [0.1, 0.05, 0.01]}
axes: {model_state: [untrained, trained]}
exclude:
  - {batch_size: 4, model_state: trained}
seeds: [0, 1]
"""
    p = plan(text)
    combos = {(j.params["batch_size"], j.params["lr"], j.params["model_state"], j.params["seed"]) for j in p.jobs}
    assert len(p.jobs) == (3 * 2 - 1) * 2
    assert (4, 0.01, "trained", 0) not in combos and (2, 0.05, "trained", 1) in combos
    assert "seed" in p.grid.factors


def test_scales_overlay_fixed_and_axes():
    text = BASE + """
scales:
  paper: {fixed: {iterations: 24000, num_images: 64}}
  tiny: {axes: {batch_size: [1]}, fixed: {model_state: untrained}}
default_scale: tiny
"""
    assert len(plan(text).jobs) == 8
    paper = plan(text, "paper")
    assert len(paper.jobs) == 2 * (64 + 16) and paper.jobs[0].params["iterations"] == 24000


def test_paper_grid_job_count():
    from orchestrator.grid import load_grid
    from tests.conftest import ROOT

    p = expand(load_grid(ROOT / "grids" / "opgia.yaml"))
    # 4 data sets x 2 states x (64/1 + 64/4 + 64/8 + 64/16 + 64/32 + 64/64) batches
    # ImageNet's trained state is torchvision's pretrained weights: training jobs only for the other 3 sets
    assert len(p.jobs) == 4 * 2 * 95 and len(p.prerequisites) == 3


@pytest.mark.parametrize("text, expected", [
    (BASE.replace("axes:", "axis:"), "axis: unknown key 'axis'; did you mean 'axes'?"),
    (BASE.replace("batch_size: [1, 4]", "batch_sise: [1, 4]"),
     "axes.batch_sise: unknown parameter 'batch_sise' of kernel 'ig'; did you mean 'batch_size'?"),
    (BASE.replace("dataset: embedded", "dataset: cifar"), "fixed.dataset: unknown value 'cifar'"),
    (BASE.replace("[1, 4]", "[1, four]"), "axes.batch_size[1]: expected an integer, got str 'four'"),
    (BASE.replace("kernel: ig", "kernel: igg"), "kernel: unknown kernel 'igg'; did you mean 'ig'?"),
    (BASE.replace("[untrained, trained]", "[untrained, pretrained]"),
     "did you mean 'trained'? (valid: untrained, trained)"),
    (BASE + "resources: {cpu: 2}\n", "resources.cpu: unknown key 'cpu'; did you mean 'cpus'?"),
    (BASE.replace("[1, 4]", "[1, 3]"), "num_images (8) must be a multiple of batch_size (3)"),
    (BASE + "exclude: [{dataset: embedded}]\n", "exclude[0].dataset: exclude rules name axes or zip parameters"),
    ("name: t\nkernel: ig\n", "batch_size: required by kernel 'ig'"),
    (BASE + "scales: {paper: {fixd: {}}}\ndefault_scale: paper\n", "scales.paper.fixd: unknown key 'fixd'"),
])
def test_validation_messages(text, expected):
    with pytest.raises(GridError) as info:
        plan(text)
    assert expected in str(info.value)
    assert str(info.value).startswith("t.yaml:")


def test_yaml_12_floats():
    p = plan(BASE.replace("iterations: 3", "iterations: 3, tv: 1e-6"))
    assert p.jobs[0].params["tv"] == 1e-6


def test_misspelled_key_fails_fast_names_it_and_creates_nothing(tmp_path, write_grid):
    path = write_grid(BASE.replace("model_state:", "modelstate:"))
    started = time.monotonic()
    result = orch("launch", str(path), "--sweep-dir", str(tmp_path / "sweep"))
    elapsed = time.monotonic() - started
    assert result.returncode == 2
    assert "axes.modelstate: unknown parameter 'modelstate' of kernel 'ig'; did you mean 'model_state'?" in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "sweep").exists()
    assert elapsed < 2.0, f"validation took {elapsed:.2f}s"


def test_missing_data_set_is_named_before_anything_is_created(tmp_path):
    from tests.conftest import ROOT

    result = orch("launch", str(ROOT / "grids" / "opgia.yaml"), "--sweep-dir", str(tmp_path / "s"),
                  env={"GIA_DATA_ROOT": str(tmp_path / "no-data")})
    assert result.returncode == 2
    assert f"data set 'cifar10' not found at {tmp_path / 'no-data' / 'cifar-10-batches-py'}" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "s").exists()


SCALED = BASE + """
scales:
  paper: {fixed: {iterations: 24000}}
  small: {fixed: {model_state: untrained}}
default_scale: paper
"""


@pytest.mark.parametrize("text, expected", [
    # a setting that clashes only in one scale is named where it is written, and the scale said
    (SCALED + "exclude: [{model_state: trained}]\n",
     "exclude[0].model_state: exclude rules name axes or zip parameters (batch_size) (scale 'small')"),
    (SCALED.replace("small: {fixed: {model_state: untrained}}", "small: {zip: [{batch_size: [1], lr: [0.1]}]}"),
     "scales.small.zip[0].batch_size: 'batch_size' is already set in axes.batch_size"),
    # a required parameter set in one scale only
    (SCALED.replace("  batch_size: [1, 4]\n", "").replace("paper: {fixed: {iterations: 24000}}",
                                                          "paper: {axes: {batch_size: [1]}}"),
     "scales.small: batch_size: required by kernel 'ig'"),
    (BASE + "exclude: [{}]\n", "exclude[0]: expected a mapping of parameter -> value or list of values, got dict {}"),
    (BASE + "zip: [{}]\n", "zip[0]: expected a mapping of parameter -> list of values, got dict {}"),
    (BASE.replace("batch_size: [1, 4]", "batch_size: [1, 4]\n  lr: [1, 1.0]"), "axes.lr[1]: repeated value 1.0"),
    (BASE + "exclude: [{batch_size: [1, 4]}]\n", "the grid makes no jobs: its exclude rules remove every point"),
    (BASE + "replicates: 100000000\n", "replicates: expected an integer in [1, 10,000,000], got 100000000"),
    (BASE + "seeds: [0, 1.5]\n", "seeds[1]: expected an integer, got float 1.5"),
])
def test_scale_exclude_zip_and_seed_messages(text, expected):
    with pytest.raises(GridError) as info:
        plan(text)
    assert expected in str(info.value)


def test_message_is_at_most_three_lines_and_problems_keeps_all():
    text = BASE.replace("fixed: {dataset: embedded, num_images: 8, iterations: 3}",
                        "fixed: {datset: embedded, num_imgs: 8, iteratons: 3, lrr: 1, tvv: 2}")
    with pytest.raises(GridError) as info:
        plan(text)
    lines = str(info.value).splitlines()
    assert len(lines) == 3 and len(info.value.problems) == 5
    assert lines[0].startswith("t.yaml:4:9: fixed.datset: unknown parameter 'datset'") and "did you mean 'dataset'" in lines[0]
    assert "(valid: dataset, data_seed, " in lines[0] and "(28 in all)" in lines[0]  # the nearest names first
    assert lines[1].startswith("t.yaml:4:27: fixed.num_imgs: ")  # in the order of the file
    assert lines[2] == "(and 3 more problem(s): fixed.iteratons, fixed.lrr, fixed.tvv)"
    assert all(len(line) <= 300 for line in lines)


def test_messages_never_print_unbounded_values():
    huge_key, huge_value = "k" * 100_000, "v" * 100_000
    for text in (BASE + f"{huge_key}: 1\n", BASE.replace("dataset: embedded", f"dataset: {huge_value}")):
        with pytest.raises(GridError) as info:
            plan(text)
        assert len(str(info.value)) < 400, str(info.value)[:400]


def test_aliases_merge_keys_and_nulls_read_as_in_yaml():
    text = """
name: t
kernel: ig
fixed: &common {dataset: embedded, num_images: 8, iterations: 3}
axes:
  batch_size: &sizes [1, 4]
zip: null
scales:
  paper: {}
  small:
    fixed: {<<: *common, iterations: 2}
    axes: {batch_size: *sizes}
default_scale: small
"""
    small = plan(text)
    assert small.jobs[0].params["iterations"] == 2 and small.jobs[0].params["num_images"] == 8
    assert {j.params["batch_size"] for j in small.jobs} == {1, 4}


def test_replicates_give_seeds_without_building_a_list():
    grid = parse_grid(BASE + "replicates: 3\n", "t.yaml")
    assert list(grid.seeds) == [0, 1, 2] and len(expand(grid).jobs) == 3 * 2 * (8 + 2)
