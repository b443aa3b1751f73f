"""Kernel `ig_fedavg`: Inverting Gradients against one client's FedAvg update (Table III)."""
from __future__ import annotations

import time

from kernels.attacks.settings import IG_OPTIMISATION, SIMULATIONS
from kernels.jobs.declarations import (ATTACK_SEED, CHECKPOINTING, DATA_PARAMS, IG_RUN_COLUMNS, MODEL_STATE,
                                       RUN_COLUMNS, SCORED_IMAGE_COLUMNS, SCORING, TRAIN_PARAMS, ig_resolve,
                                       preflight, target_check, target_model, trained_model_first)
from kernels.kernel import Kernel, KernelResult, columns, parameters
from kernels.params import Param

# The client's data and its local training, and what the server assumes of that training.
CLIENT_UPDATE = {
    "num_images": Param(int, 64, "the client's local data set, attacked whole", min=1),
    "data_seed": Param(int, 0, "seed of the client's images and of their order in local training"),
    "local_epochs": Param(int, doc="E: the client's local epochs", min=1),
    "local_batch_size": Param(int, doc="B: the client's local batch size", min=1),
    "local_lr": Param(float, 0.01, "the client's SGD learning rate", min=0.0),
    "simulation": Param(str, doc="what the server knows of the local training: strong (everything), "
                        "weak (assumes sim_* settings), none (takes the update for a gradient)",
                        choices=SIMULATIONS),
    "sim_batch_size": Param(int, 8, "batch size the server assumes under weak simulation", min=1),
    "sim_epochs": Param(int, 2, "epochs the server assumes under weak simulation", min=1),
    "sim_lr": Param(float, 1e-3, "learning rate the server assumes under weak simulation", min=0.0),
}


def check(p: dict) -> str | None:
    n = p["num_images"]
    if n % p["local_batch_size"]:
        return f"num_images ({n}) must be a multiple of local_batch_size ({p['local_batch_size']})"
    if p["simulation"] == "weak" and n < p["sim_batch_size"]:
        return f"simulation=weak steps through batches of sim_batch_size ({p['sim_batch_size']}) > num_images ({n})"
    return target_check(p)


def run(params: dict, ctx) -> KernelResult:
    import torch

    from kernels.attacks.checkpoint import AttackCheckpoint
    from kernels.attacks.fedavg import observer
    from kernels.attacks.ig import IGConfig, invert
    from kernels.federated import client as clients
    from kernels.federated.local_training import LocalTraining, local_update
    from kernels.metrics.scoring import score

    started = time.time()
    client = clients.prepare(params, ctx)
    true = LocalTraining(params["local_epochs"], params["local_batch_size"], params["local_lr"])
    weak = LocalTraining(params["sim_epochs"], params["sim_batch_size"], params["sim_lr"])
    update = local_update(client.model, client.normalise(client.originals), client.labels, true)
    generator = torch.Generator().manual_seed(params["seed"])
    attack_started = time.time()
    checkpoint = AttackCheckpoint(ctx.scratch_dir, params["checkpoint_every_s"])
    reconstruction, final_loss, run_info = invert(
        client.model, update, client.labels, tuple(client.originals.shape[1:]), client.mean, client.std,
        IGConfig.from_params(params), generator, checkpoint,
        observe=observer(client.model, client.labels, params["simulation"], true, weak))
    job_info = {"final_objective": final_loss,
                "attack_seconds": time.time() - attack_started,
                "local_steps": (params["num_images"] // params["local_batch_size"]) * params["local_epochs"],
                **run_info}
    return score(client, params, reconstruction, job_info, started)


KERNEL = Kernel(
    name="ig_fedavg",
    version="ig-fedavg-3",
    family="OP",
    doc="IG on one FedAvg client update: E local epochs of SGD over its num_images images, attacked with "
        "strong, weak or no simulation of the local training.",
    params=parameters(DATA_PARAMS, TRAIN_PARAMS, MODEL_STATE, CLIENT_UPDATE, IG_OPTIMISATION, ATTACK_SEED, SCORING,
                      CHECKPOINTING),
    columns=columns(SCORED_IMAGE_COLUMNS,
                    {"final_objective": "float64", "attack_seconds": "float64", "local_steps": "int64"},
                    IG_RUN_COLUMNS, RUN_COLUMNS),
    run=run,
    check=check,
    resolve=ig_resolve,
    prerequisites=trained_model_first,
    preflight=preflight,
    descriptors=target_model,
    group_varying=("seed", "data_seed"),  # one client's whole data set per job: no batch_index
)
