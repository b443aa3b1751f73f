"""The declaration pieces several kernels share, torch-free: parameter groups, column groups, checks,
resolution of defaults, the batch fan-out, prerequisites, preflight and descriptors.

A kernel composes its parameters with kernels.kernel.parameters(group, group, ...), in the order of its
shard's columns; a name given twice is refused, so a kernel that differs from a group (DLG's model,
FedAvg's client data) declares its own group instead of overriding a key.
"""
from __future__ import annotations

from kernels.attacks.settings import ig_defaults
from kernels.data.catalog import DATASETS, missing_data
from kernels.models.catalog import (ACTIVATION_NAMES, DEFAULT_ACTIVATION, IMAGENET_WEIGHTS, parameter_count,
                                    pretrained_weights_path)
from kernels.models.recipe import train_recipe
from kernels.params import Param

# The paper's batch attacks group the jobs of one grid point: they differ only in these.
BATCH_GROUP_VARYING = ("batch_index", "seed", "data_seed")

# --- parameters -------------------------------------------------------------------------------------


def data_params(model: Param | None = None) -> dict[str, Param]:
    """The data set and the target model built on it; `model` replaces the default architecture."""
    return {
        "dataset": Param(str, "embedded", "data set to attack", choices=tuple(DATASETS)),
        "data_root": Param(str, None, "folder holding the data sets (default $GIA_DATA_ROOT or ./data)",
                           nullable=True, identity=False),
        "model": model or Param(str, "resnet18", "target architecture (ResNets take the CIFAR stem at 32x32)",
                                choices=tuple(DEFAULT_ACTIVATION)),
        "activation": Param(str, None, "activation of every layer (default: the architecture's own, "
                            "Sigmoid for LeNet, ReLU otherwise)", nullable=True, choices=ACTIVATION_NAMES),
        "resolution": Param(int, None, "image side fed to the model (default: the data set's own; "
                            "ImageNet may be resized to 64 or 128, the embedded set cut at 64)", nullable=True,
                            choices=(32, 64, 128, 224)),
        "model_seed": Param(int, 0, "seed of the model's initial weights (shared by all jobs of a sweep)"),
    }


DATA_PARAMS = data_params()

TRAIN_PARAMS = {
    "train_epochs": Param(int, 120, "epochs of the project's own training run for model_state=trained", min=1),
    "train_lr": Param(float, 0.1, "SGD learning rate of that training run", min=0.0),
    "train_pool": Param(int, 2048, "embedded data only: number of training crops", min=64),
}

MODEL_STATE = {
    "model_state": Param(str, "untrained", "weights of the attacked model (trained: the project's own "
                         "training run; on ImageNet torchvision's pretrained weights)",
                         choices=("untrained", "trained")),
}

# One FedSGD client batch of the data set's attacked subset (the paper's protocol, or Figure 5's).
CLIENT_BATCH = {
    "num_images": Param(int, 64, "size of the data set's attacked subset", min=1),
    "data_seed": Param(int, 0, "seed of the subset and of its split into batches"),
    "batch_size": Param(int, doc="client batch size B", min=1),
    "batch_index": Param(int, None, "which of the num_images/B batches (default: every one)", nullable=True),
    "same_label": Param(int, None, "Figure 5: number of images of each batch that share one label, the "
                        "others all distinct (0: all distinct; default: the data set's subset protocol)",
                        nullable=True, min=0),
}


def label_restoration(default: str, choices: tuple[str, ...]) -> dict[str, Param]:
    """How the attacker comes by the batch's labels (only the optimisation attacks restore them)."""
    return {"labels": Param(str, default, "labels the attacker uses: known (handed over), idlg (B=1, "
                            "sign of the last layer's gradient), analytic (batch, LLG-style counts)"
                            + (", joint (optimised with the images, DLG)" if "joint" in choices else ""),
                            choices=choices)}


ATTACK_SEED = {"seed": Param(int, 0, "seed of the attack's random initialisation")}

SCORING = {
    "lpips_net": Param(str, "alex", "LPIPS backbone", choices=("alex", "vgg", "squeeze")),
    "metric_mode": Param(str, "standard", "how reconstructions are scored: standard (de-normalised images in "
                         "[0, 1], SSIM, matched within the batch on MSE) or paper (the authors' code: "
                         "normalised tensors, CW-SSIM, matched on LPIPS across the data set's subset)",
                         choices=("standard", "paper")),
}

CHECKPOINTING = {
    "checkpoint_every_s": Param(float, 120.0, "seconds between checkpoints of the attack's state", min=0.0,
                                identity=False),
}

# The client's check of the model it receives (the paper's third defence), reported beside each result.
CLIENT_VALIDATION = {
    "dsnr_threshold": Param(float, 10.0, "client-side validation flags a model whose disaggregation "
                            "signal-to-noise ratio (Garov et al. 2024) on the client's batch exceeds this",
                            min=0.0),
}

# --- columns (name -> Arrow type), each group filled by the code named beside it ------------------------

