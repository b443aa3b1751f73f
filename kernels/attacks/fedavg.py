"""Practical FedAvg (Table III), the server's side: what it computes from candidate images to compare
with a client's update (kernels/federated/local_training.py). It either unrolls the same training
differentiably (strong: the true E, B, lr; weak: guessed ones) or takes the update for a FedSGD gradient
of all the images (none).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from kernels.attacks.settings import SIMULATIONS as SIMULATION_NAMES
from kernels.federated.local_training import LocalTraining, local_update


def observer(model: nn.Module, labels: torch.Tensor, simulation: str, true: LocalTraining,
             weak: LocalTraining) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """What the server computes from candidate images, to compare with the received update."""
    return SIMULATIONS[simulation](model, labels, true, weak)


def _simulate(training_of: Callable[[LocalTraining, LocalTraining], LocalTraining]):
    def build(model, labels, true, weak):
        training = training_of(true, weak)
        return lambda x: local_update(model, x, labels, training, differentiable=True)
    return build


def _as_gradient(model, labels, true, weak):
    params = list(model.parameters())
    return lambda x: torch.autograd.grad(F.cross_entropy(model(x), labels), params, create_graph=True)


SIMULATIONS = {
    "strong": _simulate(lambda true, weak: true),
    "weak": _simulate(lambda true, weak: weak),
    # The update is compared with a gradient as it is, sign included, as the authors' code does.
    "none": _as_gradient,
}
assert tuple(SIMULATIONS) == SIMULATION_NAMES  # the declared choices are the simulations built here
