"""Reconstruction quality, defined once: PSNR, SSIM and LPIPS on de-normalised images in [0, 1].

Reconstructions of a batch come back in no particular order, so they are first matched to the
originals by a Hungarian assignment on mean squared error.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

MODE = "standard"


def psnr(original: np.ndarray, reconstruction: np.ndarray) -> float:
    """Both [C, H, W] in [0, 1]."""
    return float(peak_signal_noise_ratio(original, reconstruction, data_range=1.0))


def ssim(original: np.ndarray, reconstruction: np.ndarray) -> float:
    """Mean SSIM over the image with scikit-image's defaults (7x7 uniform window), colour channels averaged."""
    return float(structural_similarity(original, reconstruction, data_range=1.0, channel_axis=0))


def match(originals: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """order[i] is the reconstruction assigned to original i, minimising the total MSE."""
    diff = originals[:, None] - reconstructions[None, :]
    cost = (diff.reshape(len(originals), len(reconstructions), -1) ** 2).mean(-1)
    rows, cols = linear_sum_assignment(cost)
    return cols[np.argsort(rows)]


@dataclass
class Lpips:
    """LPIPS from the `lpips` package, or the reason it is unavailable. Never downloads weights:
    torchvision's backbone must already be in the torch hub cache."""

    net: str
    model: object | None
    unavailable: str | None

    @classmethod
    def load(cls, net: str = "alex", device: str = "cpu") -> Lpips:
        return cls._load(net, device, backbone_weights_path(net))

    @classmethod
    @functools.cache  # one backbone per worker process and weights file, however many jobs it runs
    def _load(cls, net: str, device: str, path: Path) -> Lpips:
        if not path.exists():
            return cls(net, None, f"LPIPS backbone weights not staged: {path} is missing (see README, 'LPIPS weights')")
        import lpips

        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=False, verbose=False).to(device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return cls(net, model, None)

    def __call__(self, originals: np.ndarray, reconstructions: np.ndarray) -> list[float | None]:
        if self.model is None:
            return [None] * len(originals)
        import torch

        device = next(self.model.parameters()).device
        a = torch.as_tensor(originals, device=device)
        b = torch.as_tensor(reconstructions, device=device)
        with torch.no_grad():
            return [float(v) for v in self.model(a, b, normalize=True).flatten()]


def backbone_weights_path(net: str) -> Path:
    import torch
    import torchvision.models as tvm

    weights = {"alex": tvm.AlexNet_Weights, "vgg": tvm.VGG16_Weights, "squeeze": tvm.SqueezeNet1_1_Weights}[net]
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.IMAGENET1K_V1.url).name


def score(originals: np.ndarray, reconstructions: np.ndarray, lpips: Lpips) -> list[dict]:
    """One dict per original: the matched reconstruction's position and its PSNR, SSIM, LPIPS."""
    order = match(originals, reconstructions)
    matched = reconstructions[order]
    lp = lpips(originals, matched)
    return [
        {"matched_position": int(order[i]), "psnr": psnr(o, r), "ssim": ssim(o, r), "lpips": lp[i],
         "lpips_note": lpips.unavailable, "metric_mode": MODE}
        for i, (o, r) in enumerate(zip(originals, matched))
    ]
