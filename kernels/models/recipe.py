"""What decides a trained checkpoint, without torch: the grid's prerequisites and the training share it.

The `trained` model state is the project's own training run, cached under the cache folder by the hash
of its recipe, so every sweep (and every attack job of a sweep) that asks for the same recipe reuses it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

# The train_model kernel's version: part of its job ids and of every checkpoint's cache key.
TRAINING_VERSION = "train-2"

RECIPE_KEYS = ("dataset", "data_root", "model", "activation", "resolution", "model_seed", "train_epochs",
               "train_lr", "train_pool")


def train_recipe(params: dict) -> dict:
    """The parameters of a job that decide its trained checkpoint (the train_model job it needs)."""
    return {k: params[k] for k in RECIPE_KEYS}


def checkpoint_path(cache_dir: Path, recipe: dict) -> Path:
    # data_root says where the data is, not what it is: it does not change the checkpoint.
    key = {k: v for k, v in recipe.items() if k != "data_root"} | {"version": TRAINING_VERSION}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / "models" / f"{recipe['model']}-{recipe['dataset']}-{digest}.pt"
