"""Figure 8 of the paper, what the activation functions actually receive.

The paper explains why CI-Net inverts Sigmoid models only: the inputs of the activations mostly lie in
[-2, 2], where Sigmoid is nearly linear and ReLU or Tanh are not. This kernel feeds the client's subset
through the model (eval mode, as the attacks see it) and histograms the input of every activation
module.

The bin edges are fixed (EDGES, the same in every job), so histograms of different jobs, image subsets
or seeds add up bin by bin. Inputs below the first edge or at/above the last land in an underflow
(bin_low = -inf) or overflow (bin_high = +inf) bin, so each layer's counts sum to every input it saw.
Bins are half-open, [bin_low, bin_high).

Torchvision's ResNet blocks call one activation module twice (after the first convolution and after
the residual sum). Both calls are counted under the module's name; `calls_per_forward` says how many
calls a layer's histogram holds.

Rows, one per (layer, bin): layer (module path, e.g. "layer1.0.relu"), layer_index (order of the
modules in the model), calls_per_forward, bin_low, bin_high, count; and, the same on every row, over
all inputs of all layers: fraction_in_unit_range (share in the closed interval [-2, 2]), input_mean,
input_std.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kernels.models.architectures import ACTIVATIONS

EDGES = np.arange(-60, 61) / 10  # 121 edges, bins of 0.1 from -6 to 6
UNIT_RANGE = (-2.0, 2.0)
CHUNK = 16  # images per forward pass: bounds the histogramming's temporary memory at ImageNet sizes


@dataclass
class Tally:
    """Everything one activation module has received so far."""
    counts: torch.Tensor  # len(EDGES) + 1 bins: underflow, the 120 bins, overflow
    calls: int = 0
    in_unit_range: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, inputs: torch.Tensor, edges: torch.Tensor) -> None:
        # right=True puts x in bin k when edges[k-1] <= x < edges[k]: half-open bins, and bin 0 is x < -6.
        self.counts += torch.bincount(torch.bucketize(inputs.flatten(), edges, right=True),
                                      minlength=len(edges) + 1)
        self.calls += 1
        self.in_unit_range += int(((inputs >= UNIT_RANGE[0]) & (inputs <= UNIT_RANGE[1])).sum())
        self.total += float(inputs.sum(dtype=torch.float64))
        self.squares += float(inputs.square().sum(dtype=torch.float64))


def histograms(model: torch.nn.Module, images: torch.Tensor) -> tuple[dict[str, Tally], int]:
    """Per activation module (by path name), the tally of its inputs over `images`; and the number of
    forward passes, to turn call counts into calls per pass."""
    device = images.device
    edges = torch.as_tensor(EDGES, dtype=images.dtype, device=device)
    kinds = tuple(ACTIVATIONS.values())
    tallies, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, kinds):
            tally = tallies[name] = Tally(torch.zeros(len(EDGES) + 1, dtype=torch.int64, device=device))
            handles.append(module.register_forward_pre_hook(
                lambda module, args, tally=tally: tally.add(args[0].detach(), edges)))
    if not tallies:
        raise ValueError(f"{type(model).__name__} has no activation module of the kinds {', '.join(ACTIVATIONS)}")
    passes = 0
    try:
        with torch.no_grad():
            for start in range(0, len(images), CHUNK):
                model(images[start:start + CHUNK])
                passes += 1
    finally:
        for handle in handles:
            handle.remove()
    return tallies, passes


def histogram_rows(client, params: dict) -> list[dict]:
    """The rows of the module docstring, for the client's subset."""
    tallies, passes = histograms(client.model, client.normalise(client.originals))
    seen = sum(int(t.counts.sum()) for t in tallies.values())
    mean = sum(t.total for t in tallies.values()) / seen
    variance = sum(t.squares for t in tallies.values()) / seen - mean ** 2
    if not np.isfinite(mean) or not np.isfinite(variance):
        raise FloatingPointError("an activation received a non-finite input")
    summary = {"fraction_in_unit_range": sum(t.in_unit_range for t in tallies.values()) / seen,
               "input_mean": mean, "input_std": float(np.sqrt(max(variance, 0.0)))}
    lows = np.concatenate([[-np.inf], EDGES])
    highs = np.concatenate([EDGES, [np.inf]])
    rows = []
    for index, (name, tally) in enumerate(tallies.items()):
        counts = tally.counts.cpu().tolist()
        for low, high, count in zip(lows, highs, counts):
            rows.append({"layer": name, "layer_index": index, "calls_per_forward": tally.calls // passes,
                         "bin_low": float(low), "bin_high": float(high), "count": count, **summary})
    return rows
