"""Practical FedAvg (Table III): the client's local training, whose update it sends instead of a gradient.

Semantics of the authors' FedAvgReconstructor (inversefed's `loss_steps`): the client takes
(num_images // B) * E SGD steps over its images in a fixed order, batch i % (num_images // B), with
the model in eval mode, and sends its update (new weights - old weights). The server's simulations of
it: kernels/attacks/fedavg.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


@dataclass(frozen=True)
class LocalTraining:
    epochs: int
    batch_size: int
    lr: float


def local_update(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, training: LocalTraining,
                 differentiable: bool = False) -> list[torch.Tensor]:
    """The client's update, new minus old weights, per parameter. `differentiable` keeps the graph
    through every step, so the server can differentiate the update with respect to the images."""
    names = [name for name, _ in model.named_parameters()]
    start = [p for _, p in model.named_parameters()]
    buffers = dict(model.named_buffers())
    current = start if differentiable else [p.detach().requires_grad_(True) for p in start]
    batches = len(images) // training.batch_size
    if batches == 0:
        raise ValueError(f"local batch size {training.batch_size} exceeds the client's {len(images)} images")
    for step in range(batches * training.epochs):
        j = step % batches
        batch = slice(j * training.batch_size, (j + 1) * training.batch_size)
        logits = functional_call(model, {**dict(zip(names, current)), **buffers}, (images[batch],))
        grads = torch.autograd.grad(F.cross_entropy(logits, labels[batch]), current, create_graph=differentiable)
        current = [p - training.lr * g for p, g in zip(current, grads)]
        if not differentiable:
            current = [p.detach().requires_grad_(True) for p in current]
    return [(p - s) if differentiable else (p - s).detach() for p, s in zip(current, start)]
