"""The paper's evaluation protocol: a seeded subset of num_images, split into num_images/B batches."""
from __future__ import annotations

import numpy as np


def deal_by_class(indices: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Reorder so that classes take turns: the first k entries have distinct labels for every k up to
    the number of classes present. Within a class the given order is kept."""
    rank = np.empty(len(indices), dtype=np.int64)
    seen: dict[int, int] = {}
    for j, idx in enumerate(indices):
        label = int(labels[idx])
        rank[j] = seen.get(label, 0)
        seen[label] = rank[j] + 1
    return indices[np.argsort(rank, kind="stable")]


def attack_subset(labels: np.ndarray, num_images: int, unique_labels: bool, seed: int) -> np.ndarray:
    """Seeded indices of the attacked images, one per class while classes last. Data sets whose paper
    subset has unique labels (CIFAR-100, ImageNet, CelebA) refuse a subset larger than their classes."""
    if num_images > len(labels):
        raise ValueError(f"num_images={num_images} but the data set holds only {len(labels)} images")
    classes = len(np.unique(labels))
    if unique_labels and num_images > classes:
        raise ValueError(f"num_images={num_images} with unique labels, but the data set has {classes} classes")
    order = np.random.default_rng(seed).permutation(len(labels))
    return deal_by_class(order, labels)[:num_images]


def split_batches(subset: np.ndarray, labels: np.ndarray, batch_size: int, seed: int) -> list[np.ndarray]:
    """Seeded split into batches; a batch no larger than the number of classes has unique labels."""
    shuffled = subset[np.random.default_rng(seed + 1).permutation(len(subset))]
    dealt = deal_by_class(shuffled, labels)
    return [dealt[i:i + batch_size] for i in range(0, len(dealt), batch_size)]
