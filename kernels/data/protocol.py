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


def attack_subset(labels: np.ndarray, num_images: int, unique_labels: bool, seed: int, dealt: bool = True) -> np.ndarray:
    """Seeded indices of the attacked images, one per class while classes last (dealt) or a plain draw
    whose labels repeat as they happen to (not dealt: the paper's CIFAR-10). Data sets whose paper
    subset has unique labels (CIFAR-100, ImageNet, CelebA) refuse a subset larger than their classes."""
    if num_images > len(labels):
        raise ValueError(f"num_images={num_images} but the data set holds only {len(labels)} images")
    classes = len(np.unique(labels))
    if unique_labels and num_images > classes:
        raise ValueError(f"num_images={num_images} with unique labels, but the data set has {classes} classes")
    order = np.random.default_rng(seed).permutation(len(labels))
    return (deal_by_class(order, labels) if dealt else order)[:num_images]


def split_batches(subset: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
                  dealt: bool = True) -> list[np.ndarray]:
    """Seeded split into batches. Dealt, classes take turns, so labels repeat within a batch as little
    as the subset allows; otherwise the batches are chunks of a seeded shuffle (the authors' random.shuffle)."""
    shuffled = subset[np.random.default_rng(seed + 1).permutation(len(subset))]
    order = deal_by_class(shuffled, labels) if dealt else shuffled
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def label_controlled_batches(labels: np.ndarray, num_images: int, batch_size: int, same_label: int,
                             seed: int) -> list[np.ndarray]:
    """Figure 5's batches: in each, `same_label` images share one class and the other images have
    distinct classes of their own (same_label 0: every label in the batch distinct). Classes and images
    are drawn with the seed; no image is used twice."""
    if num_images % batch_size:
        raise ValueError(f"num_images={num_images} is not a multiple of batch_size={batch_size}")
    rng = np.random.default_rng(seed)
    pools = {int(c): list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)}
    shared = same_label if same_label > 1 else 0
    distinct = batch_size - shared
    batches = []
    for _ in range(num_images // batch_size):
        classes = [c for c in rng.permutation(sorted(pools)).tolist() if pools[c]]
        if shared:
            big = [c for c in classes if len(pools[c]) >= shared]
            if not big:
                raise ValueError(f"no class has {shared} unused images left for a batch sharing one label")
            repeated = big[0]
            classes = [c for c in classes if c != repeated]
            chosen = [pools[repeated].pop() for _ in range(shared)]
        else:
            chosen = []
        if len(classes) < distinct:
            raise ValueError(f"a batch of {batch_size} with {distinct} distinct labels needs more classes with "
                             f"unused images than the {len(classes)} left")
        chosen += [pools[c].pop() for c in classes[:distinct]]
        batches.append(np.asarray(chosen, dtype=np.int64))
    return batches
