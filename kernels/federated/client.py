"""The federated client an attack kernel attacks: its images (the job's batch of the data set's subset)
and its model. Its reconstruction is scored by kernels/metrics/scoring.py.

The client holds `num_images` of the data set's evaluation split (the paper's subset protocol, or
Figure 5's batches with a controlled number of shared labels) and one model in eval mode, as in the
reference code: BatchNorm uses its running statistics.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from kernels import runtime
from kernels.data.catalog import DATASETS, DatasetInfo
from kernels.data.loaders import Source, attack_source
from kernels.data.protocol import attack_subset, label_controlled_batches, split_batches
from kernels.models import training
from kernels.models.architectures import build_model
from kernels.models.recipe import train_recipe


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
