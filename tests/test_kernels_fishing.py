"""Class fishing: the manipulated classifier isolates the target image's gradient (Eq. 6) in a batch of
real photographs, leaves the honest model alone, reports repeated classes honestly, and the kernel
returns the target's row."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kernels.attacks import fishing
from kernels.attacks.ig import IGConfig, invert
from kernels.federated.fedsgd import client_gradient
from kernels.data import embedded
from kernels.data.catalog import DATASETS
from kernels.metrics.standard import psnr
from kernels.models.architectures import build_model
from kernels.registry import KERNELS
from tests.test_kernels_run import context, resolved

INFO = DATASETS["embedded"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


MEAN = torch.tensor(INFO.mean).view(1, 3, 1, 1)
STD = torch.tensor(INFO.std).view(1, 3, 1, 1)


def batch(indices, side=32):
    """Embedded photographs (8 classes, 8 views each: image i has class i // 8), normalised."""
    images, labels = embedded.evaluation_split()
    x = torch.as_tensor(images[indices])
    x = F.avg_pool2d(x, 32 // side) if side < 32 else x
    return (x - MEAN) / STD, torch.as_tensor(labels[indices])


def test_fishing_isolates_the_target_gradient_on_resnet18():
    """One view of each of the 8 photographs (unique labels). On the honest untrained ResNet-18 the
    batch gradient is a blend: its cosine with the target's own is 0.29 at position 0 (from -0.48 to 0.71
    over the 8 positions); fished, it is the target's alone (1 to float64 rounding)."""
    images, labels = batch([8 * c + 2 for c in range(8)])
    model = build_model("resnet18", INFO.num_classes, 32, 0).eval()
    fished = fishing.isolation_cosine(fishing.fish(model, int(labels[0])), images, labels, 0)
    honest = fishing.isolation_cosine(model, images, labels, 0)
    assert fished > 0.99
    assert honest < fished - 0.25


def test_non_target_images_send_no_body_gradient():
    """The mechanism itself: an image of another class contributes exactly zero to every body
    parameter, while the target's own gradient is not zero."""
    images, labels = batch([3, 11, 19, 27])
    model = build_model("lenet", INFO.num_classes, 32, 0, "relu").eval()
    fished = fishing.fish(model, int(labels[1]))
    others = fishing.body_gradient(fished, client_gradient(fished, images[[0, 2, 3]], labels[[0, 2, 3]]))
    assert all(torch.count_nonzero(g) == 0 for g in others)
    target = fishing.body_gradient(fished, client_gradient(fished, images[1:2], labels[1:2]))
    assert sum(float(g.norm()) for g in target) > 0
    assert len(fishing.body_parameters(fished)) == len(list(model.parameters())) - 2  # all but fc's weight, bias


def test_the_honest_model_is_left_untouched():
    model = build_model("mlp", INFO.num_classes, 32, 0).eval()
    before = {name: p.detach().clone() for name, p in model.state_dict().items()}
    fished = fishing.fish(model, 3)
    for name, p in model.state_dict().items():
        assert torch.equal(p, before[name]), name
    head = fishing.classifier(fished)
    assert not set(map(id, fished.parameters())) & set(map(id, model.parameters()))
    # Target row kept, every other row zeroed with the large bias.
    assert torch.equal(head.weight[3], before["layers.5.weight"][3]) and head.bias[3] == before["layers.5.bias"][3]
    others = [c for c in range(INFO.num_classes) if c != 3]
    assert torch.count_nonzero(head.weight[others]) == 0
    assert torch.all(head.bias[others] == fishing.NON_TARGET_BIAS)


def test_a_repeated_class_is_reported_not_isolated():
    """Two views of the same photograph in a batch of 4: class fishing keeps both, so the body gradient is
    their sum and the cosine with the target's own falls below 1 (0.72 here; 0.58 on the honest model)."""
    images, labels = batch([0, 1, 9, 17])  # classes 0, 0, 1, 2
    model = build_model("mlp", INFO.num_classes, 32, 0).eval()
    fished = fishing.fish(model, int(labels[0]))
    assert fishing.target_class_count(labels, 0) == 2
    assert fishing.isolation_cosine(fished, images, labels, 0) < 0.95
    # The pair's gradient is still isolated from the two other classes: it is the pair's own.
    pair = fishing.body_gradient(fished, client_gradient(fished, images[:2], labels[:2]))
    sent = fishing.body_gradient(fished, client_gradient(fished, images, labels))
    assert all(torch.allclose(p, 2 * s, rtol=1e-4, atol=1e-6 * float(p.abs().max())) for p, s in zip(pair, sent))


def test_fishing_kernel_returns_the_target_row(tmp_path):
    params = resolved("fishing", model="mlp", num_images=8, batch_size=4, batch_index=1, target_position=2,
                      iterations=3)
    result = KERNELS["fishing"].load()(params, context(tmp_path))
    assert len(result.rows) == 1 and len(result.images) == 1
    row = result.rows[0]
    assert row["batch_position"] == 2 and row["target_class_count"] == 1
    assert np.isfinite(row["psnr"]) and np.isfinite(row["final_objective"]) and row["iterations_done"] == 3
    assert row["isolation_cosine"] > 0.99 and row["honest_isolation_cosine"] < 0.9
    # The fished model makes every image but the target's gradient vanish: the client's check sees it.
    assert row["validation_flagged"] and row["validation_dsnr"] > params["dsnr_threshold"]
    assert row["validation_extra_parameters"] == 0  # same architecture: only the parameters changed
    assert result.images[0]["image_index"] == row["image_index"]
    for column in ("isolation_cosine", "target_class_count", "validation_flagged", "validation_dsnr", "lpips"):
        assert column in result.column_types


def test_fished_reconstruction_beats_ig_on_the_blended_batch():
    """The point of fishing: from a batch of 4 (MLP, 16x16 views so that 200 IG iterations converge),
    IG on the fished body gradient recovers the target about as well as IG on the target alone, while IG
    on the honest batch gradient taken for one image recovers a blend. Over the 4 positions (fished /
    blended / alone, dB): 46.3/27.6/52.6, 27.6/15.6/29.4, 44.4/20.4/40.7, 25.5/17.7/24.9."""
    images, labels = batch([8 * c + 3 for c in range(4)], side=16)
    truth = (images[1] * STD[0] + MEAN[0]).numpy()
    model = build_model("mlp", INFO.num_classes, 16, 0).eval()
    config = IGConfig(iterations=200, tv=1e-4)

    def recovered(attacked, params, target):
        label = labels[1:2]

        def observe(x):
            return torch.autograd.grad(F.cross_entropy(attacked(x), label), params, create_graph=True)

        x, _, _ = invert(attacked, target, label, (3, 16, 16), MEAN, STD, config, torch.Generator().manual_seed(0),
                         observe=observe)
        return psnr(truth, (x[0] * STD[0] + MEAN[0]).clamp(0, 1).numpy())

    fished = fishing.fish(model, int(labels[1]))
    isolated = fishing.body_gradient(fished, client_gradient(fished, images, labels))
    blended = client_gradient(model, images, labels)
    fished_psnr = recovered(fished, fishing.body_parameters(fished), isolated)
    blended_psnr = recovered(model, list(model.parameters()), blended)
    assert fished_psnr > 24.0 and fished_psnr > blended_psnr + 6.0
