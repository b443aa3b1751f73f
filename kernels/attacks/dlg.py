"""Deep Leakage from Gradients (Zhu et al., NeurIPS 2019): squared L2 distance between gradients, no
prior, L-BFGS on the dummy images and, unless labels are given, on dummy label logits jointly."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kernels.attacks.checkpoint import (AttackCheckpoint, expect_count, expect_number, expect_optimizer_state,
                                        expect_tensor)
from kernels.attacks.settings import DLGConfig
from kernels.runtime import EXHAUSTION, describe_error


def soft_cross_entropy(logits: torch.Tensor, label_logits: torch.Tensor) -> torch.Tensor:
    """DLG's loss for a dummy label: cross-entropy against softmax(label_logits), batch mean."""
    return -(F.softmax(label_logits, dim=-1) * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def invert(model: nn.Module, target: list[torch.Tensor], labels: torch.Tensor | None, shape: tuple[int, ...],
           batch_size: int, num_classes: int, config: DLGConfig, generator: torch.Generator,
           checkpoint: AttackCheckpoint | None = None) -> tuple[torch.Tensor, torch.Tensor, float, dict]:
    """Returns the images and labels with the lowest finite objective seen, that objective, and how the
    run went. L-BFGS on DLG's objective can diverge to NaN; the run then stops and says at which step,
    keeping the best iterate rather than a NaN image."""
    device = target[0].device
    params = list(model.parameters())
    x = torch.randn((batch_size, *shape), generator=generator).to(device).requires_grad_(True)
    variables = [x]
    label_logits = None
    if labels is None:
        label_logits = torch.randn((batch_size, num_classes), generator=generator).to(device).requires_grad_(True)
        variables.append(label_logits)
    optimizer = torch.optim.LBFGS(variables, lr=config.lr)
    fresh_optimizer_state = optimizer.state_dict()  # empty: put back if a foreign checkpoint half-loads

    def objective(create_graph: bool) -> torch.Tensor:
        logits = model(x)
        loss = F.cross_entropy(logits, labels) if label_logits is None else soft_cross_entropy(logits, label_logits)
        trial = torch.autograd.grad(loss, params, create_graph=create_graph)
        return sum(((g - t) ** 2).sum() for g, t in zip(trial, target))

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        distance = objective(True)
        distance.backward()
        return distance

    def finite(value: float) -> bool:
        return value == value and abs(value) != float("inf")

    def snapshot() -> dict:
        return {"x": x.detach().clone(), "labels": None if label_logits is None else label_logits.detach().clone()}

    run = {"interruptions": 0, "resumed_from_iteration": None, "diverged_at": None}
    start, best, best_loss = 0, snapshot(), float("inf")
    saved = checkpoint.load() if checkpoint else None
    if saved is not None:
        try:
            # Every check before the variables change; the optimiser is reset if its state fails.
            logits_like = None if label_logits is None else label_logits.detach().cpu()
            saved_x = expect_tensor(saved, "x", x.detach().cpu())
            saved_logits = expect_tensor(saved, "label_logits", logits_like)
            saved_best = {"x": expect_tensor(saved["best"], "x", x.detach().cpu()),
                          "labels": expect_tensor(saved["best"], "labels", logits_like)}
            saved_step = expect_count(saved, "step", 0, config.iterations)
            interruptions = expect_count(saved, "interruptions", 0)
            saved_loss = expect_number(saved, "best_loss")
            optimizer.load_state_dict(expect_optimizer_state(saved, "optimizer", variables))
        except EXHAUSTION:
            raise
        except Exception as error:  # noqa: BLE001 - whatever a foreign state breaks, it is not ours
            checkpoint.discard(f"{checkpoint.path.name} is not this attack's state ({describe_error(error)})")
            optimizer.load_state_dict(fresh_optimizer_state)
        else:
            with torch.no_grad():
                x.copy_(saved_x.to(device))
                if label_logits is not None:
                    label_logits.copy_(saved_logits.to(device))
            start, best_loss = saved_step, saved_loss
            best = {k: None if v is None else v.to(device) for k, v in saved_best.items()}
            run = {**run, "interruptions": interruptions + 1, "resumed_from_iteration": start}
    run["checkpoint_discarded"] = checkpoint.discarded if checkpoint else None
    for step in range(start, config.iterations):
        before = snapshot()
        loss = float(optimizer.step(closure).detach())  # the objective at `before`, where the step started
        if finite(loss) and loss < best_loss:
            best_loss, best = loss, before
        if not finite(loss) or not all(bool(torch.isfinite(v).all()) for v in variables):
            run["diverged_at"] = step + 1
            break
        if checkpoint is not None and checkpoint.due():
            checkpoint.save({"step": step + 1, "x": x.detach().cpu(), "optimizer": optimizer.state_dict(),
                             "label_logits": None if label_logits is None else label_logits.detach().cpu(),
                             "best": {k: None if v is None else v.cpu() for k, v in best.items()},
                             "best_loss": best_loss, "interruptions": run["interruptions"]})
    if run["diverged_at"] is None:
        last = float(objective(False))
        if finite(last) and last < best_loss:
            best_loss, best = last, snapshot()
    if best_loss == float("inf"):
        raise FloatingPointError("DLG's objective was never finite: no reconstruction to score")
    restored = labels if label_logits is None else best["labels"].argmax(-1)
    return best["x"], restored, best_loss, run
