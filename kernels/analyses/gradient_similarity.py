"""Table II of the paper, why shared labels hurt optimisation attacks.

Around one anchor image the kernel builds B batches of size B: I_i holds the anchor, i-1 other images
of the anchor's class and B-i images of B-i other classes (one each). I_1 has B distinct labels, I_B one
label only. The same images serve every batch: I_{i+1} is I_i with its last other-class image replaced
by the next same-class image, so the only thing that changes from batch to batch is how many labels
repeat. For every image of every batch it reports the cosine between that image's own gradient and the
batch's gradient: the closer to 1, the less the batch gradient tells its images apart.

Rows, one per (batch, position in it):
    shared_labels          i, the number of images of I_i with the anchor's label (1: all distinct)
    position               j within I_i: 0 is the anchor, 1..i-1 the same-class images, then the others
    image_index, label     the image in the evaluation split and its class
    same_class_as_anchor   whether its label is the anchor's
    cosine                 cos(g(I_i^j), g(I_i)), g = the FedSGD gradient of all parameters
    anchor_cosine          cos(g(anchor), g(I_i)), repeated on every row of I_i (the paper's first row)
The paper's last column is `cosine` over the rows with shared_labels = B.
"""
from __future__ import annotations

import numpy as np

from kernels.federated.fedsgd import flat_gradient
from kernels.metrics.cosine import cosine, direction


def draw_images(labels: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
    """2B-1 indices: the anchor, B-1 other images of its class, then one image of each of B-1 other
    classes. The anchor is drawn among the images whose class holds at least B images, so that any
    seed works on a data set where only some classes are small."""
    b = batch_size
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < b:
        raise ValueError(f"batch I_1 needs {b} distinct labels but the data set's evaluation split has only "
                         f"{len(classes)} classes")
    eligible = np.flatnonzero(np.isin(labels, classes[counts >= b]))
    if not len(eligible):
        raise ValueError(f"batch I_{b} needs {b} images of one class but no class of the evaluation split has more "
                         f"than {counts.max()}")
    anchor = int(rng.choice(eligible))
    same_pool = np.flatnonzero(labels == labels[anchor])
    same = rng.permutation(same_pool[same_pool != anchor])[:b - 1]
    other_classes = rng.permutation(classes[classes != labels[anchor]])[:b - 1]
    others = [int(rng.choice(np.flatnonzero(labels == c))) for c in other_classes]
    return np.asarray([anchor, *same, *others], dtype=np.int64)


def batch_positions(batch_size: int) -> list[list[int]]:
    """For each I_i (i = 1..B), the positions in draw_images' order of its images, anchor first."""
    b = batch_size
    return [[0, *range(1, i), *range(b, b + b - i)] for i in range(1, b + 1)]


def similarity_rows(client, params: dict) -> list[dict]:
    """The rows of the module docstring, for a client holding draw_images' images (anchor first)."""
    x, y = client.normalise(client.originals), client.labels
    batches = batch_positions(params["batch_size"])
    # Only B batch directions and one image's at a time are held: 5 vectors of 11M floats for
    # ResNet-18 at B = 4, instead of all 2B-1 + B.
    batch_units = [direction(flat_gradient(client.model, x[p], y[p]), f"batch I_{i + 1}")[0]
                   for i, p in enumerate(batches)]
    cosines: dict[tuple[int, int], float] = {}  # (batch, member position) -> cosine
    for member in range(len(client.indices)):
        unit, _ = direction(flat_gradient(client.model, x[member:member + 1], y[member:member + 1]),
                            f"image {client.indices[member]}")
        for i, positions in enumerate(batches):
            if member in positions:
                cosines[i, member] = cosine(unit, batch_units[i])
    anchor_label = int(y[0])
    rows = []
    for i, positions in enumerate(batches):
        for j, member in enumerate(positions):
            label = int(y[member])
            rows.append({"shared_labels": i + 1, "position": j, "image_index": int(client.indices[member]),
                         "label": label, "same_class_as_anchor": label == anchor_label,
                         "cosine": cosines[i, member], "anchor_cosine": cosines[i, 0]})
    return rows
