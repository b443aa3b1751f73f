"""What the gradient analyses share: one image's (or batch's) FedSGD gradient as a flat vector, and the
per-job columns every kernel reports. Their directions and cosines: kernels/gradient_cosine.py."""
from __future__ import annotations

import time

import torch

from kernels import runtime
from kernels.attacks.ig import client_gradient


def flat_gradient(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The gradient a client sends for these images (mean cross-entropy, every parameter), as one vector."""
    return torch.cat([g.flatten() for g in client_gradient(model, images, labels)])


def job_columns(device: torch.device, started: float) -> dict:
    """Columns every kernel of the project reports: its own run time and where it ran."""
    return {"kernel_seconds": time.time() - started, "device": runtime.describe(device)}
