"""Reconstruction quality, defined once: PSNR, SSIM and LPIPS on de-normalised images in [0, 1].

Reconstructions of a batch come back in no particular order, so they are first matched to the
originals by a Hungarian assignment on mean squared error.

That is the `standard` metric mode. MODES also holds `paper` (kernels/metrics/paper.py): the authors'
scoring, on normalised tensors with CW-SSIM, so results can be put beside the paper's numbers.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from kernels.metrics import paper as metrics_paper

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

    def distances(self, originals: np.ndarray, reconstructions: np.ndarray, normalize: bool) -> np.ndarray | None:
        """[n, B] LPIPS distance of every original to every reconstruction (None without weights).
        Each image goes through the network once; the pairs only combine its features, as
        LPIPS.forward does for one pair."""
        if self.model is None:
            return None
        import torch
        from lpips import normalize_tensor

        device = next(self.model.parameters()).device

        def features(images: np.ndarray) -> list:
            x = torch.as_tensor(images, device=device)
            x = 2 * x - 1 if normalize else x
            return [normalize_tensor(f) for f in self.model.net.forward(self.model.scaling_layer(x))]

        with torch.no_grad():
            fo, fr = features(originals), features(reconstructions)
            d = torch.zeros(len(originals), len(reconstructions), device=device)
            for lin, o, r in zip(self.model.lins, fo, fr):
                for i in range(len(originals)):
                    d[i] += lin((o[i:i + 1] - r) ** 2).mean(dim=(1, 2, 3))
        return d.double().cpu().numpy()


def backbone_weights_path(net: str) -> Path:
    import torch
    import torchvision.models as tvm

    weights = {"alex": tvm.AlexNet_Weights, "vgg": tvm.VGG16_Weights, "squeeze": tvm.SqueezeNet1_1_Weights}[net]
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.IMAGENET1K_V1.url).name


def score(originals: np.ndarray, reconstructions: np.ndarray, lpips: Lpips, prematched: bool = False) -> list[dict]:
    """One dict per original: the matched reconstruction's position and its PSNR, SSIM, LPIPS.
    `prematched`: reconstruction i already belongs to original i (an attack that pairs its own output)."""
    order = np.arange(len(originals)) if prematched else match(originals, reconstructions)
    matched = reconstructions[order]
    lp = lpips(originals, matched)
    matched_by = "attack" if prematched else "mse"
    return [
        {"matched_position": int(order[i]), "psnr": psnr(o, r), "ssim": ssim(o, r), "lpips": lp[i],
         "lpips_note": lpips.unavailable, "metric_mode": MODE, "ssim_kind": "ssim", "matched_by": matched_by}
        for i, (o, r) in enumerate(zip(originals, matched))
    ]


@dataclass(frozen=True)
class Images:
    """What a metric mode is given: the reconstructions of one job, both ways, with the normalisation."""

    candidates: np.ndarray  # [n, 3, H, W] in [0, 1]: the originals a reconstruction may be matched to
    recovered: np.ndarray  # [B, 3, H, W]: the reconstructions de-normalised and clamped to [0, 1]
    normalised: np.ndarray  # [B, 3, H, W]: the reconstructions as the attack returned them
    mean: np.ndarray  # [3]
    std: np.ndarray  # [3]
    # Reconstruction i already belongs to candidate i: the standard mode keeps the attack's pairs (the
    # paper mode always matches the authors' way).
    prematched: bool = False


@dataclass(frozen=True)
class MetricMode:
    """A way of scoring. `candidates` says which originals it matches against: "batch" (the job's own)
    or "subset" (all num_images of the data set's attacked subset). `score` returns one dict per
    scored pair, the original's position among the candidates under "original"."""

    candidates: str
    score: Callable[[Images, Lpips], list[dict]]


def _standard(images: Images, lpips: Lpips) -> list[dict]:
    scored = score(images.candidates, images.recovered, lpips, images.prematched)
    return [{"original": i, **row} for i, row in enumerate(scored)]


def _paper(images: Images, lpips: Lpips) -> list[dict]:
    return metrics_paper.score(images.candidates, images.normalised, images.mean, images.std, lpips)


MODES = {
    MODE: MetricMode("batch", _standard),
    metrics_paper.MODE: MetricMode("subset", _paper),
}
