"""Robbing the Fed (Fowl et al. 2022): the imprint block a malicious server puts in front of the model.

The block measures one number per image, its brightness (the mean of the normalised pixels), against
k increasing cut-offs c_0 < c_1 < ... < c_{k-1}:

    bin unit i = ReLU(brightness(x) - c_i)        (a Linear(m, k) whose rows are all 1/m, biases -c_i)
    output     = the k units, summed back onto every pixel (a Linear(k, m) whose weights are all equal)

An image whose brightness lies in [c_i, c_{i+1}) switches on units 0..i and no other. Because every
unit feeds the rest of the model through the same weight, the loss gradient reaching unit j from image
n is one number s_n, the same for every unit the image switches on. So

    grad W_j = sum over images n with brightness > c_j of s_n x_n,    grad b_j = sum of the same s_n,

and the difference of two consecutive units keeps only the images of bin j (Eq. (4) of the paper):

    x = (grad W_j - grad W_{j+1}) / (grad b_j - grad b_{j+1}),   exact when bin j holds one image.

A bin holding several images gives their s-weighted average instead. How many images end up alone in a
bin is chance: `expected_exact_uniform` and `expected_exact_proposition2` are two ways to predict it.
"""
from __future__ import annotations

from fractions import Fraction
from math import comb
from statistics import NormalDist

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from kernels.data.loaders import attack_source, load_split

# The lowest cut-off: the quantile 0 of a normal is -infinity, and a finite value far below any image
# keeps every image in some bin. Normalised with any of the catalog's mean/std, a black image has a
# brightness above -2.2, so -10 (breaching's and the authors' value) never cuts an image off.
LOWEST_CUTOFF = -10.0

# An image counts as exactly recovered when no pixel is off by half an 8-bit step or more ([0, 1] scale).
# For 8-bit data sets (CIFAR, ImageNet, CelebA) this is the same as: quantised to 8 bits, the
# reconstruction equals the original pixel for pixel. The embedded crops are not 8-bit, and the same
# tolerance applies.
EXACT_TOLERANCE = 0.5 / 255

# A bin's bias-gradient difference below this fraction of the sum of all of them is taken for an empty
# bin. Each image's s_n appears in exactly one difference, so that sum is the scale of the rounding noise
# an empty bin's difference carries (float64: ~1e-16 of it); a real image sends far more.
EMPTY_BIN_FRACTION = 1e-12

# bin_cdf=fitted: how many public images the server looks at to fit its normal (seeded draw).
PUBLIC_SAMPLE = 1000
# Fewer public images than this left outside the batch (the embedded set's 64 evaluation images are
# all in a batch of 64): the server looks at the data set's training split instead.
MIN_PUBLIC = 16


def brightness(images: torch.Tensor) -> torch.Tensor:
    """What the block measures: the mean of each (normalised) image's values, [n, ...] -> [n]."""
    return images.flatten(1).mean(1)


def bin_cutoffs(k: int, mean: float = 0.0, std: float = 1.0) -> list[float]:
    """Cut-offs at the quantiles i/k (i = 0..k-1) of a normal(mean, std) brightness: if the assumed
    distribution is right, every bin is equally likely for an image.

    mean=0, std=1 is the `standard_normal` choice of breaching and the authors' code. `fitted` passes the
    mean and std of the brightness of images the server may look at (not the attacked batch)."""
    if std <= 0:
        raise ValueError(f"the assumed brightness distribution needs a positive std, got {std}")
    normal = NormalDist(mean, std)
    return [LOWEST_CUTOFF] + [normal.inv_cdf(i / k) for i in range(1, k)]


