"""Kernel `rtf`: Robbing the Fed against one FedSGD client batch; exact recoveries counted (Table IV, Fig. 10).

The malicious server puts an imprint block of `bins` brightness bins (kernels.attacks.imprint) in front
of the agreed model and sends it. The honest client first runs its validation of the received model
(which flags the new layers), then computes its FedSGD gradient as usual: mean cross-entropy over its
batch with the true labels, model in eval mode. The server turns the block's gradients into one
candidate per occupied bin; each original is scored against the candidate matched to it.

Numerics: the imprinted model runs in float64. A bin's image is the difference of two gradient sums
over every brighter image of the batch. float64 keeps that difference exact to ~1e-12, far below the
half 8-bit step that decides "exact"; float32 keeps ~7 digits of the sums, fewer of the difference when
the isolated image's gradient is small beside the others' (an image the model classifies confidently).
The client's honest computation is the same in either precision; only the rounding changes.

Cost: the block holds 2km parameters (m = 3 H W). At 32x32 and k = 1000 that is 6 million, and the
float64 ResNet-18 forward and backward on 64 images dominates (10-15 s on one shared CPU core, and the
client's validation, 64 per-image gradients, takes as long again). At ImageNet's
224x224, k = 1000 gives 301 million parameters, 2.4 GB in float64 plus 1.2 GB for the first layer's
gradient and as much again to pair 1000 candidates with the originals: a job for a GPU. bin_cdf=fitted
also decodes up to PUBLIC_SAMPLE images of the data set per job.
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from kernels import client as clients
from kernels.attacks.imprint import (EXACT_TOLERANCE, ImprintBlock, added_parameters, bin_cutoffs, brightness,
                                     exact, expected_exact_proposition2, expected_exact_uniform, imprinted_model,
                                     recover)
from kernels.data.loaders import attack_source, load_split
from kernels.result import KernelResult
from kernels.validation import VALIDATION_COLUMN_TYPES, validate_received_model

# bin_cdf=fitted: how many public images the server looks at to fit its normal (seeded draw).
PUBLIC_SAMPLE = 1000
# Fewer public images than this left outside the batch (the embedded set's 64 evaluation images are
# all in a batch of 64): the server looks at the data set's training split instead.
MIN_PUBLIC = 16

COLUMN_TYPES = {
    "exact": "bool", "max_abs_error": "float64", "bin": "int64", "bin_occupancy": "int64",
    "exactly_recovered": "int64", "expected_exact_proposition2": "float64", "expected_exact_uniform": "float64",
    "added_parameters": "int64", "occupied_bins": "int64", "bins_with_one_image": "int64", "candidates": "int64",
    "assumed_brightness_mean": "float64", "assumed_brightness_std": "float64",
    **VALIDATION_COLUMN_TYPES,
}


def assumed_brightness(params: dict, client: clients.Client) -> tuple[float, float]:
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


def pair_candidates(originals: torch.Tensor, candidates: torch.Tensor, client: clients.Client) -> torch.Tensor:
    """The candidate each original ([n, C, H, W] in [0, 1]) is scored against, normalised like the
    model's input.

    One Hungarian assignment that first pairs as many originals as possible with a candidate that
    recovers them exactly, then minimises the mean squared error, as kernels.metrics.match. MSE alone
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


def run(params: dict, ctx) -> KernelResult:
    started = time.time()
    client = clients.prepare(params, ctx)
    images = client.normalise(client.originals)
    k, image_shape = params["bins"], tuple(images.shape[1:])
    mean, std = assumed_brightness(params, client)
    block = ImprintBlock(image_shape, bin_cutoffs(k, mean, std)).to(client.device)
    received = imprinted_model(block, copy.deepcopy(client.model)).eval()

    validation_started = time.time()
    validation = validate_received_model(received, client.model, images, client.labels, params["dsnr_threshold"])
    validation_seconds = time.time() - validation_started

    attack_started = time.time()
    received.double()
    # Normalised in float64 too, so that a recovered image is the original to ~1e-12, not to float32's 1e-7.
    images64 = client.normalise(client.originals.double())
    weight_gradient, bias_gradient = block_gradients(received, block, images64, client.labels)
    candidates = recover(weight_gradient, bias_gradient)[0].view(-1, *image_shape)
    reconstruction = pair_candidates(client.originals, candidates, client)
    attack_seconds = time.time() - attack_started

    # Where the images really fell (known to the evaluation only): explains every miss.
    image_bins = block.bin_of(images64).cpu().numpy()
    occupancy = np.bincount(image_bins[image_bins >= 0], minlength=k)
    job_info = {
        "added_parameters": added_parameters(k, int(np.prod(image_shape))),
        "expected_exact_proposition2": expected_exact_proposition2(len(images), k),
        "expected_exact_uniform": expected_exact_uniform(len(images), k),
        "occupied_bins": int((occupancy > 0).sum()),
        "bins_with_one_image": int((occupancy == 1).sum()),
        "candidates": len(candidates),
        "assumed_brightness_mean": mean, "assumed_brightness_std": std,
        "validation_seconds": validation_seconds, "attack_seconds": attack_seconds,
        **validation,
    }
    # The standard mode keeps pair_candidates' pairs; the paper mode matches the authors' way (LPIPS, subset).
    result = clients.result(client, params, reconstruction.float(), job_info, started, prematched=True)

    # `exact` of the pair each row scores; in the paper metric mode its original may be another batch's.
    originals = client.source.images(np.array([row["image_index"] for row in result.rows]))
    recovered = (reconstruction * client.std + client.mean).clamp(0, 1).cpu().numpy()
    is_exact, max_abs_error = exact(originals, recovered[[row["matched_position"] for row in result.rows]])
    for row, hit, error in zip(result.rows, is_exact, max_abs_error):
        row.update({"exact": bool(hit), "max_abs_error": float(error), "exactly_recovered": int(is_exact.sum()),
                    "bin": None, "bin_occupancy": None})  # null: the paper mode matched another batch's image
        if row["batch_position"] is not None:
            image_bin = int(image_bins[row["batch_position"]])  # -1: below the lowest cut-off, in no bin
            row.update({"bin": image_bin, "bin_occupancy": int(occupancy[image_bin]) if image_bin >= 0 else 0})
    result.column_types.update(COLUMN_TYPES)
    return result
