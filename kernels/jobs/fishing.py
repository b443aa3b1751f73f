"""Kernel `fishing`: a malicious server fishes one image out of a FedSGD client's batch (class fishing,
kernels/attacks/fishing.py), then recovers it with Inverting Gradients; one row, the target's.

The server knows the class it fishes for (the target's true label) and the batch size B, which clients
report so that their updates can be weighted. The client checks the model it receives
(kernels/defences/client_validation.py) and sends its gradient anyway; the row says whether it would have refused.
"""
from __future__ import annotations

import time

from kernels.attacks.settings import IG_OPTIMISATION
from kernels.jobs.declarations import (ATTACK_SEED, BATCH_GROUP_VARYING, CHECKPOINTING, CLIENT_BATCH,
                                       CLIENT_VALIDATION, DATA_PARAMS, IG_RUN_COLUMNS, MODEL_STATE, RUN_COLUMNS,
                                       SCORED_IMAGE_COLUMNS, SCORING, TRAIN_PARAMS, VALIDATION_COLUMNS, batch_check,
                                       batch_fan_out, ig_resolve, preflight, target_model, trained_model_first)
from kernels.kernel import Kernel, KernelResult, columns, parameters
from kernels.params import Param

TARGET = {"target_position": Param(int, 0, "which image of the batch the server fishes for", min=0)}


def check(p: dict) -> str | None:
    if not 0 <= p["target_position"] < p["batch_size"]:
        return f"target_position ({p['target_position']}) must be in [0, batch_size={p['batch_size']})"
    return batch_check(p)


def run(params: dict, ctx) -> KernelResult:
    import dataclasses

    import torch
    import torch.nn.functional as F

    from kernels.attacks import fishing
    from kernels.attacks.checkpoint import AttackCheckpoint
    from kernels.attacks.ig import IGConfig, invert
    from kernels.defences.client_validation import validate_received_model
    from kernels.federated import client as clients
    from kernels.federated.fedsgd import client_gradient
    from kernels.metrics.scoring import score

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
    result = score(target, params, reconstruction, job_info, started)
    result.rows[0]["batch_position"] = t  # its place in the client's batch, not in the one-image view
    return result


KERNEL = Kernel(
    name="fishing",
    version="fishing-3",
    family="ANA",
    mechanism="manipulated_parameters",  # the classifier's weights are rewritten, the layers kept
    doc="Fishing (Wen et al. 2022): the server rewrites the classifier so that only the target image's class "
        "contributes to the gradient, then inverts that isolated gradient with Inverting Gradients.",
    # One client batch; the server knows the target's label, so no label restoration.
    params=parameters(DATA_PARAMS, TRAIN_PARAMS, MODEL_STATE, CLIENT_BATCH, ATTACK_SEED, SCORING, CHECKPOINTING,
                      TARGET, IG_OPTIMISATION, CLIENT_VALIDATION),
    columns=columns(SCORED_IMAGE_COLUMNS,
                    {"final_objective": "float64", "attack_seconds": "float64", "isolation_cosine": "float64",
                     "honest_isolation_cosine": "float64", "target_class_count": "int64"},
                    VALIDATION_COLUMNS, IG_RUN_COLUMNS, RUN_COLUMNS),
    run=run,
    check=check,
    resolve=ig_resolve,
    fan_out=batch_fan_out,
    prerequisites=trained_model_first,
    preflight=preflight,
    descriptors=target_model,
    group_varying=BATCH_GROUP_VARYING,
)
