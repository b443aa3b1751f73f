"""Robbing the Fed: the imprint block recovers images alone in a bin exactly, crowded bins cost
recoveries, the expected counts match brute-force enumeration, and the kernel reports all of it.

Images are the embedded photographs at 32x32. Their brightness (mean of the normalised pixels) spreads
over about [-1.7, 1.2], so with the standard-normal cut-offs a few hundred bins separate a handful of
images and 8 bins do not.
"""
from fractions import Fraction
from itertools import combinations_with_replacement, product
from math import comb

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kernels.attacks import imprint
from kernels.data import embedded
from kernels.data.catalog import DATASETS
from kernels.models.architectures import build_model
from kernels.registry import KERNELS
from tests.test_kernels_run import context, resolved

INFO = DATASETS["embedded"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def normalised_photographs(indices) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = embedded.evaluation_split()
    x = torch.as_tensor(images[indices]).double()
    mean = torch.tensor(INFO.mean, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(INFO.std, dtype=torch.float64).view(1, 3, 1, 1)
    return (x - mean) / std, torch.as_tensor(labels[indices])


def attack(images: torch.Tensor, labels: torch.Tensor, k: int):
    """The whole attack in float64 on a small model: candidates, and the bin of every image."""
    block = imprint.ImprintBlock(tuple(images.shape[1:]), imprint.bin_cutoffs(k))
    model = imprint.imprinted_model(block, build_model("mlp", INFO.num_classes, 32, 0)).double().eval()
    loss = F.cross_entropy(model(images), labels)
    weight_gradient, bias_gradient = torch.autograd.grad(loss, [block.bins.weight, block.bins.bias])
    candidates, candidate_bins = imprint.recover(weight_gradient, bias_gradient)
    return candidates, candidate_bins, block.bin_of(images)


def best_errors(images: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """For each image, the largest pixel error of the candidate closest to it (normalised scale)."""
    flat = images.flatten(1)
    return torch.stack([(candidates - image).abs().amax(1).min() for image in flat])


def test_images_alone_in_a_bin_are_recovered_to_rounding():
    images, labels = normalised_photographs([0, 9, 18, 27])
    candidates, candidate_bins, bins = attack(images, labels, k=500)
    assert len(set(bins.tolist())) == 4  # four bins: the premise of the test
    assert sorted(candidate_bins.tolist()) == sorted(bins.tolist())  # one candidate per occupied bin, no more
    assert best_errors(images, candidates).max() < 1e-12


def test_crowded_bins_lose_their_images():
    # 8 bins, 8 images: bins 0, 1 and 3 hold one image each, bin 2 two and bin 4 three.
    indices = list(range(0, 64, 8))
    images, labels = normalised_photographs(indices)
    candidates, candidate_bins, bins = attack(images, labels, k=8)
    occupancy = np.bincount(bins.numpy(), minlength=8)
    assert occupancy.tolist() == [1, 1, 2, 1, 3, 0, 0, 0]
    errors = best_errors(images, candidates)
    alone = torch.as_tensor(occupancy[bins.numpy()] == 1)
    assert errors[alone].max() < 1e-12 and errors[~alone].min() > 0.1
    # The candidate of a bin of two is a weighted average of its two images (weights summing to one:
    # Eq. (4) divides by the sum of their gradient scales), not either of them.
    first, second = images[bins == 2].flatten(1)
    candidate = candidates[candidate_bins == 2][0]
    weight = torch.dot(candidate - second, first - second) / (first - second).square().sum()
    assert (candidate - (weight * first + (1 - weight) * second)).abs().max() < 1e-10


def test_exact_is_half_an_8_bit_step():
    original = np.full((1, 3, 4, 4), 100 / 255, dtype=np.float32)
    off = original.copy()
    off[0, 1, 2, 3] += 0.6 / 255
    hit, error = imprint.exact(np.concatenate([original, original]), np.concatenate([original + 0.4 / 255, off]))
    assert hit.tolist() == [True, False]
    assert error == pytest.approx([0.4 / 255, 0.6 / 255], rel=1e-5)


def test_cutoffs_and_added_parameters():
    cutoffs = imprint.bin_cutoffs(4)
    assert cutoffs[0] == imprint.LOWEST_CUTOFF
    assert cutoffs[1:] == pytest.approx([-0.6744897, 0.0, 0.6744897], abs=1e-6)
    assert imprint.bin_cutoffs(4, mean=1.0, std=0.5)[1:] == pytest.approx([0.6627551, 1.0, 1.3372449], abs=1e-6)
    block = imprint.ImprintBlock((3, 8, 8), imprint.bin_cutoffs(10))
    assert sum(p.numel() for p in block.parameters()) == imprint.added_parameters(10, 192)
    assert imprint.added_parameters(1000, 3 * 224 * 224) == 301_207_528  # Figure 10 at ImageNet's size


def singletons_over_multisets(B: int, k: int) -> Fraction:
    """Mean number of bins holding one image over every multiset of B bins out of k."""
    total = count = 0
    for configuration in combinations_with_replacement(range(k), B):
        total += sum(configuration.count(b) == 1 for b in set(configuration))
        count += 1
    assert count == comb(k + B - 1, k - 1)
    return Fraction(total, count)


def singletons_over_assignments(B: int, k: int) -> Fraction:
    """Mean number of images alone in their bin over the k^B ways to place B distinguishable images."""
    total = 0
    for placement in product(range(k), repeat=B):
        total += sum(placement.count(b) == 1 for b in placement)
    return Fraction(total, k ** B)


def as_printed(B: int, k: int) -> float:
    """The supplement's formula with binom(k-i, i), as printed, for comparison."""
    inner = lambda i: sum(comb(k - i, j) * comb(B - i - j - 1, j - 1) for j in range(1, (B - i) // 2 + 1))
    printed = sum(i * comb(k - i, i) * inner(i) for i in range(1, B - 1))
    return float(Fraction(printed + B * comb(k, B), comb(k + B - 1, k - 1)))


@pytest.mark.parametrize("B, k", [(1, 3), (2, 4), (3, 3), (4, 6), (5, 8), (6, 5), (3, 12), (7, 3), (8, 2)])
def test_expected_counts_match_enumeration(B, k):
    assert imprint.expected_exact_proposition2(B, k) == pytest.approx(float(singletons_over_multisets(B, k)), rel=1e-12)
    assert imprint.expected_exact_uniform(B, k) == pytest.approx(float(singletons_over_assignments(B, k)), rel=1e-12)


def test_expected_counts_at_table_iv_size():
    # Table IV, B=64 and k=1000: 60/64 (CIFAR-10, CIFAR-100) and 61/64 (ImageNet).
    assert imprint.expected_exact_uniform(64, 1000) == pytest.approx(60.09, abs=0.01)
    # Bose-Einstein counting has a closed form by linearity: k P(a given bin holds exactly one image).
    B, k = 64, 1000
    assert imprint.expected_exact_proposition2(B, k) == pytest.approx(k * (k - 1) * B / ((B + k - 1) * (B + k - 2)))
    # The printed binom(k-i, i) is a misprint: it disagrees with the enumeration.
    assert as_printed(5, 7) != pytest.approx(float(singletons_over_multisets(5, 7)), rel=1e-3)


def test_kernel_counts_exact_recoveries_and_is_flagged(tmp_path):
    params = resolved("rtf", num_images=8, batch_size=4, batch_index=1, bins=200)
    assert params["model"] == "resnet18" and params["bin_cdf"] == "standard_normal"
    result = KERNELS["rtf"].load()(params, context(tmp_path))
    assert len(result.rows) == 4 and len(result.images) == 4
    rows = result.rows
    job = rows[0]
    assert job["exactly_recovered"] == sum(row["exact"] for row in rows)
    # Every image alone in its bin is recovered exactly, and only those.
    assert [row["exact"] for row in rows] == [row["bin_occupancy"] == 1 for row in rows]
    assert job["exactly_recovered"] == job["bins_with_one_image"]
    assert job["added_parameters"] == imprint.added_parameters(200, 3 * 32 * 32)
    assert job["expected_exact_uniform"] == pytest.approx(4 * (1 - 1 / 200) ** 3)
    assert job["validation_flagged"] and job["validation_extra_parameters"] == job["added_parameters"]
    for row in rows:
        if row["exact"]:
            assert row["max_abs_error"] < 1e-9 and row["psnr"] > 100
    assert [row["batch_position"] for row in rows] == [0, 1, 2, 3]
    for column in ("exact", "max_abs_error", "exactly_recovered", "validation_flagged", "lpips"):
        assert column in result.column_types


def test_kernel_fits_its_bins_to_public_images(tmp_path):
    # The batch is the whole embedded evaluation split: the server fits on the training crops instead.
    params = resolved("rtf", model="mlp", num_images=64, batch_size=64, batch_index=0, bins=100,
                      bin_cdf="fitted", train_pool=64)
    rows = KERNELS["rtf"].load()(params, context(tmp_path)).rows
    batch, _ = normalised_photographs(list(range(64)))
    truth = imprint.brightness(batch)
    job = rows[0]
    assert abs(job["assumed_brightness_mean"] - float(truth.mean())) < 0.3
    assert 0.3 < job["assumed_brightness_std"] / float(truth.std()) < 3
    assert job["exactly_recovered"] == job["bins_with_one_image"] == sum(row["exact"] for row in rows)


def test_kernel_in_the_paper_metric_mode_keeps_exact_pairs(tmp_path):
    # The authors' scoring matches each reconstruction across the whole subset; an exact one still
    # lands on its own original.
    params = resolved("rtf", model="mlp", num_images=8, batch_size=4, batch_index=0, bins=200, metric_mode="paper")
    rows = KERNELS["rtf"].load()(params, context(tmp_path)).rows
    assert len(rows) == 4 and rows[0]["exactly_recovered"] == rows[0]["bins_with_one_image"] == 4
    assert all(row["exact"] and row["bin_occupancy"] == 1 for row in rows)
