"""Client-side validation: what a client can check on the model it receives before it trains on it.

The paper's third line of defence (Section IV, Takeaway 5), after Garov et al. (ICLR 2024), who show
that the analytic attacks leave one of two traces, each checked here:

- structure: the received model is not the architecture the federation agreed on. Robbing the Fed's
  imprint block adds two linear layers that the agreed ResNet does not have.
- disaggregation: on the client's own batch, one image dominates the gradient of some layer. Fishing
  (and trap weights) must make every other image's gradient vanish to isolate one; an honest model
  spreads the gradient over the batch. Measured by the disaggregation signal-to-noise ratio

      D-SNR = max over parameter tensors W of  max_i ||grad_W L(x_i)|| / sum_{j != i} ||grad_W L(x_j)||

  which needs B >= 2 (one image is always "isolated" in a batch of one).

The check sees only what a client has: the received model, the agreed architecture and its own batch.
"""
from __future__ import annotations

import copy
from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn

def structure_differences(received: nn.Module, agreed: nn.Module) -> tuple[int, list[str]]:
    """Parameters of the received model whose shapes the agreed architecture does not have (and the
    reverse). Shapes, not names, are compared: a server may wrap the agreed model under new names."""
    expected = Counter(tuple(p.shape) for p in agreed.parameters())
    extra: Counter = Counter()
    for p in received.parameters():
        shape = tuple(p.shape)
        if expected[shape]:
            expected[shape] -= 1
        else:
            extra[shape] += 1
    missing = +expected
    extra_count = sum(torch.Size(shape).numel() * n for shape, n in extra.items())
    reasons = []
    if extra:
        shapes = ", ".join(f"{list(s)}" + (f" x{n}" if n > 1 else "") for s, n in extra.items())
        reasons.append(f"{extra_count:,} parameters the agreed architecture does not have ({shapes})")
    if missing:
        shapes = ", ".join(f"{list(s)}" + (f" x{n}" if n > 1 else "") for s, n in missing.items())
        reasons.append(f"tensors of the agreed architecture missing ({shapes})")
    return extra_count, reasons


def dsnr(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float | None:
    """The D-SNR of the module docstring on this batch; None for a batch of one."""
    if len(images) < 2:
        return None
    if next(model.parameters()).dtype == torch.float64:
        # A ratio of norms needs no float64 (Robbing the Fed runs its model in float64 for exactness);
        # float32 makes the B backward passes of this check several times cheaper on a CPU.
        model = copy.deepcopy(model).float()
    params = [p for p in model.parameters() if p.requires_grad]
    dtype = params[0].dtype
    # norms[i, w]: the norm of image i's own gradient of parameter tensor w (one backward per image:
    # per-sample gradients are what the check is about).
    norms = torch.stack([
        torch.stack([g.detach().double().norm() for g in torch.autograd.grad(
            F.cross_entropy(model(images[i:i + 1].to(dtype)), labels[i:i + 1]), params, allow_unused=True,
            materialize_grads=True)])
        for i in range(len(images))
    ])
    others = norms.sum(0, keepdim=True) - norms
    with torch.no_grad():
        ratio = torch.where(others > 0, norms / others.clamp_min(torch.finfo(torch.float64).tiny),
                            torch.where(norms > 0, torch.inf, 0.0))
    return float(ratio.max())


def validate_received_model(received: nn.Module, agreed: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                            dsnr_threshold: float) -> dict:
    """The client's verdict on `received`, as row columns (VALIDATION_COLUMNS of kernels/jobs/declarations.py):
    flagged, why, and both measurements."""
    extra, reasons = structure_differences(received, agreed)
    ratio = dsnr(received, images, labels)
    if ratio is not None and ratio > dsnr_threshold:
        reasons.append(f"one image dominates a layer's gradient: D-SNR {ratio:.3g} > {dsnr_threshold:g}")
    return {"validation_flagged": bool(reasons), "validation_reasons": "; ".join(reasons) or None,
            "validation_extra_parameters": extra, "validation_dsnr": ratio}
