"""Kernel `rtf`: Robbing the Fed against one FedSGD client batch; exact recoveries counted (Table IV, Fig. 10).

The malicious server puts an imprint block of `bins` brightness bins (kernels/attacks/imprint.py) in front
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

import time

from kernels.jobs.declarations import (BATCH_GROUP_VARYING, CLIENT_BATCH, CLIENT_VALIDATION, DATA_PARAMS,
                                       MODEL_STATE, RUN_COLUMNS, SCORED_IMAGE_COLUMNS, SCORING, TRAIN_PARAMS,
                                       VALIDATION_COLUMNS, batch_check, batch_fan_out, data_resolve, preflight,
                                       target_model, trained_model_first)
from kernels.kernel import Kernel, KernelResult, columns, parameters
from kernels.params import Param

IMPRINT = {
    "bins": Param(int, 1000, "k: imprint bins (Table IV uses 1000)", min=2),
    "bin_cdf": Param(str, "standard_normal", "the brightness distribution the server assumes to place the "
                     "bins' cut-offs: standard_normal (as breaching and the authors' code) or fitted (a "
                     "normal fitted to the data set's other images)", choices=("standard_normal", "fitted")),
}


def run(params: dict, ctx) -> KernelResult:
    import copy

    import numpy as np

    from kernels.attacks.imprint import (ImprintBlock, added_parameters, assumed_brightness, bin_cutoffs,
                                         block_gradients, exact, expected_exact_proposition2,
                                         expected_exact_uniform, imprinted_model, pair_candidates, recover)
    from kernels.defences.client_validation import validate_received_model
    from kernels.federated import client as clients
    from kernels.metrics.scoring import score

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
    result = score(client, params, reconstruction.float(), job_info, started, prematched=True)

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
    return result


KERNEL = Kernel(
    name="rtf",
    version="rtf-1",
    family="ANA",
    mechanism="manipulated_architecture",  # the imprint block is a new layer in front of the model
    doc="Robbing the Fed: an imprint block (linear layer of `bins` brightness bins + ReLU) in front of the "
        "model; images recovered from differences of consecutive bins' gradients; exact recoveries counted.",
    # One client batch, as for the optimisation attacks; the server does not restore labels, and
    # without an optimisation there is nothing to seed or checkpoint.
    params=parameters(DATA_PARAMS, TRAIN_PARAMS, MODEL_STATE, CLIENT_BATCH, SCORING, IMPRINT, CLIENT_VALIDATION),
    columns=columns(
        SCORED_IMAGE_COLUMNS,
        {"added_parameters": "int64", "expected_exact_proposition2": "float64", "expected_exact_uniform": "float64",
         "occupied_bins": "int64", "bins_with_one_image": "int64", "candidates": "int64",
         "assumed_brightness_mean": "float64", "assumed_brightness_std": "float64",
         "validation_seconds": "float64", "attack_seconds": "float64"},
        VALIDATION_COLUMNS, RUN_COLUMNS,
        {"exact": "bool", "max_abs_error": "float64", "exactly_recovered": "int64", "bin": "int64",
         "bin_occupancy": "int64"}),
    run=run,
    check=batch_check,
    resolve=data_resolve,
    fan_out=batch_fan_out,
    prerequisites=trained_model_first,
    preflight=preflight,
    descriptors=target_model,
    group_varying=tuple(n for n in BATCH_GROUP_VARYING if n != "seed"),  # nothing random to seed
)
