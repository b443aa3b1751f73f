"""Architectures, activations and ImageNet weights: built from tables, validated before anything runs."""
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from kernels.models import training
from kernels.models.architectures import ACTIVATIONS, ARCHITECTURES, build_model
from kernels.models.catalog import (ACTIVATION_NAMES, DEFAULT_ACTIVATION, IMAGENET_WEIGHT_FILES, IMAGENET_WEIGHTS,
                                    pretrained_weights_path)
from kernels.registry import KERNELS


def activation_types(model):
    return {type(m) for m in model.modules() if isinstance(m, tuple(ACTIVATIONS.values()))}


# Every activation on the small models and ResNet-18; the deep ResNets (slow to build) with one swap.
PAIRS = [(n, a) for n in ARCHITECTURES for a in ACTIVATION_NAMES if n in ("lenet", "mlp", "resnet18") or a == "gelu"]


@pytest.mark.parametrize("name, activation", PAIRS)
def test_architectures_with_swapped_activations(name, activation):
    resolution = 32
    model = build_model(name, 10, resolution, 0, activation).eval()
    assert activation_types(model) == {ACTIVATIONS[activation]}
    with torch.no_grad():
        out = model(torch.randn(2, 3, resolution, resolution))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_default_activations_and_same_seed_same_weights():
    assert activation_types(build_model("lenet", 10, 32, 0)) == {nn.Sigmoid}
    assert activation_types(build_model("resnet50", 10, 32, 0)) == {nn.ReLU}
    a, b, c = (build_model("resnet18", 10, 32, s) for s in (0, 0, 1))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_resnet_stem_depends_on_resolution():
    cifar, imagenet = build_model("resnet34", 100, 32, 0), build_model("resnet34", 1000, 64, 0)
    assert cifar.conv1.kernel_size == (3, 3) and isinstance(cifar.maxpool, nn.Identity)
    assert imagenet.conv1.kernel_size == (7, 7) and isinstance(imagenet.maxpool, nn.MaxPool2d)
    assert imagenet(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_lenet_and_mlp_follow_the_resolution():
    for resolution in (16, 32, 64):
        for name in ("lenet", "mlp"):
            assert build_model(name, 7, resolution, 0)(torch.rand(1, 3, resolution, resolution)).shape == (1, 7)


def test_catalog_matches_the_tables():
    assert set(ARCHITECTURES) == set(DEFAULT_ACTIVATION) and set(ACTIVATIONS) == set(ACTIVATION_NAMES)
    ig = KERNELS["ig"].params
    assert set(ig["model"].choices) == set(ARCHITECTURES) and set(ig["activation"].choices) == set(ACTIVATIONS)


@pytest.mark.parametrize("name", list(IMAGENET_WEIGHTS))
def test_weight_file_names_match_torchvision(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = getattr(torchvision.models, IMAGENET_WEIGHTS[name]).IMAGENET1K_V1
    assert Path(weights.url).name == IMAGENET_WEIGHT_FILES[name]
    assert pretrained_weights_path(name) == Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    assert pretrained_weights_path(name) == tmp_path / "hub" / "checkpoints" / IMAGENET_WEIGHT_FILES[name]


def test_pretrained_weights_read_when_staged_and_named_when_not(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = build_model("resnet18", 1000, 224, 0)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}.*resnet18-f37072fd.pth is missing"):
        training.load_pretrained(model, "resnet18")
    # Stage a checkpoint the way a user would (other weights: nothing can be downloaded here).
    path = pretrained_weights_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.manual_seed(5)
    staged = torchvision.models.resnet18()
    torch.save(staged.state_dict(), path)
    training.load_pretrained(model, "resnet18")
    assert torch.equal(model.fc.weight, staged.fc.weight)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(RuntimeError, match="not a readable torch checkpoint"):
        training.load_pretrained(model, "resnet18")
