"""What the gradient analyses share: one image's (or batch's) FedSGD gradient as a flat vector, its
direction computed safely, and the per-job columns every kernel reports."""
from __future__ import annotations

import time

import torch

from kernels import runtime
from kernels.attacks.ig import client_gradient


def flat_gradient(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The gradient a client sends for these images (mean cross-entropy, every parameter), as one vector."""
    return torch.cat([g.flatten() for g in client_gradient(model, images, labels)])


def direction(gradient: torch.Tensor, what: str) -> tuple[torch.Tensor, float]:
    """The unit vector of `gradient` and its norm.

    A trained model that is sure of an image sends a gradient of norm ~1e-23, whose squares underflow
    float32 to 0; dividing by the largest entry first keeps the sum of squares representable, and the
    norm is put back together in Python floats (float64). The squares are summed in float64 as well:
    torch's float32 norm of ResNet-18's 11M entries is off by ~4e-4, which gave cosines above 1."""
    scale = float(gradient.abs().max())
    if scale == 0:
        raise ValueError(f"the gradient of {what} is exactly zero (the model fits it perfectly): its cosine "
                         "similarity with anything is undefined")
    scaled = gradient / scale
    length = float(torch.sqrt(scaled.square().sum(dtype=torch.float64)))
    return scaled / length, scale * length


def cosine(unit_a: torch.Tensor, unit_b: torch.Tensor) -> float:
    """The cosine of two unit vectors from `direction`, summed in float64 like their norms."""
    return float(torch.sum(unit_a * unit_b, dtype=torch.float64))


def job_columns(device: torch.device, started: float) -> dict:
    """Columns every kernel of the project reports: its own run time and where it ran."""
    return {"kernel_seconds": time.time() - started, "device": runtime.describe(device)}
