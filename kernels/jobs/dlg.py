"""Kernel `dlg`: one FedSGD client batch attacked with Deep Leakage from Gradients (Zhu et al. 2019),
scored per image."""
from __future__ import annotations

import time

from kernels.attacks.settings import DLG_OPTIMISATION
from kernels.jobs.declarations import (ATTACK_SEED, BATCH_GROUP_VARYING, CHECKPOINTING, CLIENT_BATCH, MODEL_STATE,
                                       RUN_COLUMNS, SCORED_IMAGE_COLUMNS, SCORING, TRAIN_PARAMS, batch_check,
                                       batch_fan_out, data_params, data_resolve, label_restoration, preflight,
                                       target_model, trained_model_first)
from kernels.kernel import Kernel, KernelResult, columns, parameters
from kernels.models.catalog import DEFAULT_ACTIVATION
from kernels.params import Param


def run(params: dict, ctx) -> KernelResult:
    import torch

    from kernels.attacks.checkpoint import AttackCheckpoint
    from kernels.attacks.dlg import DLGConfig, invert
    from kernels.attacks.labels import restore
    from kernels.federated import client as clients
    from kernels.federated.fedsgd import client_gradient
    from kernels.metrics.scoring import score

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
        client.info.num_classes, DLGConfig.from_params(params), generator, checkpoint)
    job_info = {"iterations_done": run_info["diverged_at"] or params["iterations"], "final_objective": final_loss,
                "attack_seconds": time.time() - attack_started,
                "labels_recovered": clients.labels_recovered(labels, client.labels), **run_info}
    return score(client, params, reconstruction, job_info, started)


KERNEL = Kernel(
    name="dlg",
    version="dlg-2",
    family="OP",
    doc="DLG: squared L2 gradient distance, L-BFGS on images (and labels, jointly, by default).",
    params=parameters(
        data_params(model=Param(str, "lenet", "target architecture (DLG attacked its Sigmoid LeNet)",
                                choices=tuple(DEFAULT_ACTIVATION))),
        TRAIN_PARAMS, MODEL_STATE, CLIENT_BATCH, label_restoration("joint", ("joint", "known", "idlg", "analytic")),
        ATTACK_SEED, SCORING, CHECKPOINTING, DLG_OPTIMISATION),
    columns=columns(SCORED_IMAGE_COLUMNS,
                    {"iterations_done": "int64", "final_objective": "float64", "attack_seconds": "float64",
                     "labels_recovered": "int64", "interruptions": "int64", "resumed_from_iteration": "int64",
                     "diverged_at": "int64", "checkpoint_discarded": "string"},
                    RUN_COLUMNS),
    run=run,
    check=batch_check,
    resolve=data_resolve,
    fan_out=batch_fan_out,
    prerequisites=trained_model_first,
    preflight=preflight,
    descriptors=target_model,
    group_varying=BATCH_GROUP_VARYING,
)
