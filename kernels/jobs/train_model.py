"""Kernel `train_model`: the `trained` model state, trained once per recipe and cached by its hash
(kernels/models/training.py); the attacks on model_state=trained require it (declarations.trained_model_first)."""
from __future__ import annotations

from kernels.data.catalog import DATASETS
from kernels.jobs.declarations import DATA_PARAMS, TRAIN_PARAMS, data_check, data_resolve, preflight, target_model
from kernels.kernel import Kernel, KernelResult, columns, parameters
from kernels.models.recipe import TRAINING_VERSION


def check(p: dict) -> str | None:
    if DATASETS[p["dataset"]].pretrained:
        return f"{p['dataset']} is not trained here: its trained state is torchvision's pretrained weights"
    return data_check(p)


def run(params: dict, ctx) -> KernelResult:
    from kernels.models.training import train

    return KernelResult(rows=[train(params, ctx.cache_dir, ctx.cpus)])


KERNEL = Kernel(
    name="train_model",
    version=TRAINING_VERSION,
    family="training",
    doc="Trains the target model on the data set in use; the checkpoint is cached by the recipe's hash.",
    params=parameters(DATA_PARAMS, TRAIN_PARAMS),
    columns=columns({"train_loss": "float64", "train_accuracy": "float64", "attack_split_accuracy": "float64",
                     "train_seconds": "float64", "device": "string", "checkpoint": "string", "reused_cache": "bool"}),
    run=run,
    check=check,
    resolve=data_resolve,
    preflight=preflight,
    descriptors=target_model,
)
