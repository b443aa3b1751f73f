"""Kernel `ig`: one FedSGD client batch attacked with Inverting Gradients, scored per image."""
from __future__ import annotations

import time

import torch

from kernels import runtime, training
from kernels.attacks.ig import IGConfig, client_gradient, invert
from kernels.checkpoint import AttackCheckpoint
from kernels.data.catalog import DATASETS
from kernels.data.loaders import load_split
from kernels.data.protocol import attack_subset, split_batches
from kernels.metrics import Lpips, score
from kernels.models import build_model
from kernels.registry import train_recipe
from kernels.result import KernelResult, png_bytes


def run(params: dict, ctx) -> KernelResult:
    started = time.time()
    device = runtime.setup(ctx.cpus, params["seed"])
    info = DATASETS[params["dataset"]]
    images, labels = load_split(params["dataset"], params["data_root"], "attack", params["train_pool"])
    subset = attack_subset(labels, params["num_images"], info.unique_labels, params["data_seed"])
    batch = split_batches(subset, labels, params["batch_size"], params["data_seed"])[params["batch_index"]]

    mean = torch.tensor(info.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(info.std, device=device).view(1, 3, 1, 1)
    originals = torch.as_tensor(images[batch], device=device)
    targets = torch.as_tensor(labels[batch], device=device)

    model = build_model(params["model"], info.num_classes, images.shape[-1], params["model_seed"])
    if params["model_state"] == "trained":
        training.load_trained(model, ctx.cache_dir, train_recipe(params))
    # As in the reference code the client's model is in eval mode: BatchNorm uses its running statistics.
    model = model.to(device).eval()

    shared_gradient = client_gradient(model, (originals - mean) / std, targets)
    config = IGConfig(iterations=params["iterations"], lr=params["lr"], tv=params["tv"],
                      cost_fn=params["cost_fn"], signed=params["signed"], boxed=params["boxed"])
    generator = torch.Generator().manual_seed(params["seed"])
    attack_started = time.time()
    checkpoint = AttackCheckpoint(ctx.scratch_dir, params["checkpoint_every_s"])
    reconstruction, final_loss, run_info = invert(model, shared_gradient, targets, tuple(originals.shape[1:]),
                                                  mean, std, config, generator, checkpoint)
    attack_seconds = time.time() - attack_started

    recovered = (reconstruction * std + mean).clamp(0, 1).cpu().numpy()
    truth = originals.cpu().numpy()
    lpips = Lpips.load(params["lpips_net"], str(device))  # cached per worker process
    scores = score(truth, recovered, lpips)
    job_info = {"iterations_done": params["iterations"], "final_objective": final_loss,
                "attack_seconds": attack_seconds, "kernel_seconds": time.time() - started,
                "device": runtime.describe(device), **run_info}
    rows, pictures = [], []
    for position, (index, s) in enumerate(zip(batch, scores)):
        rows.append({"image_index": int(index), "label": int(labels[index]), "batch_position": position,
                     **s, **job_info})
        pictures.append({"image_index": int(index), "original_png": png_bytes(truth[position]),
                         "reconstruction_png": png_bytes(recovered[s["matched_position"]])})
    return KernelResult(rows=rows, images=pictures, column_types={"lpips": "float64", "lpips_note": "string",
                                                                         "resumed_from_iteration": "int64"})
