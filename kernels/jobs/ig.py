"""Kernel `ig`: one FedSGD client batch attacked with Inverting Gradients (Geiping et al. 2020), scored per image."""
from __future__ import annotations

import time

from kernels.attacks.settings import IG_OPTIMISATION
from kernels.jobs.declarations import (ATTACK_SEED, BATCH_GROUP_VARYING, CHECKPOINTING, CLIENT_BATCH, DATA_PARAMS,
                                       IG_RUN_COLUMNS, MODEL_STATE, RUN_COLUMNS, SCORED_IMAGE_COLUMNS, SCORING,
                                       TRAIN_PARAMS, batch_check, batch_fan_out, ig_resolve, label_restoration,
                                       preflight, target_model, trained_model_first)
from kernels.kernel import Kernel, KernelResult, columns, parameters


def run(params: dict, ctx) -> KernelResult:
    import torch

    from kernels.attacks.checkpoint import AttackCheckpoint
    from kernels.attacks.ig import IGConfig, invert
    from kernels.attacks.labels import restore
    from kernels.federated import client as clients
    from kernels.federated.fedsgd import client_gradient
    from kernels.metrics.scoring import score

    started = time.time()
    client = clients.prepare(params, ctx)
    shared_gradient = client_gradient(client.model, client.normalise(client.originals), client.labels)
    labels = restore(params["labels"], client.model, shared_gradient, client.labels,
                     tuple(client.originals.shape[1:]))
    generator = torch.Generator().manual_seed(params["seed"])
    attack_started = time.time()
    checkpoint = AttackCheckpoint(ctx.scratch_dir, params["checkpoint_every_s"])
    reconstruction, final_loss, run_info = invert(client.model, shared_gradient, labels,
                                                  tuple(client.originals.shape[1:]), client.mean, client.std,
                                                  IGConfig.from_params(params), generator, checkpoint)
    job_info = {"final_objective": final_loss,
                "attack_seconds": time.time() - attack_started,
                "labels_recovered": clients.labels_recovered(labels, client.labels), **run_info}
    return score(client, params, reconstruction, job_info, started)


KERNEL = Kernel(
    name="ig",
    version="ig-4",
    family="OP",
    doc="Inverting Gradients: cosine gradient distance + TV, Adam, signed gradients, boxed pixels.",
    params=parameters(DATA_PARAMS, TRAIN_PARAMS, MODEL_STATE, CLIENT_BATCH,
                      label_restoration("known", ("known", "idlg", "analytic")), ATTACK_SEED, SCORING,
                      CHECKPOINTING, IG_OPTIMISATION),
    columns=columns(SCORED_IMAGE_COLUMNS,
                    {"final_objective": "float64", "attack_seconds": "float64", "labels_recovered": "int64"},
                    IG_RUN_COLUMNS, RUN_COLUMNS),
    run=run,
    check=batch_check,
    resolve=ig_resolve,
    fan_out=batch_fan_out,
    prerequisites=trained_model_first,
    preflight=preflight,
    descriptors=target_model,
    group_varying=BATCH_GROUP_VARYING,
)
