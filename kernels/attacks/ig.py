"""Inverting Gradients (Geiping et al., NeurIPS 2020) with the settings of the paper under study:
cosine gradient distance over all layers + total variation, Adam on signed image gradients, pixels
boxed to the valid range, learning rate x0.1 at 3/8, 5/8 and 7/8 of the iterations, labels known.
On ImageNet the authors' script (1wrx1/GIA, OP-GIA/IG/inverting.py) also matches only the 10 parameter
tensors with the largest target-gradient norms (inversefed's indices='top10') and passes the result
through a 3x3 median filter (filter='median'): `layers` and `median_filter` below."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from kernels.attacks.checkpoint import (AttackCheckpoint, expect_count, expect_number, expect_optimizer_state,
                                        expect_tensor)
from kernels.attacks.settings import IGConfig
from kernels.metrics.cosine import ZeroGradient
from kernels.runtime import EXHAUSTION, describe_error


def matched_layers(layers: str, target: list[torch.Tensor]) -> list[int]:
    """Positions of the parameter tensors whose gradients are compared, in model order."""
    if layers == "all":
        return list(range(len(target)))
    if layers == "top10":
        norms = torch.stack([t.detach().double().norm() for t in target])
        return sorted(torch.topk(norms, min(10, len(target))).indices.tolist())
    raise ValueError(f"unknown layers {layers!r} (valid: all, top10)")


def median_filter(x: torch.Tensor) -> torch.Tensor:
    """3x3 median of every pixel, edges reflected (inversefed's MedianPool2d(3, 1, 1))."""
    patches = F.pad(x, (1, 1, 1, 1), mode="reflect").unfold(2, 3, 1).unfold(3, 3, 1)
    return patches.reshape(*patches.shape[:4], 9).median(dim=-1).values


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels, horizontally plus vertically."""
    return (x[:, :, :, :-1] - x[:, :, :, 1:]).abs().mean() + (x[:, :, :-1, :] - x[:, :, 1:, :]).abs().mean()


def gradient_distance(cost_fn: str, target: list[torch.Tensor]) -> Callable[[list[torch.Tensor]], torch.Tensor]:
    """Distance to the target gradient. Flat views and dot products avoid materialising an
    elementwise product of all 11M ResNet-18 parameters at every iteration."""
    flat_target = [t.flatten() for t in target]
    if cost_fn == "sim":
        # A trained model that is sure of an image sends a gradient of norm ~1e-23: its squares, and the
        # product of two such norms, underflow float32 to 0. Scale the target to a unit vector once (the
        # cosine does not depend on scale) so only the trial's own norm stays in the denominator.
        scale = max(float(t.abs().max()) for t in flat_target)
        if scale == 0:
            raise ZeroGradient("the client's gradient is exactly zero (the model fits this batch perfectly): "
                               "there is nothing to invert")
        scaled = [t / scale for t in flat_target]
        length = torch.sqrt(sum(torch.dot(t, t) for t in scaled))
        unit_target = [t / length for t in scaled]
        tiny = torch.finfo(flat_target[0].dtype).tiny

        def cosine(trial: list[torch.Tensor]) -> torch.Tensor:
            flat = [g.flatten() for g in trial]
            dot = sum(torch.dot(g, t) for g, t in zip(flat, unit_target))
            norm = torch.sqrt(sum(torch.dot(g, g) for g in flat))
            return 1 - dot / norm.clamp_min(tiny)

        return cosine
    if cost_fn == "l2":
        return lambda trial: sum(((g.flatten() - t) ** 2).sum() for g, t in zip(trial, flat_target))
    raise ValueError(f"unknown cost_fn {cost_fn!r}")


def milestones(iterations: int) -> list[int]:
    # The reference implementation's iterations // 2.667, // 1.6, // 1.142: 3/8, 5/8, 7/8.
    return [int(iterations // 2.667), int(iterations // 1.6), int(iterations // 1.142)]


def invert(
    model: nn.Module,
    target: list[torch.Tensor],
    labels: torch.Tensor,
    shape: tuple[int, int, int],
    mean: torch.Tensor,
    std: torch.Tensor,
    config: IGConfig,
    generator: torch.Generator,
    checkpoint: AttackCheckpoint | None = None,
    progress: Callable[[int, float], None] | None = None,
    observe: Callable[[torch.Tensor], list[torch.Tensor]] | None = None,
) -> tuple[torch.Tensor, float, dict]:
    """Returns the reconstruction (normalised, like the model's input), the final objective (None when
    the client's gradient is exactly zero: see ZeroGradient), and how the run went: interruptions
    survived, the iteration it last resumed from, iterations done, whether the gradient was zero, why
    a checkpoint was discarded (see kernels/attacks/checkpoint.py).

    `observe` maps candidate images to what is compared with `target`, differentiably; by default the
    FedSGD gradient (FedAvg passes a simulation of the client's local training instead)."""
    device = target[0].device
    chosen = matched_layers(config.layers, target)
    if observe is None:
        params = [list(model.parameters())[i] for i in chosen]  # only the matched gradients are computed

        def observe(x: torch.Tensor) -> list[torch.Tensor]:
            return torch.autograd.grad(F.cross_entropy(model(x), labels), params, create_graph=True)
    elif len(chosen) < len(target):
        observe_all = observe

        def observe(x: torch.Tensor) -> list[torch.Tensor]:
            observed = observe_all(x)
            return [observed[i] for i in chosen]
    x = torch.randn((len(labels), *shape), generator=generator, device="cpu").to(device).requires_grad_(True)
    low, high = (0 - mean) / std, (1 - mean) / std
    try:
        distance = gradient_distance(config.cost_fn, [target[i] for i in chosen])
    except ZeroGradient:
        # A result, not an error (retrying cannot change it): the attacker learns nothing, so its answer
        # is its uninformed starting point, scored like any reconstruction.
        guess = torch.maximum(torch.minimum(x.detach(), high), low)
        return guess, None, {"interruptions": 0, "resumed_from_iteration": None, "iterations_done": 0,
                             "zero_gradient": True, "checkpoint_discarded": None}

    def fresh_optimiser():
        optimizer = torch.optim.Adam([x], lr=config.lr)
        return optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones(config.iterations), gamma=0.1)

    optimizer, schedule = fresh_optimiser()
    loss_value, start = float("nan"), 0
    run = {"interruptions": 0, "resumed_from_iteration": None, "iterations_done": config.iterations,
           "zero_gradient": False}
    saved = checkpoint.load() if checkpoint else None
    if saved is not None:
        try:
            # Every check before x changes; the optimiser and schedule are rebuilt if theirs fail.
            saved_x = expect_tensor(saved, "x", x.detach().cpu())
            start = expect_count(saved, "step", 0, config.iterations)
            interruptions = expect_count(saved, "interruptions", 0)
            loss_value = expect_number(saved, "loss")
            optimizer.load_state_dict(expect_optimizer_state(saved, "optimizer", [x]))
            schedule.load_state_dict(saved["schedule"])
        except EXHAUSTION:
            raise
        except Exception as error:  # noqa: BLE001 - whatever a foreign state breaks, it is not ours
            checkpoint.discard(f"{checkpoint.path.name} is not this attack's state ({describe_error(error)})")
            optimizer, schedule = fresh_optimiser()
            loss_value, start = float("nan"), 0
        else:
            with torch.no_grad():
                x.copy_(saved_x.to(device))
            run = {**run, "interruptions": interruptions + 1, "resumed_from_iteration": start}
    run["checkpoint_discarded"] = checkpoint.discarded if checkpoint else None
    for step in range(start, config.iterations):
        loss = distance(observe(x)) + config.tv * total_variation(x)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the attack's objective became {float(loss)} at iteration {step + 1}")
        (x.grad,) = torch.autograd.grad(loss, [x])
        if config.signed:
            x.grad.sign_()
        optimizer.step()
        schedule.step()
        if config.boxed:
            with torch.no_grad():
                x.copy_(torch.maximum(torch.minimum(x, high), low))
        loss_value = float(loss.detach())
        if progress is not None:
            progress(step + 1, loss_value)
        if checkpoint is not None and checkpoint.due():
            checkpoint.save({"step": step + 1, "x": x.detach().cpu(), "optimizer": optimizer.state_dict(),
                             "schedule": schedule.state_dict(), "loss": loss_value,
                             "interruptions": run["interruptions"]})
    if config.median_filter:
        with torch.no_grad():
            x = median_filter(x)
    return x.detach(), loss_value, run
