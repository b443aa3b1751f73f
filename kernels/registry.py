"""The one registry: kernel name -> parameters, hooks and run function.

Importing this module must stay cheap (no torch): the orchestrator reads it to validate and expand
grids of 100,000 jobs. Run functions are named by "module:function" and imported only when a job runs.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kernels.data.catalog import DATASETS, missing_data
from kernels.model_catalog import (ACTIVATION_NAMES, DEFAULT_ACTIVATION, IMAGENET_WEIGHT_FILES, IMAGENET_WEIGHTS,
                                   torch_hub_dir)
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
    "model": Param(str, "resnet18", "target architecture (ResNets take the CIFAR stem at 32x32)",
                   choices=tuple(DEFAULT_ACTIVATION)),
    "activation": Param(str, None, "activation of every layer (default: the architecture's own, "
                        "Sigmoid for LeNet, ReLU otherwise)", nullable=True, choices=ACTIVATION_NAMES),
    "resolution": Param(int, None, "image side fed to the model (default: the data set's own; "
                        "ImageNet may be resized to 64 or 128, the embedded set cut at 64)", nullable=True, choices=(32, 64, 128, 224)),
    "model_seed": Param(int, 0, "seed of the model's initial weights (shared by all jobs of a sweep)"),
}

_TRAIN_PARAMS = {
    "train_epochs": Param(int, 120, "epochs of the project's own training run for model_state=trained", min=1),
    "train_lr": Param(float, 0.1, "SGD learning rate of that training run", min=0.0),
    "train_pool": Param(int, 2048, "embedded data only: number of training crops", min=64),
}


def train_recipe(p: dict) -> dict:
    """The parameters that decide a trained checkpoint (the cache key of kernels.training)."""
    keys = ["dataset", "data_root", "model", "activation", "resolution", "model_seed", "train_epochs",
            "train_lr", "train_pool"]
    return {k: p[k] for k in keys}


def _data_resolve(p: dict) -> dict:
    return {**p, "activation": p["activation"] or DEFAULT_ACTIVATION[p["model"]],
            "resolution": p["resolution"] or DATASETS[p["dataset"]].resolution}


def _data_check(p: dict) -> str | None:
    sides = DATASETS[p["dataset"]].sides
    if p["resolution"] not in sides:
        return f"resolution {p['resolution']}: {p['dataset']} is read at {', '.join(map(str, sides))}"
    return None


def pretrained_weights_path(model: str) -> Path:
    return Path(torch_hub_dir()) / "checkpoints" / IMAGENET_WEIGHT_FILES[model]


def _state_check(p: dict) -> str | None:
    """ImageNet's trained state is torchvision's pretrained ResNet, which exists only as published."""
    if p["model_state"] != "trained" or not DATASETS[p["dataset"]].pretrained:
        return None
    if p["model"] not in IMAGENET_WEIGHTS:
        return (f"model_state=trained on {p['dataset']} uses torchvision's ImageNet weights, which exist for "
                f"{', '.join(IMAGENET_WEIGHTS)}, not {p['model']}")
    if p["activation"] != "relu":
        return f"model_state=trained on {p['dataset']}: torchvision's pretrained weights are for ReLU, not {p['activation']}"
    return None


def _train_check(p: dict) -> str | None:
    if DATASETS[p["dataset"]].pretrained:
        return f"{p['dataset']} is not trained here: its trained state is torchvision's pretrained weights"
    return _data_check(p)


def _preflight(p: dict) -> str | None:
    problem = missing_data(p["dataset"], p["data_root"])
    if problem or p.get("model_state") != "trained" or not DATASETS[p["dataset"]].pretrained:
        return problem
    path = pretrained_weights_path(p["model"])
    if path.exists():
        return None
    return (f"torchvision's ImageNet weights for {p['model']} are not staged: {path} is missing (nothing is "
            f"downloaded at run time; see README, 'Pretrained ImageNet weights')")


def _prerequisites(p: dict) -> list[tuple[str, dict]]:
    if p["model_state"] == "trained" and not DATASETS[p["dataset"]].pretrained:
        return [("train_model", train_recipe(p))]
    return []


# --- one client batch under FedSGD: shared by the optimisation attacks ----------------------------

# Declared once for every attack kernel (each dict placed where it keeps the shard columns' order).
_MODEL_STATE = {
    "model_state": Param(str, "untrained", "weights of the attacked model (trained: the project's own "
                         "training run; on ImageNet torchvision's pretrained weights)",
                         choices=("untrained", "trained")),
}
_ATTACK_RUN = {
    "seed": Param(int, 0, "seed of the attack's random initialisation"),
    "lpips_net": Param(str, "alex", "LPIPS backbone", choices=("alex", "vgg", "squeeze")),
    "metric_mode": Param(str, "standard", "how reconstructions are scored: standard (de-normalised images in "
                         "[0, 1], SSIM, matched within the batch on MSE) or paper (the authors' code: "
                         "normalised tensors, CW-SSIM, matched on LPIPS across the data set's subset)",
                         choices=("standard", "paper")),
    "checkpoint_every_s": Param(float, 120.0, "seconds between checkpoints of the attack's state", min=0.0,
                                identity=False),
}


def _batch_params(default_labels: str, label_choices: tuple[str, ...]) -> dict[str, Param]:
    return {
        **_MODEL_STATE,
        "num_images": Param(int, 64, "size of the data set's attacked subset", min=1),
        "data_seed": Param(int, 0, "seed of the subset and of its split into batches"),
        "batch_size": Param(int, doc="client batch size B", min=1),
        "batch_index": Param(int, None, "which of the num_images/B batches (default: every one)", nullable=True),
        "same_label": Param(int, None, "Figure 5: number of images of each batch that share one label, the "
                            "others all distinct (0: all distinct; default: the data set's subset protocol)",
                            nullable=True, min=0),
        "labels": Param(str, default_labels, "labels the attacker uses: known (handed over), idlg (B=1, "
                        "sign of the last layer's gradient), analytic (batch, LLG-style counts)"
                        + (", joint (optimised with the images, DLG)" if "joint" in label_choices else ""),
                        choices=label_choices),
        **_ATTACK_RUN,
    }


def _batch_check(p: dict) -> str | None:
    n, b = p["num_images"], p["batch_size"]
    if n % b:
        return f"num_images ({n}) must be a multiple of batch_size ({b}): the subset is split into num_images/B batches"
    if p["batch_index"] is not None and not 0 <= p["batch_index"] < n // b:
        return f"batch_index ({p['batch_index']}) must be in [0, {n // b})"
    if p["same_label"] is not None and (p["same_label"] == 1 or p["same_label"] > b):
        return f"same_label ({p['same_label']}) must be 0 (all labels distinct) or in [2, batch_size={b}]"
    if p.get("labels") == "idlg" and b != 1:
        return f"labels=idlg restores the label of one image; batch_size is {b} (use labels=analytic)"
    return _data_check(p) or _state_check(p)


def _batch_fan_out(p: dict) -> dict[str, range]:
    """One job per client batch. A range, not a list: the orchestrator sizes the fan-out before it
    builds anything, so `num_images: 10**11` is refused by its job cap instead of filling memory. At
    least one batch, so that num_images < batch_size reaches _batch_check's message."""
    if p["batch_index"] is not None:
        return {}
    return {"batch_index": range(max(1, p["num_images"] // p["batch_size"]))}


_IG_OPTIMISATION = {
    "iterations": Param(int, 24000, "attack iterations", min=1),
    "lr": Param(float, 0.1, "Adam learning rate, x0.1 at 3/8, 5/8 and 7/8 of the iterations", min=0.0),
    "tv": Param(float, None, "total-variation weight (default: 1e-2 for 32x32 sets, 1e-6 for ImageNet)",
                nullable=True, min=0.0),
    "cost_fn": Param(str, "sim", "gradient distance: cosine ('sim') or squared L2", choices=("sim", "l2")),
    "signed": Param(bool, True, "step on the sign of the image gradient"),
    "boxed": Param(bool, True, "clamp pixels to the valid range after each step"),
    "layers": Param(str, None, "parameter tensors whose gradients are matched: all, or top10 (the 10 with the "
                    "largest target-gradient norm; default: top10 for ImageNet, as the authors' script, else all)",
                    nullable=True, choices=("all", "top10")),
    "median_filter": Param(bool, None, "3x3 median filter on the final reconstruction (default: on for ImageNet, "
                           "as the authors' script, else off)", nullable=True),
}


def _ig_resolve(p: dict) -> dict:
    p = _data_resolve(p)
    info = DATASETS[p["dataset"]]
    defaults = {"tv": info.ig_tv, "layers": "top10" if info.ig_imagenet_settings else "all",
                "median_filter": info.ig_imagenet_settings}
    return {**p, **{k: v for k, v in defaults.items() if p[k] is None}}


# --- Inverting Gradients (Geiping et al. 2020) under FedSGD ----------------------------------------

IG = Kernel(
    name="ig",
    version="ig-4",
    entry="kernels.ig_kernel:run",
    doc="Inverting Gradients: cosine gradient distance + TV, Adam, signed gradients, boxed pixels.",
    params={**_DATA_PARAMS, **_TRAIN_PARAMS, **_batch_params("known", ("known", "idlg", "analytic")),
            **_IG_OPTIMISATION},
    check=_batch_check,
    resolve=_ig_resolve,
    fan_out=_batch_fan_out,
    prerequisites=_prerequisites,
    preflight=_preflight,
)

# --- Deep Leakage from Gradients (Zhu et al. 2019) ------------------------------------------------

DLG = Kernel(
    name="dlg",
    version="dlg-2",
    entry="kernels.dlg_kernel:run",
    doc="DLG: squared L2 gradient distance, L-BFGS on images (and labels, jointly, by default).",
    params={
        **_DATA_PARAMS,
        "model": Param(str, "lenet", "target architecture (DLG attacked its Sigmoid LeNet)",
                       choices=tuple(DEFAULT_ACTIVATION)),
        **_TRAIN_PARAMS,
        **_batch_params("joint", ("joint", "known", "idlg", "analytic")),
        "iterations": Param(int, 300, "L-BFGS steps (each up to 20 evaluations of the objective)", min=1),
        "lr": Param(float, 1.0, "L-BFGS learning rate", min=0.0),
    },
    check=_batch_check,
    resolve=_data_resolve,
    fan_out=_batch_fan_out,
    prerequisites=_prerequisites,
    preflight=_preflight,
)

# --- Inverting Gradients against practical FedAvg (Table III) ------------------------------------

SIMULATIONS = ("strong", "weak", "none")


def _fedavg_check(p: dict) -> str | None:
    n = p["num_images"]
    if n % p["local_batch_size"]:
        return f"num_images ({n}) must be a multiple of local_batch_size ({p['local_batch_size']})"
    if p["simulation"] == "weak" and n < p["sim_batch_size"]:
        return f"simulation=weak steps through batches of sim_batch_size ({p['sim_batch_size']}) > num_images ({n})"
    return _data_check(p) or _state_check(p)


FEDAVG = Kernel(
    name="ig_fedavg",
    version="ig-fedavg-3",
    entry="kernels.fedavg_kernel:run",
    doc="IG on one FedAvg client update: E local epochs of SGD over its num_images images, attacked with "
        "strong, weak or no simulation of the local training.",
    params={
        **_DATA_PARAMS,
        **_TRAIN_PARAMS,
        **_MODEL_STATE,
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
        **_IG_OPTIMISATION,
        **_ATTACK_RUN,
    },
    check=_fedavg_check,
    resolve=_ig_resolve,
    prerequisites=_prerequisites,
    preflight=_preflight,
)

# --- analytics-based attacks of a malicious server (Section III-D) ---------------------------------

# The client's check of the model it receives (the paper's third defence), reported beside each result.
_CLIENT_VALIDATION = {
    "dsnr_threshold": Param(float, 10.0, "client-side validation flags a model whose disaggregation "
                            "signal-to-noise ratio (Garov et al. 2024) on the client's batch exceeds this",
                            min=0.0),
}


def _malicious_batch_params(optimised: bool) -> dict[str, Param]:
    """One client batch of the paper's subset, as for the optimisation attacks; the server does not
    restore labels. Without an optimisation there is nothing to seed or checkpoint."""
    batch = _batch_params("known", ("known",))
    dropped = ["labels"] if optimised else ["labels", "seed", "checkpoint_every_s"]
    return {name: param for name, param in batch.items() if name not in dropped}


RTF = Kernel(
    name="rtf",
    version="rtf-1",
    entry="kernels.rtf_kernel:run",
    doc="Robbing the Fed: an imprint block (linear layer of `bins` brightness bins + ReLU) in front of the "
        "model; images recovered from differences of consecutive bins' gradients; exact recoveries counted.",
    params={
        **_DATA_PARAMS,
        **_TRAIN_PARAMS,
        **_malicious_batch_params(optimised=False),
        "bins": Param(int, 1000, "k: imprint bins (Table IV uses 1000)", min=2),
        "bin_cdf": Param(str, "standard_normal", "the brightness distribution the server assumes to place the "
                         "bins' cut-offs: standard_normal (as breaching and the authors' code) or fitted (a "
                         "normal fitted to the data set's other images)", choices=("standard_normal", "fitted")),
        **_CLIENT_VALIDATION,
    },
    check=_batch_check,
    resolve=_data_resolve,
    fan_out=_batch_fan_out,
    prerequisites=_prerequisites,
    preflight=_preflight,
)


def _fishing_check(p: dict) -> str | None:
    if not 0 <= p["target_position"] < p["batch_size"]:
        return f"target_position ({p['target_position']}) must be in [0, batch_size={p['batch_size']})"
    return _batch_check(p)


FISHING = Kernel(
    name="fishing",
    version="fishing-3",
    entry="kernels.fishing_kernel:run",
    doc="Fishing (Wen et al. 2022): the server rewrites the classifier so that only the target image's class "
        "contributes to the gradient, then inverts that isolated gradient with Inverting Gradients.",
    params={
        **_DATA_PARAMS,
        **_TRAIN_PARAMS,
        **_malicious_batch_params(optimised=True),
        "target_position": Param(int, 0, "which image of the batch the server fishes for", min=0),
        **_IG_OPTIMISATION,
        **_CLIENT_VALIDATION,
    },
    check=_fishing_check,
    resolve=_ig_resolve,
    fan_out=_batch_fan_out,
    prerequisites=_prerequisites,
    preflight=_preflight,
)

# --- gradient analyses: why the attacks behave as they do (Table II, Figures 4 and 8) ---------------

_ANALYSIS_TARGET = {**_DATA_PARAMS, **_TRAIN_PARAMS, **_MODEL_STATE}


def _analysis_check(p: dict) -> str | None:
    return _data_check(p) or _state_check(p)


def _analysis(name: str, version: str, doc: str, params: dict[str, Param],
              check: Callable[[dict], str | None] = _analysis_check) -> Kernel:
    """A gradient analysis: one job looks at the honest target model on some images of the data set
    (module kernels/analyses/<name>.py); no attack, no batch protocol."""
    return Kernel(name=name, version=version, entry=f"kernels.analyses.{name}:run", doc=doc,
                  params={**_ANALYSIS_TARGET, **params}, check=check, resolve=_data_resolve,
                  prerequisites=_prerequisites, preflight=_preflight)


GRADIENT_SIMILARITY = _analysis(
    "gradient_similarity", "gradsim-1",
    "Table II: cosine similarity between one image's gradient and the gradients of batches in which 1..B "
    "images share its label.",
    {"batch_size": Param(int, 4, "B: the batches I_1..I_B (I_i: i images share the anchor's label)", min=2),
     "data_seed": Param(int, 0, "seed of the anchor image and of the other images drawn")},
)

GRADIENT_EMBEDDING = _analysis(
    "gradient_embedding", "gradembed-1",
    "Figure 4: a t-SNE embedding of per-image gradients, with their mean pairwise cosine similarity.",
    {"num_images": Param(int, 64, "images whose gradients are embedded", min=4),
     "data_seed": Param(int, 0, "seed of the images drawn"),
     "perplexity": Param(float, 10.0, "t-SNE perplexity (must be below num_images)", min=1.0),
     "seed": Param(int, 0, "seed of the t-SNE initialisation")},
    check=lambda p: (f"perplexity ({p['perplexity']}) must be below num_images ({p['num_images']})"
                     if p["perplexity"] >= p["num_images"] else _analysis_check(p)),
)

ACTIVATION_INPUTS = _analysis(
    "activation_inputs", "actin-1",
    "Figure 8: histograms of the inputs each activation layer sees on the data, per layer.",
    {"num_images": Param(int, 64, "images fed through the model", min=1),
     "data_seed": Param(int, 0, "seed of the images drawn")},
)

TRAIN_MODEL = Kernel(
    name="train_model",
    version="train-2",
    entry="kernels.training:run",
    doc="Trains the target model on the data set in use; the checkpoint is cached by the recipe's hash.",
    params={**_DATA_PARAMS, **_TRAIN_PARAMS},
    check=_train_check,
    resolve=_data_resolve,
    preflight=_preflight,
)

KERNELS: dict[str, Kernel] = {k.name: k for k in (IG, DLG, FEDAVG, RTF, FISHING, GRADIENT_SIMILARITY,
                                                  GRADIENT_EMBEDDING, ACTIVATION_INPUTS, TRAIN_MODEL)}
