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
