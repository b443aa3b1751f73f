"""The `trained` model state: the project trains the target model itself, once per recipe
(kernels/models/recipe.py: what decides a checkpoint and where it is cached), or, on ImageNet, reads
torchvision's staged pretrained weights.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kernels import runtime
from kernels.data.catalog import DATASETS
from kernels.data.loaders import load_split
from kernels.models.architectures import build_model
from kernels.models.catalog import IMAGENET_WEIGHTS, pretrained_weights_path
from kernels.models.recipe import checkpoint_path
from kernels.runtime import EXHAUSTION, describe_error

BATCH = 128


def load_trained(model: torch.nn.Module, cache_dir: Path, recipe: dict) -> None:
    """The `trained` state: torchvision's ImageNet weights for ImageNet, else the project's checkpoint."""
    if DATASETS[recipe["dataset"]].pretrained:
        load_pretrained(model, recipe["model"])
        return
    path = checkpoint_path(cache_dir, recipe)
    if not path.exists():
        raise FileNotFoundError(f"trained checkpoint {path} is missing: its train_model job has not run")
    saved, problem = read_cached(path)
    if saved is not None:
        try:
            model.load_state_dict(saved["state_dict"])
            return
        except (RuntimeError, TypeError) as e:  # another model's weights under this recipe's name
            problem = describe_error(e)
    raise RuntimeError(f"{path} is not a trained checkpoint of this recipe ({problem}); delete it and run "
                       "this recipe's train_model job again")


def read_cached(path: Path) -> tuple[dict | None, str | None]:
    """A cached trained model, read as data only (weights_only: a planted pickle runs nothing), or
    None and why it cannot be used (truncated, corrupt, not written by this module)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except EXHAUSTION:
        raise
    except Exception as e:  # noqa: BLE001 - truncated files and refused pickles raise many kinds
        return None, describe_error(e)
    if not (isinstance(saved, dict) and isinstance(saved.get("state_dict"), dict)
            and isinstance(saved.get("metrics"), dict)):
        return None, "expected a dict of state_dict and metrics"
    return saved, None


def load_pretrained(model: torch.nn.Module, name: str) -> None:
    """Reads torchvision's staged ImageNet weights; never downloads them."""
    if name not in IMAGENET_WEIGHTS:
        raise ValueError(f"no torchvision ImageNet weights for {name!r} (valid: {', '.join(IMAGENET_WEIGHTS)})")
    path = pretrained_weights_path(name)
    if not path.exists():
        raise FileNotFoundError(f"torchvision's ImageNet weights for {name} are not staged: {path} is missing "
                                "(see README, 'Pretrained ImageNet weights')")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated copy: torch raises several kinds
        raise RuntimeError(f"{path} is not a readable torch checkpoint ({type(e).__name__}: {e}); stage it again") from None
    model.load_state_dict(state)


def _accuracy(model, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(images[i:i + 256]).argmax(1) for i in range(0, len(images), 256)])
    return float((predictions == labels).float().mean())


def train(params: dict, cache_dir: Path, cpus: int) -> dict:
    """Trains the recipe's model and caches it, or reuses the cached checkpoint; returns the training's
    metrics with the checkpoint's path and whether it was reused."""
    path = checkpoint_path(cache_dir, params)
    device = runtime.setup(cpus, params["model_seed"])
    if path.exists():
        saved, _ = read_cached(path)
        if saved is not None:
            return {**saved["metrics"], "checkpoint": str(path), "reused_cache": True}
        # Unreadable (truncated, planted): training again replaces it, where failing would repeat forever.

    info = DATASETS[params["dataset"]]
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    x, y = load_split(params["dataset"], params["data_root"], "train", params["train_pool"], params["resolution"])
    x, y = ((torch.as_tensor(x) - mean) / std).to(device), torch.as_tensor(y).to(device)
    model = build_model(params["model"], info.num_classes, params["resolution"], params["model_seed"],
                        params["activation"]).to(device)

    epochs = params["train_epochs"]
    optimizer = torch.optim.SGD(model.parameters(), lr=params["train_lr"], momentum=0.9, weight_decay=5e-4, nesterov=True)
    # The reference training strategy's step decay, at 3/8, 5/8 and 7/8 of the epochs.
    steps_per_epoch = -(-len(x) // BATCH)
    decay = [int(epochs * f) * steps_per_epoch for f in (3 / 8, 5 / 8, 7 / 8)]
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, decay, gamma=0.1)
    rng = np.random.default_rng(params["model_seed"])
    started, losses = time.time(), []
    for _ in range(epochs):
        model.train()
        order = torch.as_tensor(rng.permutation(len(x)), device=device)
        for i in range(0, len(x), BATCH):
            batch = order[i:i + BATCH]
            images = x[batch]
            flip = torch.as_tensor(rng.integers(2, size=len(batch)), device=device).bool()
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
            loss = F.cross_entropy(model(images), y[batch])
            optimizer.zero_grad()
            loss.backward()
            if not torch.isfinite(loss):
                # Cached, a diverged model would silently become every dependent attack's target.
                epoch = len(losses) // steps_per_epoch + 1
                raise FloatingPointError(f"training diverged (loss {loss.item()}) in epoch {epoch}: lower "
                                         f"train_lr (now {params['train_lr']})")
            optimizer.step()
            schedule.step()
            losses.append(loss.item())

    ax, ay = load_split(params["dataset"], params["data_root"], "attack", params["train_pool"], params["resolution"])
    ax, ay = ((torch.as_tensor(ax) - mean) / std).to(device), torch.as_tensor(ay).to(device)
    metrics = {
        "train_loss": float(np.mean(losses[-steps_per_epoch:])),
        "train_accuracy": _accuracy(model, x, y),
        "attack_split_accuracy": _accuracy(model, ax, ay),
        "train_seconds": time.time() - started,
        "device": runtime.describe(device),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"state_dict": model.cpu().state_dict(), "recipe": params, "metrics": metrics}, partial)
    os.replace(partial, path)  # the same recipe gives the same checkpoint: a concurrent writer is harmless
    return {**metrics, "checkpoint": str(path), "reused_cache": False}