# kernels/metrics/scoring.py: the scored pair. batch_position is null where the paper mode matched a
# reconstruction to another batch's image.
SCORED_IMAGE_COLUMNS = {
    "image_index": "int64", "label": "int64", "batch_position": "int64", "matched_position": "int64",
    "psnr": "float64", "ssim": "float64", "lpips": "float64", "lpips_note": "string", "ssim_kind": "string",
    "matched_by": "string",
}
# kernels/runtime.py job_columns: every kernel's last columns.
RUN_COLUMNS = {"kernel_seconds": "float64", "device": "string"}
# kernels/attacks/ig.py invert: how an IG run went.
IG_RUN_COLUMNS = {
    "interruptions": "int64", "resumed_from_iteration": "int64", "iterations_done": "int64",
    "zero_gradient": "bool", "checkpoint_discarded": "string",
}
# kernels/defences/client_validation.py validate_received_model.
VALIDATION_COLUMNS = {"validation_flagged": "bool", "validation_reasons": "string",
                      "validation_extra_parameters": "int64", "validation_dsnr": "float64"}

# --- checks, defaults, fan-out, prerequisites, descriptors ---------------------------------------------


def data_resolve(p: dict) -> dict:
    return {**p, "activation": p["activation"] or DEFAULT_ACTIVATION[p["model"]],
            "resolution": p["resolution"] or DATASETS[p["dataset"]].resolution}


def ig_resolve(p: dict) -> dict:
    """data_resolve, then the IG settings the data set decides (kernels/attacks/settings.py)."""
    p = data_resolve(p)
    return {**p, **{k: v for k, v in ig_defaults(DATASETS[p["dataset"]]).items() if p[k] is None}}


def data_check(p: dict) -> str | None:
    sides = DATASETS[p["dataset"]].sides
    if p["resolution"] not in sides:
        return f"resolution {p['resolution']}: {p['dataset']} is read at {', '.join(map(str, sides))}"
    return None


def state_check(p: dict) -> str | None:
    """ImageNet's trained state is torchvision's pretrained ResNet, which exists only as published."""
    if p["model_state"] != "trained" or not DATASETS[p["dataset"]].pretrained:
        return None
    if p["model"] not in IMAGENET_WEIGHTS:
        return (f"model_state=trained on {p['dataset']} uses torchvision's ImageNet weights, which exist for "
                f"{', '.join(IMAGENET_WEIGHTS)}, not {p['model']}")
    if p["activation"] != "relu":
        return f"model_state=trained on {p['dataset']}: torchvision's pretrained weights are for ReLU, not {p['activation']}"
    return None


def target_check(p: dict) -> str | None:
    """The data and the model state of a kernel without a client batch."""
    return data_check(p) or state_check(p)


def batch_check(p: dict) -> str | None:
    n, b = p["num_images"], p["batch_size"]
    if n % b:
        return f"num_images ({n}) must be a multiple of batch_size ({b}): the subset is split into num_images/B batches"
    if p["batch_index"] is not None and not 0 <= p["batch_index"] < n // b:
        return f"batch_index ({p['batch_index']}) must be in [0, {n // b})"
    if p["same_label"] is not None and (p["same_label"] == 1 or p["same_label"] > b):
        return f"same_label ({p['same_label']}) must be 0 (all labels distinct) or in [2, batch_size={b}]"
    if p.get("labels") == "idlg" and b != 1:
        return f"labels=idlg restores the label of one image; batch_size is {b} (use labels=analytic)"
    return target_check(p)


def batch_fan_out(p: dict) -> dict[str, range]:
    """One job per client batch. A range, not a list: the orchestrator sizes the fan-out before it
    builds anything, so `num_images: 10**11` is refused by its job cap instead of filling memory. At
    least one batch, so that num_images < batch_size reaches batch_check's message."""
    if p["batch_index"] is not None:
        return {}
    return {"batch_index": range(max(1, p["num_images"] // p["batch_size"]))}


def preflight(p: dict) -> str | None:
    """The data set in place and, for ImageNet's trained state, torchvision's weights staged."""
    problem = missing_data(p["dataset"], p["data_root"])
    if problem or p.get("model_state") != "trained" or not DATASETS[p["dataset"]].pretrained:
        return problem
    path = pretrained_weights_path(p["model"])
    if path.exists():
        return None
    return (f"torchvision's ImageNet weights for {p['model']} are not staged: {path} is missing (nothing is "
            f"downloaded at run time; see README, 'Pretrained ImageNet weights')")


def trained_model_first(p: dict) -> list[tuple[str, dict]]:
    """model_state=trained needs its train_model job (ImageNet's trained state is torchvision's)."""
    if p["model_state"] == "trained" and not DATASETS[p["dataset"]].pretrained:
        return [("train_model", train_recipe(p))]
    return []


def target_model(p: dict) -> dict[str, int]:
    """Descriptor of every kernel with a target model: its size, Table I's Network Architecture level."""
    p = data_resolve(p)
    return {"model_parameters": parameter_count(p["model"], DATASETS[p["dataset"]].num_classes, p["resolution"])}
