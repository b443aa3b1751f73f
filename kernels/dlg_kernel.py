"""Kernel `dlg`: one FedSGD client batch attacked with Deep Leakage from Gradients, scored per image."""
from __future__ import annotations

import time

import torch

from kernels import client as clients
from kernels.attacks.dlg import DLGConfig, invert
from kernels.attacks.ig import client_gradient
from kernels.attacks.labels import restore
from kernels.checkpoint import CHECKPOINT_COLUMN_TYPES, AttackCheckpoint
from kernels.result import KernelResult


def run(params: dict, ctx) -> KernelResult:
    started = time.time()
    client = clients.prepare(params, ctx)
    shared_gradient = client_gradient(client.model, client.normalise(client.originals), client.labels)
    # `joint`: DLG's own way, the labels are optimised with the images; otherwise they are fixed first.
    given = None if params["labels"] == "joint" else restore(params["labels"], client.model, shared_gradient,
                                                             client.labels, tuple(client.originals.shape[1:]))
    generator = torch.Generator().manual_seed(params["seed"])
    attack_started = time.time()
    checkpoint = AttackCheckpoint(ctx.scratch_dir, params["checkpoint_every_s"])
    reconstruction, labels, final_loss, run_info = invert(
        client.model, shared_gradient, given, tuple(client.originals.shape[1:]), len(client.labels),
        client.info.num_classes, DLGConfig(params["iterations"], params["lr"]), generator, checkpoint)
    job_info = {"iterations_done": run_info["diverged_at"] or params["iterations"], "final_objective": final_loss,
                "attack_seconds": time.time() - attack_started,
                "labels_recovered": clients.labels_recovered(labels, client.labels), **run_info}
    result = clients.result(client, params, reconstruction, job_info, started)
    result.column_types.update({"diverged_at": "int64", **CHECKPOINT_COLUMN_TYPES})
    return result
