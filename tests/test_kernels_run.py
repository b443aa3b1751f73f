"""The kernels as the orchestrator calls them: run(params, ctx) on tiny settings, and grid validation."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kernels.registry import KERNELS
from tests.test_kernels_data import imagenet_tree


@pytest.fixture(autouse=True)
def restore_threads():
    # runtime.setup sets torch's thread count from ctx.cpus (1 here); later tests get theirs back.
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def resolved(kernel: str, **given) -> dict:
    k = KERNELS[kernel]
    params = {n: p.default for n, p in k.params.items() if not p.required} | given
    params = k.resolve(params) if k.resolve else params
    problem = k.check(params) if k.check else None
    assert problem is None, problem
    return params


def context(tmp_path) -> SimpleNamespace:
    return SimpleNamespace(cache_dir=tmp_path / "cache", cpus=1, job_id="test", scratch_dir=tmp_path / "scratch")


def check_rows(result, n):
    assert len(result.rows) == n and len(result.images) == n
    for row in result.rows:
        assert np.isfinite(row["psnr"]) and np.isfinite(row["final_objective"]) and row["ssim_kind"] == "ssim"
    assert result.column_types["lpips"] == "float64"


def test_ig_kernel_with_analytic_labels(tmp_path):
    params = resolved("ig", model="mlp", num_images=8, batch_size=4, batch_index=1, iterations=5, labels="analytic")
    assert params["activation"] == "relu" and params["resolution"] == 32 and params["tv"] == 1e-2
    result = KERNELS["ig"].load()(params, context(tmp_path))
    check_rows(result, 4)
    assert result.rows[0]["labels_recovered"] == 4  # unique labels, untrained model


def test_ig_kernel_with_controlled_label_repetition(tmp_path):
    params = resolved("ig", model="lenet", activation="relu", num_images=8, batch_size=4, batch_index=0,
                      iterations=3, same_label=3)
    result = KERNELS["ig"].load()(params, context(tmp_path))
    check_rows(result, 4)
    assert sorted(np.bincount([r["label"] for r in result.rows]).tolist())[-1] == 3


def test_dlg_kernel_joint_and_idlg(tmp_path):
    for labels in ("joint", "idlg"):
        params = resolved("dlg", num_images=8, batch_size=1, batch_index=2, iterations=3, labels=labels)
        assert params["model"] == "lenet" and params["activation"] == "sigmoid"
        result = KERNELS["dlg"].load()(params, context(tmp_path))
        check_rows(result, 1)
        assert "diverged_at" in result.column_types
    assert result.rows[0]["labels_recovered"] == 1  # iDLG is exact for one image


@pytest.mark.parametrize("simulation", ["strong", "weak", "none"])
def test_fedavg_kernel(tmp_path, simulation):
    params = resolved("ig_fedavg", model="mlp", num_images=8, local_epochs=2, local_batch_size=4,
                      simulation=simulation, iterations=3)
    result = KERNELS["ig_fedavg"].load()(params, context(tmp_path))
    check_rows(result, 8)
    assert result.rows[0]["local_steps"] == 4


def test_imagenet_trained_uses_staged_torchvision_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    imagenet_tree(tmp_path / "data")
    params = resolved("ig", dataset="imagenet", data_root=str(tmp_path / "data"), resolution=64, num_images=2,
                      batch_size=1, batch_index=0, iterations=2, model_state="trained")
    assert KERNELS["ig"].prerequisites(params) == []  # no training job: the weights are torchvision's
    message = KERNELS["ig"].preflight(params)
    assert "torchvision's ImageNet weights for resnet18 are not staged" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    with pytest.raises(FileNotFoundError, match="resnet18-f37072fd.pth is missing"):
        KERNELS["ig"].load()(params, context(tmp_path))
    path = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    import torchvision
    torch.save(torchvision.models.resnet18().state_dict(), path)
    assert KERNELS["ig"].preflight(params) is None
    check_rows(KERNELS["ig"].load()(params, context(tmp_path)), 1)


@pytest.mark.parametrize("kernel, given, expected", [
    ("ig", {"labels": "idlg", "batch_size": 4}, "labels=idlg restores the label of one image"),
    ("ig", {"dataset": "cifar10", "resolution": 64, "batch_size": 1}, "cifar10 is read at 32"),
    ("ig", {"dataset": "imagenet", "model": "lenet", "model_state": "trained", "batch_size": 1},
     "exist for resnet18, resnet34, resnet50, resnet101, not lenet"),
    ("ig", {"dataset": "imagenet", "activation": "gelu", "model_state": "trained", "batch_size": 1},
     "pretrained weights are for ReLU"),
    ("ig", {"same_label": 1, "batch_size": 4}, "same_label (1) must be 0"),
    ("ig", {"same_label": 5, "batch_size": 4}, "same_label (5) must be 0"),
    ("ig_fedavg", {"simulation": "weak", "num_images": 4, "local_epochs": 1, "local_batch_size": 1},
     "sim_batch_size (8) > num_images (4)"),
    ("train_model", {"dataset": "imagenet"}, "trained state is torchvision's pretrained weights"),
])
def test_cross_parameter_checks(kernel, given, expected):
    k = KERNELS[kernel]
    params = {n: p.default for n, p in k.params.items() if not p.required} | given
    assert expected in k.check(k.resolve(params))


def test_declared_choices_reject_unknown_values():
    ig = KERNELS["ig"].params
    assert "did you mean 'gelu'" in ig["activation"].check("gelus")
    assert "unknown value 'resnet152'" in ig["model"].check("resnet152")
    assert "unknown value 96" in ig["resolution"].check(96)
    assert "unknown value 'partial'" in KERNELS["ig_fedavg"].params["simulation"].check("partial")


def test_a_group_runs_like_its_jobs_one_by_one_and_one_failure_stays_its_own(tmp_path):
    ig = KERNELS["ig"]
    jobs = [resolved("ig", model="mlp", num_images=2, batch_size=1, batch_index=i, iterations=2) for i in (0, 1)]
    broken = {**jobs[0], "dataset": "nowhere"}  # fails inside run, as a missing data set would
    outcomes = ig.load_group()([jobs[0], broken, jobs[1]], [context(tmp_path / str(i)) for i in range(3)])
    alone = [ig.load()(params, context(tmp_path / f"alone{i}")) for i, params in enumerate(jobs)]

    def measured(result):  # everything but the clocks
        return [{k: v for k, v in row.items() if not k.endswith("_seconds")} for row in result.rows]

    assert isinstance(outcomes[1], KeyError)
    assert [measured(outcomes[0]), measured(outcomes[2])] == [measured(r) for r in alone]
    assert list(outcomes[0].rows[0]) == list(ig.columns) and outcomes[0].column_types == dict(ig.columns)


def test_rows_hold_exactly_the_declared_columns_and_names_are_declared_once():
    from kernels.kernel import KernelResult, parameters

    ig = KERNELS["ig"]
    row = dict.fromkeys(ig.columns)
    with pytest.raises(ValueError, match=r"lacks declared columns \['device'\] and holds undeclared columns \['extra'\]"):
        ig.conform(KernelResult(rows=[{**{k: v for k, v in row.items() if k != "device"}, "extra": 1}]))
    with pytest.raises(ValueError, match=r"parameters \['model'\] are declared twice"):
        parameters({"model": ig.params["model"]}, {"model": ig.params["model"]})


def test_every_kernel_declares_its_family_and_grouping():
    families = {name: k.family for name, k in KERNELS.items()}
    assert families == {"ig": "OP", "dlg": "OP", "ig_fedavg": "OP", "rtf": "ANA", "fishing": "ANA",
                        "gradient_similarity": "analysis", "gradient_embedding": "analysis",
                        "activation_inputs": "analysis", "train_model": "training"}
    assert KERNELS["ig"].group_varying == ("batch_index", "seed", "data_seed")
    assert KERNELS["train_model"].group_varying == () and KERNELS["gradient_similarity"].group_varying == ()


def shipped_targets() -> set[tuple[str, str, int]]:
    """Every (model, dataset, resolution) a job of a shipped grid, at any of its scales, builds."""
    from pathlib import Path

    from orchestrator.expand import expand
    from orchestrator.grid import load_grid

    targets = set()
    for path in sorted((Path(__file__).resolve().parents[1] / "grids").glob("*.yaml")):
        for scale in load_grid(path).scales or [None]:
            for job in expand(load_grid(path, scale)).all_jobs:
                targets.add((job.params["model"], job.params["dataset"], job.params["resolution"]))
    return targets


def test_the_declared_model_size_is_the_built_models_parameter_count():
    """describe()'s model_parameters (Table I's architecture level) is computed without torch: it must be
    the exact count of the model kernels/models/architectures.py builds, for every target a grid can ask
    for (every architecture, data set and side it may be read at), the shipped grids' among them."""
    from kernels.data.catalog import DATASETS
    from kernels.models.architectures import ARCHITECTURES, build_model

    targets = {(model, name, side) for model in ARCHITECTURES for name, info in DATASETS.items() for side in info.sides}
    shipped = shipped_targets()
    assert shipped <= targets and {resolution for _, _, resolution in shipped} >= {32, 224}  # both ResNet stems
    for model, dataset, resolution in sorted(targets):
        with torch.device("meta"):  # shapes only: nothing allocated or initialised
            built = build_model(model, DATASETS[dataset].num_classes, resolution, seed=0)
        counted = sum(p.numel() for p in built.parameters())
        params = resolved("ig", model=model, dataset=dataset, resolution=resolution, batch_size=1)
        described = KERNELS["ig"].describe(params)
        assert described == {"attack_family": "OP", "model_parameters": counted}, (model, dataset, resolution)


def test_every_kernel_describes_its_jobs_for_the_analysis():
    for name, kernel in KERNELS.items():
        described = kernel.describe({n: p.default for n, p in kernel.params.items()})
        assert described["attack_family"] == kernel.family and described["model_parameters"] > 0, name
    assert KERNELS["rtf"].describe(resolved("rtf", batch_size=1))["attack_mechanism"] == "manipulated_architecture"
    assert KERNELS["fishing"].describe(resolved("fishing", batch_size=1))["attack_mechanism"] == "manipulated_parameters"
    assert "attack_mechanism" not in KERNELS["ig"].describe(resolved("ig", batch_size=1))
