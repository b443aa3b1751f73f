"""Kernel `gradient_similarity`: Table II, how much a batch's gradient tells its images apart
(kernels/analyses/gradient_similarity.py)."""
from __future__ import annotations

import time

from kernels.jobs.declarations import (DATA_PARAMS, MODEL_STATE, RUN_COLUMNS, TRAIN_PARAMS, data_resolve, preflight,
                                       target_check, target_model, trained_model_first)
from kernels.kernel import Kernel, KernelResult, columns, parameters
from kernels.params import Param

ANCHOR_BATCHES = {
    "batch_size": Param(int, 4, "B: the batches I_1..I_B (I_i: i images share the anchor's label)", min=2),
    "data_seed": Param(int, 0, "seed of the anchor image and of the other images drawn"),
}


def run(params: dict, ctx) -> KernelResult:
    from kernels import runtime
    from kernels.analyses.gradient_similarity import draw_images, similarity_rows
    from kernels.federated import client as clients

    started = time.time()
    client = clients.prepare(params, ctx, choose=lambda labels: draw_images(labels, params["batch_size"],
                                                                             params["data_seed"]))
    rows = similarity_rows(client, params)
    timing = runtime.job_columns(client.device, started)
    return KernelResult(rows=[{**row, **timing} for row in rows])


KERNEL = Kernel(
    name="gradient_similarity",
    version="gradsim-1",
    family="analysis",
    doc="Table II: cosine similarity between one image's gradient and the gradients of batches in which 1..B "
        "images share its label.",
    params=parameters(DATA_PARAMS, TRAIN_PARAMS, MODEL_STATE, ANCHOR_BATCHES),
    columns=columns({"shared_labels": "int64", "position": "int64", "image_index": "int64", "label": "int64",
                     "same_class_as_anchor": "bool", "cosine": "float64", "anchor_cosine": "float64"},
                    RUN_COLUMNS),
    check=target_check,
    run=run,
    resolve=data_resolve,
    prerequisites=trained_model_first,
    preflight=preflight,
    descriptors=target_model,
)
