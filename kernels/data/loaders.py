"""Read a data set split from disk (or build the embedded one). Nothing is ever downloaded."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from kernels.data import embedded
from kernels.data.catalog import DATASETS, data_root, missing_data


class DataError(RuntimeError):
    """A data set is missing or malformed; the message names the path and what belongs there."""


def _cifar(folder: Path, files: list[str], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in files:
        path = folder / name
        try:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="latin1")
            data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            images.append(data.astype(np.float32) / 255.0)
            labels.append(np.asarray(batch[label_key], dtype=np.int64))
        except FileNotFoundError:
            raise DataError(f"{path} is missing: the folder must hold the unpacked 'python version' archive") from None
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError) as e:
            raise DataError(f"{path} is not a readable CIFAR python batch ({type(e).__name__}: {e})") from None
    return np.concatenate(images), np.concatenate(labels)


def load_split(dataset: str, configured_root: str | None, split: str, train_pool: int = 2048):
    """split is 'attack' (the images a client holds: test set) or 'train' (for the trained model)."""
    if dataset == "embedded":
        return embedded.evaluation_split() if split == "attack" else embedded.training_split(train_pool)
    problem = missing_data(dataset, configured_root)
    if problem:
        raise DataError(problem)
    folder = data_root(configured_root) / DATASETS[dataset].folder
    if dataset == "cifar10":
        files = ["test_batch"] if split == "attack" else [f"data_batch_{i}" for i in range(1, 6)]
        return _cifar(folder, files, "labels")
    if dataset == "cifar100":
        return _cifar(folder, ["test" if split == "attack" else "train"], "fine_labels")
    raise DataError(f"data set '{dataset}' is catalogued but its loader is not written yet")
