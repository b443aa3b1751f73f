"""The cosine gradient distance stays finite where float32 underflows."""
import pytest
import torch

from kernels.attacks.ig import gradient_distance


def test_cosine_distance_is_scale_free_down_to_tiny_target_gradients():
    torch.manual_seed(0)
    target = [torch.randn(64, 32), torch.randn(10)]
    trial = [t + 0.5 * torch.randn_like(t) for t in target]
    reference = float(gradient_distance("sim", target)(trial))
    assert 0 < reference < 1
    # A gradient of norm ~1e-23, as a trained model sends for an image it is sure of: its squares and the
    # product of norms underflow float32, which made the objective inf before the target was normalised.
    tiny = [t * 1e-24 for t in target]
    assert float(gradient_distance("sim", tiny)(trial)) == pytest.approx(reference, rel=1e-5)


def test_an_exactly_zero_gradient_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="exactly zero"):
        gradient_distance("sim", [torch.zeros(3, 3)])


def test_imagenet_settings_top10_layers_and_median_filter():
    """The authors' ImageNet IG: the 10 parameter tensors with the largest target-gradient norms, and a
    3x3 median filter with reflected edges (scipy's 'mirror') on the result; defaults by data set."""
    import numpy as np
    from scipy import ndimage

    from kernels.attacks.ig import matched_layers, median_filter
    from kernels.registry import KERNELS

    target = [torch.full((3,), float(v)) for v in [5, 1, 9, 2, 8, 7, 3, 6, 4, 10, 0.5, 11]]
    assert matched_layers("top10", target) == [0, 2, 3, 4, 5, 6, 7, 8, 9, 11]  # all but norms 1 and 0.5
    assert matched_layers("all", target) == list(range(12))
    x = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(0))
    expected = ndimage.median_filter(x.numpy(), size=(1, 1, 3, 3), mode="mirror")
    assert np.allclose(median_filter(x).numpy(), expected)
    ig = KERNELS["ig"]
    defaults = {n: p.default for n, p in ig.params.items() if not p.required} | {"batch_size": 1}
    imagenet = ig.resolve({**defaults, "dataset": "imagenet"})
    cifar = ig.resolve({**defaults, "dataset": "cifar10"})
    assert (imagenet["layers"], imagenet["median_filter"], imagenet["tv"]) == ("top10", True, 1e-6)
    assert (cifar["layers"], cifar["median_filter"], cifar["tv"]) == ("all", False, 1e-2)


def test_zero_client_gradient_is_a_result_not_a_failure():
    """A model that fits its batch perfectly (softmax saturated in float32) sends an exactly zero gradient.
    The attack cannot match a direction that does not exist: it returns its uninformed starting point,
    says so, and does not raise (a retry would only fail again)."""
    from kernels.attacks.ig import IGConfig, invert
    from kernels.federated.fedsgd import client_gradient
    from kernels.models.architectures import build_model

    model = build_model("mlp", 8, 16, 0).eval()
    labels = torch.tensor([3])
    with torch.no_grad():
        model.layers[-1].bias[3] = 1e4  # class 3 wins by a margin no float32 softmax can resolve
    gradient = client_gradient(model, torch.rand(1, 3, 16, 16), labels)
    assert all(float(g.abs().max()) == 0 for g in gradient)
    mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    guess, loss, run = invert(model, gradient, labels, (3, 16, 16), mean, std, IGConfig(iterations=5),
                              torch.Generator().manual_seed(0))
    start = torch.randn((1, 3, 16, 16), generator=torch.Generator().manual_seed(0)).clamp(0, 1)
    assert loss is None and run["zero_gradient"] and run["iterations_done"] == 0
    assert torch.equal(guess, start)
