"""FedSGD: what a client sends, the gradient of its mean cross-entropy on one batch."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def client_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
    """The client's FedSGD gradient of every parameter, detached."""
    loss = F.cross_entropy(model(images), labels)
    return [g.detach() for g in torch.autograd.grad(loss, list(model.parameters()))]


def flat_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The same gradient as one vector (its directions and cosines: kernels/metrics/cosine.py)."""
    return torch.cat([g.flatten() for g in client_gradient(model, images, labels)])