class ImprintBlock(nn.Module):
    """The imprint block for images of shape `image_shape` ([C, H, W], normalised), one bin per cut-off:
    `bins` (Linear(m, k), the layer the server reads the images from) and `spread` (Linear(k, m)).

    The weights of the second layer are all 1/k rather than breaching's 1: only their being equal matters
    to the attack, and with 1 the model receives inputs ~k times larger than images. An eval-mode model
    then produces logits in the thousands (about 1,800 for the untrained ResNet-18 at k=1000), the
    softmax saturates, and an image the model classifies correctly sends a gradient around 1e-31, which
    the rounding of the other images' gradients buries."""

    def __init__(self, image_shape: tuple[int, ...], cutoffs: list[float]):
        super().__init__()
        self.image_shape = tuple(image_shape)
        m, k = int(np.prod(image_shape)), len(cutoffs)
        if any(a >= b for a, b in zip(cutoffs, cutoffs[1:])):
            raise ValueError("the cut-offs must increase: bin i is the brightness range [c_i, c_{i+1})")
        self.bins = nn.Linear(m, k)
        self.spread = nn.Linear(k, m)
        with torch.no_grad():
            self.bins.weight.fill_(1.0 / m)
            self.bins.bias.copy_(-torch.tensor(cutoffs, dtype=self.bins.bias.dtype))
            self.spread.weight.fill_(1.0 / k)
            self.spread.bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        units = torch.relu(self.bins(images.flatten(1)))
        return self.spread(units).view(-1, *self.image_shape)

    def bin_of(self, images: torch.Tensor) -> torch.Tensor:
        """Each image's bin, decided exactly as the forward pass decides it: the number of units it
        switches on, minus one (-1: below the lowest cut-off). For scoring; the server never sees it."""
        with torch.no_grad():
            return (self.bins(images.flatten(1)) > 0).sum(1) - 1


def imprinted_model(block: ImprintBlock, model: nn.Module) -> nn.Module:
    """The model the malicious server sends: the block, then the agreed model unchanged."""
    return nn.Sequential(block, model)


def added_parameters(k: int, m: int) -> int:
    """Parameters the block adds to the model: two k x m weight matrices and their biases (k and m).
    The upper axis of Figure 10; at ImageNet's 224x224 (m = 150,528) and k = 1000, about 301 million."""
    return 2 * k * m + k + m


