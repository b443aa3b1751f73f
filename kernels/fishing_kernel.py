"""Kernel `fishing`: a malicious server fishes one image out of a FedSGD client's batch (class fishing,
kernels/attacks/fishing.py), then recovers it with Inverting Gradients; one row, the target's.

The server knows the class it fishes for (the target's true label) and the batch size B, which clients
report so that their updates can be weighted. The client checks the model it receives
(kernels/validation.py) and sends its gradient anyway; the row says whether it would have refused.
"""
from __future__ import annotations

import dataclasses
import time

import torch
import torch.nn.functional as F

from kernels import client as clients
from kernels.attacks import fishing
from kernels.attacks.ig import IGConfig, client_gradient, invert
from kernels.checkpoint import CHECKPOINT_COLUMN_TYPES, AttackCheckpoint
from kernels.result import KernelResult
from kernels.validation import VALIDATION_COLUMN_TYPES, validate_received_model

COLUMN_TYPES = {"isolation_cosine": "float64", "honest_isolation_cosine": "float64",
                "target_class_count": "int64", **VALIDATION_COLUMN_TYPES, **CHECKPOINT_COLUMN_TYPES}


def run(params: dict, ctx) -> KernelResult:
    started = time.time()
    client = clients.prepare(params, ctx)
    t = params["target_position"]
    images = client.normalise(client.originals)
    target_label = client.labels[t:t + 1]
    manipulated = fishing.fish(client.model, int(target_label))

    sent = client_gradient(manipulated, images, client.labels)  # what the client sends, every parameter
    # Eq. (6): the body gradient is 1/B times the target's own. Undoing the 1/B matters to the L2 cost
    # (the cosine does not see it).
    isolated = [len(images) * g for g in fishing.body_gradient(manipulated, sent)]
    matched = fishing.body_parameters(manipulated)

    def observe(x: torch.Tensor) -> list[torch.Tensor]:
        loss = F.cross_entropy(manipulated(x), target_label)
        return torch.autograd.grad(loss, matched, create_graph=True)

    generator = torch.Generator().manual_seed(params["seed"])
    attack_started = time.time()
    checkpoint = AttackCheckpoint(ctx.scratch_dir, params["checkpoint_every_s"])
    reconstruction, final_loss, run_info = invert(manipulated, isolated, target_label,
                                                  tuple(client.originals.shape[1:]), client.mean, client.std,
                                                  IGConfig.from_params(params), generator, checkpoint,
                                                  observe=observe)
    job_info = {"final_objective": final_loss,
                "attack_seconds": time.time() - attack_started,
                "isolation_cosine": fishing.isolation_cosine(manipulated, images, client.labels, t),
                "honest_isolation_cosine": fishing.isolation_cosine(client.model, images, client.labels, t),
                "target_class_count": fishing.target_class_count(client.labels, t),
                **validate_received_model(manipulated, client.model, images, client.labels,
                                          params["dsnr_threshold"]),
                **run_info}
    # Scored against the target alone: the client seen through a batch of one image.
    target = dataclasses.replace(client, indices=client.indices[t:t + 1], labels=target_label,
                                 originals=client.originals[t:t + 1])
    result = clients.result(target, params, reconstruction, job_info, started)
    result.rows[0]["batch_position"] = t  # its place in the client's batch, not in the one-image view
    result.column_types.update(COLUMN_TYPES)
    return result
