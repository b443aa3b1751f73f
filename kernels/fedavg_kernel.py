"""Kernel `ig_fedavg`: Inverting Gradients against one client's FedAvg update (Table III)."""
from __future__ import annotations

import time

import torch

from kernels import client as clients
from kernels.attacks.fedavg import LocalTraining, local_update, observer
from kernels.attacks.ig import IGConfig, invert
from kernels.checkpoint import CHECKPOINT_COLUMN_TYPES, AttackCheckpoint
from kernels.result import KernelResult


def run(params: dict, ctx) -> KernelResult:
    started = time.time()
    client = clients.prepare(params, ctx)
    true = LocalTraining(params["local_epochs"], params["local_batch_size"], params["local_lr"])
    weak = LocalTraining(params["sim_epochs"], params["sim_batch_size"], params["sim_lr"])
    update = local_update(client.model, client.normalise(client.originals), client.labels, true)
    config = IGConfig.from_params(params)
    generator = torch.Generator().manual_seed(params["seed"])
    attack_started = time.time()
    checkpoint = AttackCheckpoint(ctx.scratch_dir, params["checkpoint_every_s"])
    reconstruction, final_loss, run_info = invert(
        client.model, update, client.labels, tuple(client.originals.shape[1:]), client.mean, client.std, config,
        generator, checkpoint, observe=observer(client.model, client.labels, params["simulation"], true, weak))
    job_info = {"final_objective": final_loss,
                "attack_seconds": time.time() - attack_started,
                "local_steps": (params["num_images"] // params["local_batch_size"]) * params["local_epochs"],
                **run_info}
    result = clients.result(client, params, reconstruction, job_info, started)
    result.column_types.update(CHECKPOINT_COLUMN_TYPES)
    return result
