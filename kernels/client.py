"""What every attack kernel does around its attack: the client's images and model, then the scored rows.

The client holds `num_images` of the data set's evaluation split (the paper's subset protocol, or
Figure 5's batches with a controlled number of shared labels) and one model in eval mode, as in the
reference code: BatchNorm uses its running statistics.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from kernels import runtime, training
from kernels.data.catalog import DATASETS, DatasetInfo
from kernels.data.loaders import attack_source
from kernels.data.protocol import attack_subset, label_controlled_batches, split_batches
from kernels.metrics import Lpips, score
from kernels.models import build_model
from kernels.registry import train_recipe
from kernels.result import KernelResult, png_bytes

COLUMN_TYPES = {"lpips": "float64", "lpips_note": "string", "resumed_from_iteration": "int64"}


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


def prepare(params: dict, ctx) -> Client:
    device = runtime.setup(ctx.cpus, params["seed"])
    info = DATASETS[params["dataset"]]
    source = attack_source(params["dataset"], params["data_root"], params["resolution"])
    indices = client_indices(params, source.labels)
    originals = torch.as_tensor(source.images(indices), device=device)
    model = build_model(params["model"], info.num_classes, params["resolution"], params["model_seed"],
                        params["activation"])
    if params["model_state"] == "trained":
        training.load_trained(model, ctx.cache_dir, train_recipe(params))
    return Client(device=device, info=info, indices=indices,
                  labels=torch.as_tensor(source.labels[indices], device=device), originals=originals,
                  mean=torch.tensor(info.mean, device=device).view(1, 3, 1, 1),
                  std=torch.tensor(info.std, device=device).view(1, 3, 1, 1), model=model.to(device).eval())


def labels_recovered(restored: torch.Tensor, truth: torch.Tensor) -> int:
    """How many of the true labels the restored multiset holds (order is not recoverable)."""
    left = list(truth.tolist())
    hits = 0
    for label in restored.tolist():
        if label in left:
            left.remove(label)
            hits += 1
    return hits


def result(client: Client, params: dict, reconstruction: torch.Tensor, job_info: dict, started: float) -> KernelResult:
    """Scores the reconstruction (normalised, like the model's input) against the originals."""
    recovered = (reconstruction.detach() * client.std + client.mean).clamp(0, 1).cpu().numpy()
    truth = client.originals.cpu().numpy()
    if not np.isfinite(recovered).all():
        raise FloatingPointError("the reconstruction holds NaN or infinite pixels")
    lpips = Lpips.load(params["lpips_net"], str(client.device))  # cached per worker process
    scores = score(truth, recovered, lpips)
    job_info = {**job_info, "kernel_seconds": time.time() - started, "device": runtime.describe(client.device)}
    labels = client.labels.tolist()
    rows, pictures = [], []
    for position, (index, s) in enumerate(zip(client.indices, scores)):
        rows.append({"image_index": int(index), "label": int(labels[position]), "batch_position": position,
                     **s, **job_info})
        pictures.append({"image_index": int(index), "original_png": png_bytes(truth[position]),
                         "reconstruction_png": png_bytes(recovered[s["matched_position"]])})
    return KernelResult(rows=rows, images=pictures, column_types=dict(COLUMN_TYPES))
