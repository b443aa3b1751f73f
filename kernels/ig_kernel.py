"""Kernel `ig`: one FedSGD client batch attacked with Inverting Gradients, scored per image."""
from __future__ import annotations

import time

import torch

from kernels import client as clients
from kernels.attacks.ig import IGConfig, client_gradient, invert
from kernels.attacks.labels import restore
from kernels.checkpoint import CHECKPOINT_COLUMN_TYPES, AttackCheckpoint
from kernels.result import KernelResult


def run(params: dict, ctx) -> KernelResult:
    started = time.time()
    client = clients.prepare(params, ctx)
    shared_gradient = client_gradient(client.model, client.normalise(client.originals), client.labels)
    labels = restore(params["labels"], client.model, shared_gradient, client.labels,
                     tuple(client.originals.shape[1:]))
    config = IGConfig.from_params(params)
    generator = torch.Generator().manual_seed(params["seed"])
    attack_started = time.time()
    checkpoint = AttackCheckpoint(ctx.scratch_dir, params["checkpoint_every_s"])
    reconstruction, final_loss, run_info = invert(client.model, shared_gradient, labels,
                                                  tuple(client.originals.shape[1:]), client.mean, client.std,
                                                  config, generator, checkpoint)
    job_info = {"final_objective": final_loss,
                "attack_seconds": time.time() - attack_started,
                "labels_recovered": clients.labels_recovered(labels, client.labels), **run_info}
    result = clients.result(client, params, reconstruction, job_info, started)
    result.column_types.update(CHECKPOINT_COLUMN_TYPES)
    return result