def recover(weight_gradient: torch.Tensor, bias_gradient: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (4): one candidate per non-empty bin from the gradients of the block's first layer.

    weight_gradient [k, m], bias_gradient [k]. Returns the candidates [c, m] (normalised like the
    model's input; exact for a bin that holds one image) and the bin each came from [c].

    Pass float64 gradients: a bin's difference is a small difference of two sums over every brighter
    image, so float32 keeps only ~7 digits of it, fewer when the isolated image's own gradient is small
    beside the others'."""
    weight_difference = weight_gradient.clone()
    bias_difference = bias_gradient.clone()
    # Row j minus row j+1 keeps bin j's images; the brightest bin has no row above it to subtract.
    weight_difference[:-1] -= weight_gradient[1:]
    bias_difference[:-1] -= bias_gradient[1:]
    occupied = bias_difference.abs() > EMPTY_BIN_FRACTION * bias_difference.abs().sum()
    candidates = weight_difference[occupied] / bias_difference[occupied, None]
    return candidates, occupied.nonzero().flatten()


def exact(originals: np.ndarray, reconstructions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both [n, C, H, W] in [0, 1], reconstruction i matched to original i. Returns whether each image
    is exactly recovered (every pixel within EXACT_TOLERANCE) and its largest pixel error."""
    error = np.abs(originals.astype(np.float64) - reconstructions.astype(np.float64))
    max_abs_error = error.reshape(len(originals), -1).max(1)
    return max_abs_error < EXACT_TOLERANCE, max_abs_error


# --- how many images to expect alone in a bin ----------------------------------------------------------

def expected_exact_uniform(B: int, k: int) -> float:
    """Expected number of images alone in their bin when each of the B images falls into each of the k
    bins with probability 1/k, independently: B (1 - 1/k)^(B-1). This is what equal-mass bins give
    when the assumed brightness distribution is the true one (B=64, k=1000: 60.1 of 64)."""
    return B * (1 - 1 / k) ** (B - 1)


def _without_singletons(n: int, bins: int) -> int:
    """Occupancy configurations of n indistinguishable images in `bins` bins with no bin holding exactly
    one image: choose the j bins that are occupied (binom(bins, j)), then split n into j parts of at
    least 2 (binom(n - j - 1, j - 1) ways)."""
    if n == 0:
        return 1
    return sum(comb(bins, j) * comb(n - j - 1, j - 1) for j in range(1, n // 2 + 1))


def expected_exact_proposition2(B: int, k: int) -> float:
    """The paper's Proposition 2 (Proposition 1 of Fowl et al.): the expected number of bins holding
    exactly one of B images among k bins when every occupancy configuration (every multiset of B bins,
    binom(k+B-1, k-1) of them) is equally likely - Bose-Einstein counting of indistinguishable images:

        1/binom(k+B-1, k-1) * [ sum_{i=1}^{B-2} i binom(k, i) sum_j binom(k-i, j) binom(B-i-j-1, j-1) ] + r(B, k)

    where binom(k, i) picks the i singleton bins and the inner sum places the other B-i images in j bins
    of at least two each. The supplement prints binom(k-i, i) for the first factor; its own text (and the
    brute-force count in the tests) says binom(k, i). i = B-1 is impossible (one image cannot fill a bin
    of two), and r(B, k) = B binom(k, B) / binom(k+B-1, k-1) is the case where all B are alone.

    Counting configurations rather than assignments of distinguishable images weighs crowded bins more,
    so this is below `expected_exact_uniform` (B=64, k=1000: 56.6 against 60.1). Exact integer arithmetic
    keeps k=1000, B=64 free of overflow and cancellation."""
    configurations = comb(k + B - 1, k - 1)
    # At most k singleton bins: the published statement assumes k > B, the count holds for any B and k.
    with_some_crowded = sum(i * comb(k, i) * _without_singletons(B - i, k - i) for i in range(1, min(B - 2, k) + 1))
    all_alone = B * comb(k, B)  # r(B, k) times the number of configurations
    return float(Fraction(with_some_crowded + all_alone, configurations))


# --- one attack on a client (kernels/federated/client.py's Client): cut-offs, gradients, pairing --------

def assumed_brightness(params: dict, client) -> tuple[float, float]:
    """Mean and std of the normal brightness distribution the server places its cut-offs on.

    standard_normal: N(0, 1), as breaching and the authors' code. fitted: the server's public knowledge
    of the data - a normal fitted to the brightness of up to PUBLIC_SAMPLE images of the evaluation split
    that are not in the attacked batch (or of the training split when too few are left)."""
    if params["bin_cdf"] == "standard_normal":
        return 0.0, 1.0
    source = attack_source(params["dataset"], params["data_root"], params["resolution"])
    public = np.setdiff1d(np.arange(len(source.labels)), client.indices)
    if len(public) >= MIN_PUBLIC:
        chosen = np.random.default_rng(params["data_seed"]).permutation(public)[:PUBLIC_SAMPLE]
        images = source.images(np.sort(chosen))
    else:
        images = load_split(params["dataset"], params["data_root"], "train", params["train_pool"],
                            params["resolution"])[0][:PUBLIC_SAMPLE]
    values = brightness(client.normalise(torch.as_tensor(images, device=client.device)).double())
    return float(values.mean()), float(values.std())


def block_gradients(model: torch.nn.Module, block: ImprintBlock, images: torch.Tensor,
                    labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The client's FedSGD gradient, of which the server needs only the block's first layer. Asking
    autograd for just those two tensors skips every other weight gradient, which leaves them unchanged."""
    loss = F.cross_entropy(model(images), labels)
    weight_gradient, bias_gradient = torch.autograd.grad(loss, [block.bins.weight, block.bins.bias])
    return weight_gradient, bias_gradient


def pair_candidates(originals: torch.Tensor, candidates: torch.Tensor, client) -> torch.Tensor:
    """The candidate each original ([n, C, H, W] in [0, 1]) is scored against, normalised like the
    model's input.

    One Hungarian assignment that first pairs as many originals as possible with a candidate that
    recovers them exactly, then minimises the mean squared error, as kernels.metrics.standard.match. MSE alone
    is not enough: a bin holding two images yields their weighted average, often with extrapolated,
    clipped pixels, and the MSE-optimal assignment can hand an exact candidate to an image that merely
    resembles its original (5 of 55 at B=64, k=1000 on the embedded set). The mean image (zero once
    normalised) stands in for candidates that crowded bins never produced."""
    n, m = len(originals), originals[0].numel()
    missing = max(0, n - len(candidates))
    padded = torch.cat([candidates, candidates.new_zeros((missing, *candidates.shape[1:]))])
    in_unit_range = (padded * client.std.double() + client.mean.double()).clamp(0, 1).flatten(1)
    flat_originals = originals.double().flatten(1)
    # From a distance matrix and one row of errors at a time: k candidates of ImageNet size would not fit
    # as one [n, k, m] difference tensor.
    mse = torch.cdist(flat_originals, in_unit_range) ** 2 / m
    max_error = torch.stack([(in_unit_range - original).abs().amax(1) for original in flat_originals])
    # Every MSE is at most 1, so a penalty above n outweighs any sum of them: exact pairs come first.
    cost = mse + (n + 1) * (max_error >= EXACT_TOLERANCE)
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    return padded[torch.as_tensor(cols[np.argsort(rows)], device=padded.device)]
