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
