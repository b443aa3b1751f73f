"""Kernel `gradient_embedding`: Figure 4, a t-SNE map of per-image gradients (kernels/analyses/gradient_embedding.py)."""
from __future__ import annotations

import time

from kernels.jobs.declarations import (DATA_PARAMS, MODEL_STATE, RUN_COLUMNS, TRAIN_PARAMS, data_resolve, preflight,
                                       target_check, target_model, trained_model_first)
from kernels.kernel import Kernel, KernelResult, columns, parameters
from kernels.params import Param

EMBEDDING = {
    "num_images": Param(int, 64, "images whose gradients are embedded", min=4),
    "data_seed": Param(int, 0, "seed of the images drawn"),
    "perplexity": Param(float, 10.0, "t-SNE perplexity (must be below num_images)", min=1.0),
    "seed": Param(int, 0, "seed of the t-SNE initialisation"),
}


def check(p: dict) -> str | None:
    if p["perplexity"] >= p["num_images"]:
        return f"perplexity ({p['perplexity']}) must be below num_images ({p['num_images']})"
    return target_check(p)


def run(params: dict, ctx) -> KernelResult:
    from kernels import runtime
    from kernels.analyses.gradient_embedding import embedding_rows
    from kernels.federated import client as clients

    started = time.time()
    client = clients.prepare(params, ctx)
    rows = embedding_rows(client, params)
    timing = runtime.job_columns(client.device, started)
    return KernelResult(rows=[{**row, **timing} for row in rows])


KERNEL = Kernel(
    name="gradient_embedding",
    version="gradembed-1",
    family="analysis",
    doc="Figure 4: a t-SNE embedding of per-image gradients, with their mean pairwise cosine similarity.",
    params=parameters(DATA_PARAMS, TRAIN_PARAMS, MODEL_STATE, EMBEDDING),
    # mean_cosine_same_class and mean_cosine_other_class are null where the subset has no such pair.
    columns=columns({"image_index": "int64", "label": "int64", "embed_x": "float64", "embed_y": "float64",
                     "gradient_norm": "float64", "mean_cosine_to_others": "float64",
                     "mean_cosine_same_class": "float64", "mean_cosine_other_class": "float64",
                     "exact_cosines": "bool"},
                    RUN_COLUMNS),
    check=check,
    run=run,
    resolve=data_resolve,
    prerequisites=trained_model_first,
    preflight=preflight,
    descriptors=target_model,
)
