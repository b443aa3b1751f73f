"""Kernel `activation_inputs`: Figure 8, histograms of what every activation layer receives
(kernels/analyses/activation_inputs.py)."""
from __future__ import annotations

import time

from kernels.jobs.declarations import (DATA_PARAMS, MODEL_STATE, RUN_COLUMNS, TRAIN_PARAMS, data_resolve, preflight,
                                       target_check, target_model, trained_model_first)
from kernels.kernel import Kernel, KernelResult, columns, parameters
from kernels.params import Param

IMAGES = {
    "num_images": Param(int, 64, "images fed through the model", min=1),
    "data_seed": Param(int, 0, "seed of the images drawn"),
}


def run(params: dict, ctx) -> KernelResult:
    from kernels import runtime
    from kernels.analyses.activation_inputs import histogram_rows
    from kernels.federated import client as clients

    started = time.time()
    client = clients.prepare(params, ctx)
    rows = histogram_rows(client, params)
    timing = runtime.job_columns(client.device, started)
    return KernelResult(rows=[{**row, **timing} for row in rows])


KERNEL = Kernel(
    name="activation_inputs",
    version="actin-1",
    family="analysis",
    doc="Figure 8: histograms of the inputs each activation layer sees on the data, per layer.",
    params=parameters(DATA_PARAMS, TRAIN_PARAMS, MODEL_STATE, IMAGES),
    columns=columns({"layer": "string", "layer_index": "int64", "calls_per_forward": "int64", "bin_low": "float64",
                     "bin_high": "float64", "count": "int64", "fraction_in_unit_range": "float64",
                     "input_mean": "float64", "input_std": "float64"},
                    RUN_COLUMNS),
    check=target_check,
    run=run,
    resolve=data_resolve,
    prerequisites=trained_model_first,
    preflight=preflight,
    descriptors=target_model,
)
