"""What every attack kernel does around its attack: the client's images and model, then the scored rows.

The client holds `num_images` of the data set's evaluation split (the paper's subset protocol, or
Figure 5's batches with a controlled number of shared labels) and one model in eval mode, as in the
reference code: BatchNorm uses its running statistics.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from kernels import runtime, training
from kernels.data.catalog import DATASETS, DatasetInfo
from kernels.data.loaders import Source, attack_source
from kernels.data.protocol import attack_subset, label_controlled_batches, split_batches
from kernels.metrics import MODE as STANDARD
from kernels.metrics import MODES, Images, Lpips
from kernels.models import build_model
from kernels.registry import train_recipe
from kernels.result import KernelResult, png_bytes

# batch_position is null where the paper mode matched a reconstruction to another batch's image.
COLUMN_TYPES = {"lpips": "float64", "lpips_note": "string", "resumed_from_iteration": "int64",
                "batch_position": "int64", "final_objective": "float64"}


@dataclass
class Client:
    device: torch.device
    info: DatasetInfo
    indices: np.ndarray  # the attacked images, as indices into the evaluation split
    labels: torch.Tensor  # their true labels
    originals: torch.Tensor  # [n, 3, H, W] in [0, 1]
    mean: torch.Tensor
    std: torch.Tensor
    model: torch.nn.Module
    # The whole attacked subset (all num_images, of which `indices` is this job's batch) and the split
    # it is read from: the paper metric mode matches against all of them.
    subset: np.ndarray | None = None
    source: Source | None = None

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std


def client_indices(params: dict, labels: np.ndarray) -> np.ndarray:
    """The images of the job: its batch of the subset, or (no batch_size) the whole subset."""
    info = DATASETS[params["dataset"]]
    n, b = params["num_images"], params.get("batch_size")
    if params.get("same_label") is not None:
        batches = label_controlled_batches(labels, n, b, params["same_label"], params["data_seed"])
        return batches[params["batch_index"]]
    subset = attack_subset(labels, n, info.unique_labels, params["data_seed"], info.dealt)
    if b is None:
        return subset
    return split_batches(subset, labels, b, params["data_seed"], info.dealt)[params["batch_index"]]


def subset_indices(params: dict, labels: np.ndarray) -> np.ndarray:
    """All num_images attacked images of the data set that the job's batch belongs to."""
    if params.get("same_label") is not None:
        return np.concatenate(label_controlled_batches(labels, params["num_images"], params["batch_size"],
                                                       params["same_label"], params["data_seed"]))
    return client_indices({**params, "batch_size": None}, labels)


def prepare(params: dict, ctx, choose: Callable[[np.ndarray], np.ndarray] | None = None) -> Client:
    """The job's client. `choose` maps the split's labels to the images it holds, for a kernel that
    does not follow the subset protocol (its choice is then also its whole subset)."""
    device = runtime.setup(ctx.cpus, params.get("seed", 0))
    info = DATASETS[params["dataset"]]
    source = attack_source(params["dataset"], params["data_root"], params["resolution"])
    indices = choose(source.labels) if choose else client_indices(params, source.labels)
    originals = torch.as_tensor(source.images(indices), device=device)
    model = build_model(params["model"], info.num_classes, params["resolution"], params["model_seed"],
                        params["activation"])
    if params["model_state"] == "trained":
        training.load_trained(model, ctx.cache_dir, train_recipe(params))
    return Client(device=device, info=info, indices=indices,
                  labels=torch.as_tensor(source.labels[indices], device=device), originals=originals,
                  mean=torch.tensor(info.mean, device=device).view(1, 3, 1, 1),
                  std=torch.tensor(info.std, device=device).view(1, 3, 1, 1), model=model.to(device).eval(),
                  subset=indices if choose else subset_indices(params, source.labels), source=source)


def labels_recovered(restored: torch.Tensor, truth: torch.Tensor) -> int:
    """How many of the true labels the restored multiset holds (order is not recoverable)."""
    left = list(truth.tolist())
    hits = 0
    for label in restored.tolist():
        if label in left:
            left.remove(label)
            hits += 1
    return hits


def _candidates(client: Client, pool: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices, labels and [0, 1] images of the originals a metric mode matches against."""
    if pool == "batch":
        return client.indices, client.labels.cpu().numpy(), client.originals.cpu().numpy()
    if client.subset is None or client.source is None:
        raise ValueError("this client does not know its data set's subset (build it with kernels.client.prepare)")
    return client.subset, client.source.labels[client.subset], client.source.images(client.subset)


def result(client: Client, params: dict, reconstruction: torch.Tensor, job_info: dict, started: float,
           prematched: bool = False) -> KernelResult:
    """Scores the reconstruction (normalised, like the model's input) against the originals, in the
    job's metric mode. One row per scored pair of an original and a reconstruction. `prematched`:
    reconstruction i is the attack's own answer for original i (kept in the standard mode)."""
    recovered = (reconstruction.detach() * client.std + client.mean).clamp(0, 1).cpu().numpy()
    if not np.isfinite(recovered).all():
        raise FloatingPointError("the reconstruction holds NaN or infinite pixels")
    # A kernel without the metric_mode parameter scores in the standard mode, which its rows then name.
    mode = MODES[params.get("metric_mode", STANDARD)]
    indices, labels, candidates = _candidates(client, mode.candidates)
    lpips = Lpips.load(params["lpips_net"], str(client.device))  # cached per worker process
    scores = mode.score(Images(candidates=candidates, recovered=recovered,
                               normalised=reconstruction.detach().cpu().numpy(),
                               mean=client.mean.flatten().cpu().numpy(), std=client.std.flatten().cpu().numpy(),
                               prematched=prematched),
                        lpips)
    job_info = {**job_info, "kernel_seconds": time.time() - started, "device": runtime.describe(client.device)}
    in_batch = {int(index): position for position, index in enumerate(client.indices)}
    rows, pictures = [], []
    for s in scores:
        original = s.pop("original")
        index = int(indices[original])
        # The shard's metric_mode column is the job's parameter: the runner refuses a row column that
        # repeats a parameter.
        columns = {k: v for k, v in s.items() if k not in params}
        rows.append({"image_index": index, "label": int(labels[original]), "batch_position": in_batch.get(index),
                     **columns, **job_info})
        pictures.append({"image_index": index, "original_png": png_bytes(candidates[original]),
                         "reconstruction_png": png_bytes(recovered[s["matched_position"]])})
    return KernelResult(rows=rows, images=pictures, column_types=dict(COLUMN_TYPES))
