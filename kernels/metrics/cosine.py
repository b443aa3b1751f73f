"""Cosine similarity of gradients, computed so that it stays in [-1, 1] and defined only where it is.

Two numerical traps, both met in this project: a trained model that is sure of an image sends a
gradient of norm ~1e-23, whose squares underflow float32 to 0; and torch's float32 norm of ResNet-18's
11M entries is off by ~4e-4, which gave cosines above 1. So a gradient is first divided by its largest
entry and its squares are summed in float64. A gradient that is exactly zero has no direction at all.
"""
from __future__ import annotations

import torch


class ZeroGradient(ValueError):
    """An exactly zero gradient: a model sure of every image underflows its float32 softmax, so the update
    carries nothing of the images and no direction to compare or match."""


def direction(gradient: torch.Tensor, what: str) -> tuple[torch.Tensor, float]:
    """The unit vector of a flat `gradient` and its norm; ZeroGradient names `what` if it has none."""
    scale = float(gradient.abs().max())
    if scale == 0:
        raise ZeroGradient(f"the gradient of {what} is exactly zero (the model fits it perfectly): it has no "
                           "direction to compare")
    scaled = gradient / scale
    length = float(torch.sqrt(scaled.square().sum(dtype=torch.float64)))
    return scaled / length, scale * length


def cosine(unit_a: torch.Tensor, unit_b: torch.Tensor) -> float:
    """The cosine of two unit vectors from `direction`, summed in float64 like their norms."""
    return float(torch.sum(unit_a * unit_b, dtype=torch.float64))
