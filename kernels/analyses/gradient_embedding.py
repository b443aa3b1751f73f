"""Figure 4 of the paper, per-image gradients seen from above.

The client's subset (the attacks' own images) is fed image by image; each image's FedSGD gradient is
placed in 2-D by t-SNE (cosine distance, PCA initialisation), and each image also gets the mean cosine
similarity of its gradient to every other image's: the number behind the figure's claim that a trained
model's gradients are more alike, which makes them harder to invert.

Memory. ResNet-18's gradient has 11M entries: 64 of them are 2.8 GB in float32, more than a laptop
job may hold. Each gradient is therefore compressed as it is produced by a count sketch (every
parameter is added, with a random sign, into one of SKETCH_DIM buckets; the hashing is seeded and
fixed, so every job of every sweep projects the same way). Inner products are preserved in
expectation, and the error of a cosine is at most sqrt((1 + cos^2) / SKETCH_DIM) ~ 0.006 standard
deviation, far below the differences the figure is about; a mean over 63 other images is tighter still.
A dense Gaussian projection would be as accurate but costs 11M x SKETCH_DIM multiply-adds per image,
the sketch 11M. Models with at most SKETCH_DIM parameters (LeNet, small MLPs) are kept exactly
(`exact_cosines` says which).

Rows, one per image: image_index, label, embed_x, embed_y, gradient_norm (exact, before the sketch),
mean_cosine_to_others, and the same mean split into mean_cosine_same_class and mean_cosine_other_class
(null when the subset holds no such image): gradients of one class point much the same way and those
of different classes do not, so the overall mean also depends on how often labels repeat.
exact_cosines says whether the sketch was skipped.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.manifold import TSNE

from kernels.federated.fedsgd import flat_gradient
from kernels.metrics.cosine import direction

SKETCH_DIM = 1 << 16
SKETCH_SEED = 0  # not a job parameter: every job must project the same way to be comparable


class CountSketch:
    """A fixed random linear map from R^n to R^dim that roughly keeps inner products (Charikar et al.
    2002): coordinate k goes to bucket h(k) with sign s(k)."""

    def __init__(self, n: int, dim: int, seed: int, device: torch.device):
        generator = torch.Generator().manual_seed(seed)
        # int32 buckets: half the memory of int64 (45 MB for ResNet-18), which index_add_ accepts.
        self.buckets = torch.randint(dim, (n,), generator=generator, dtype=torch.int32).to(device)
        self.signs = (torch.randint(2, (n,), generator=generator) * 2 - 1).to(device, torch.float32)
        self.dim = dim

    def __call__(self, vector: torch.Tensor) -> torch.Tensor:
        return torch.zeros(self.dim, device=vector.device).index_add_(0, self.buckets, vector * self.signs)


def _mean(values: np.ndarray, where: np.ndarray) -> float | None:
    """None where no image qualifies (a subset with unique labels has no same-class pair)."""
    return float(values[where].mean()) if where.any() else None


def embedding_rows(client, params: dict) -> list[dict]:
    """The rows of the module docstring, one per image of the client's subset."""
    x, y = client.normalise(client.originals), client.labels
    num_params = sum(p.numel() for p in client.model.parameters())
    exact = num_params <= SKETCH_DIM
    sketch = None if exact else CountSketch(num_params, SKETCH_DIM, SKETCH_SEED, client.device)
    compressed, norms = [], []
    for k in range(len(y)):
        unit, norm = direction(flat_gradient(client.model, x[k:k + 1], y[k:k + 1]), f"image {client.indices[k]}")
        compressed.append(unit if exact else sketch(unit))
        norms.append(norm)
    # float64 from here: the Gram matrix of 64 vectors is cheap, and its diagonal should be exactly 1.
    vectors = torch.stack(compressed).double()
    vectors = vectors / vectors.norm(dim=1, keepdim=True)
    cosines = (vectors @ vectors.T).clamp(-1, 1).cpu().numpy()
    n = len(cosines)
    others = ~np.eye(n, dtype=bool)
    same_class = (y[:, None] == y[None, :]).cpu().numpy() & others
    # metric="cosine" on the vectors rather than metric="precomputed" on 1 - cosines (the same
    # distances): scikit-learn refuses PCA initialisation with a precomputed metric.
    embedding = TSNE(n_components=2, perplexity=params["perplexity"], metric="cosine", init="pca",
                     random_state=params["seed"]).fit_transform(vectors.cpu().numpy())
    if not np.isfinite(embedding).all():
        raise FloatingPointError("t-SNE returned non-finite coordinates")
    return [
        {"image_index": int(client.indices[k]), "label": int(y[k]), "embed_x": float(embedding[k, 0]),
         "embed_y": float(embedding[k, 1]), "gradient_norm": norms[k],
         "mean_cosine_to_others": _mean(cosines[k], others[k]),
         "mean_cosine_same_class": _mean(cosines[k], same_class[k]),
         "mean_cosine_other_class": _mean(cosines[k], others[k] & ~same_class[k]),
         "exact_cosines": exact}
        for k in range(n)]
