"""The one registry: kernel name -> parameters, hooks and run function.

Importing this module must stay cheap (no torch): the orchestrator reads it to validate and expand
grids of 100,000 jobs. Run functions are named by "module:function" and imported only when a job runs.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kernels.data.catalog import DATASETS, missing_data
from kernels.params import Param


@dataclass(frozen=True)
class Kernel:
    name: str
    version: str  # part of every job id: bump it when results would change
    entry: str  # "module:function", called as function(params, ctx) -> KernelResult
    params: Mapping[str, Param]
    doc: str = ""
    # Cross-parameter checks on one resolved job; returns a problem or None.
    check: Callable[[dict], str | None] | None = None
    # Fills defaults that depend on other parameters, so the manifest shows the value used.
    resolve: Callable[[dict], dict] | None = None
    # One grid point -> several jobs: parameter -> values to expand, like an extra axis
    # (e.g. one job per batch of the 64-image subset).
    fan_out: Callable[[dict], dict[str, list]] | None = None
    # Jobs that must finish first, as (kernel name, params); deduplicated by the orchestrator.
    prerequisites: Callable[[dict], list[tuple[str, dict]]] = field(default=lambda p: [])
    # Cheap check of the outside world (data on disk) run before anything is submitted.
    preflight: Callable[[dict], str | None] | None = None

    def load(self) -> Callable:
        module, _, function = self.entry.partition(":")
        return getattr(importlib.import_module(module), function)


# --- parameters shared by every kernel that builds a model on a data set -------------------------

_DATA_PARAMS = {
    "dataset": Param(str, "embedded", "data set to attack", choices=tuple(DATASETS)),
    "data_root": Param(str, None, "folder holding the data sets (default $GIA_DATA_ROOT or ./data)",
                       nullable=True, identity=False),
    "model": Param(str, "resnet18", "target architecture", choices=("resnet18",)),
    "model_seed": Param(int, 0, "seed of the model's initial weights (shared by all jobs of a sweep)"),
}

_TRAIN_PARAMS = {
    "train_epochs": Param(int, 120, "epochs of the project's own training run for model_state=trained", min=1),
    "train_lr": Param(float, 0.1, "SGD learning rate of that training run", min=0.0),
    "train_pool": Param(int, 2048, "embedded data only: number of training crops", min=64),
}


def train_recipe(p: dict) -> dict:
    """The parameters that decide a trained checkpoint (the cache key of kernels.training)."""
    keys = ["dataset", "data_root", "model", "model_seed", "train_epochs", "train_lr", "train_pool"]
    return {k: p[k] for k in keys}


def _data_preflight(p: dict) -> str | None:
    return missing_data(p["dataset"], p["data_root"])


# --- Inverting Gradients (Geiping et al. 2020) under FedSGD ----------------------------------------

def _ig_resolve(p: dict) -> dict:
    if p["tv"] is None:
        p = {**p, "tv": DATASETS[p["dataset"]].ig_tv}
    return p


def _ig_check(p: dict) -> str | None:
    n, b = p["num_images"], p["batch_size"]
    if n % b:
        return f"num_images ({n}) must be a multiple of batch_size ({b}): the subset is split into num_images/B batches"
    if p["batch_index"] is not None and not 0 <= p["batch_index"] < n // b:
        return f"batch_index ({p['batch_index']}) must be in [0, {n // b})"
    return None


def _ig_fan_out(p: dict) -> dict[str, list]:
    if p["batch_index"] is not None:
        return {}
    return {"batch_index": list(range(p["num_images"] // p["batch_size"]))}


def _ig_prerequisites(p: dict) -> list[tuple[str, dict]]:
    return [("train_model", train_recipe(p))] if p["model_state"] == "trained" else []


IG = Kernel(
    name="ig",
    version="ig-1",
    entry="kernels.ig_kernel:run",
    doc="Inverting Gradients: cosine gradient distance + TV, Adam, signed gradients, boxed pixels.",
    params={
        **_DATA_PARAMS,
        **_TRAIN_PARAMS,
        "model_state": Param(str, "untrained", "weights of the attacked model", choices=("untrained", "trained")),
        "num_images": Param(int, 64, "size of the data set's attacked subset", min=1),
        "data_seed": Param(int, 0, "seed of the subset and of its split into batches"),
        "batch_size": Param(int, doc="client batch size B", min=1),
        "batch_index": Param(int, None, "which of the num_images/B batches (default: every one)", nullable=True),
        "iterations": Param(int, 24000, "attack iterations", min=1),
        "lr": Param(float, 0.1, "Adam learning rate, x0.1 at 3/8, 5/8 and 7/8 of the iterations", min=0.0),
        "tv": Param(float, None, "total-variation weight (default: 1e-2 for 32x32 sets, 1e-6 for ImageNet)",
                    nullable=True, min=0.0),
        "cost_fn": Param(str, "sim", "gradient distance: cosine ('sim') or squared L2", choices=("sim", "l2")),
        "signed": Param(bool, True, "step on the sign of the image gradient"),
        "boxed": Param(bool, True, "clamp pixels to the valid range after each step"),
        "seed": Param(int, 0, "seed of the attack's random initialisation"),
        "lpips_net": Param(str, "alex", "LPIPS backbone", choices=("alex", "vgg", "squeeze")),
        "checkpoint_every_s": Param(float, 120.0, "seconds between checkpoints of the attack's state", min=0.0,
                                    identity=False),
    },
    check=_ig_check,
    resolve=_ig_resolve,
    fan_out=_ig_fan_out,
    prerequisites=_ig_prerequisites,
    preflight=_data_preflight,
)

TRAIN_MODEL = Kernel(
    name="train_model",
    version="train-1",
    entry="kernels.training:run",
    doc="Trains the target model on the data set in use; the checkpoint is cached by the recipe's hash.",
    params={**_DATA_PARAMS, **_TRAIN_PARAMS},
    preflight=_data_preflight,
)

KERNELS: dict[str, Kernel] = {k.name: k for k in (IG, TRAIN_MODEL)}
