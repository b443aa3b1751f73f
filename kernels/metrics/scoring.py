"""A client's reconstruction scored in the job's metric mode: one row per scored pair of an original and
a reconstruction (SCORED_IMAGE_COLUMNS of kernels/jobs/declarations.py, then the attack's own columns),
and the pair as PNGs."""
from __future__ import annotations

import io

import numpy as np
import torch

from kernels import runtime
from kernels.federated.client import Client
from kernels.kernel import KernelResult
from kernels.metrics.standard import MODE as STANDARD
from kernels.metrics.standard import MODES, Images, Lpips


def _candidates(client: Client, pool: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices, labels and [0, 1] images of the originals a metric mode matches against."""
    if pool == "batch":
        return client.indices, client.labels.cpu().numpy(), client.originals.cpu().numpy()
    if client.subset is None or client.source is None:
        raise ValueError("this client does not know its data set's subset (build it with kernels.federated.client.prepare)")
    return client.subset, client.source.labels[client.subset], client.source.images(client.subset)


def score(client: Client, params: dict, reconstruction: torch.Tensor, job_info: dict, started: float,
          prematched: bool = False) -> KernelResult:
    """Scores the reconstruction (normalised, like the model's input) against the originals, in the
    job's metric mode. One row per scored pair of an original and a reconstruction. `prematched`:
    reconstruction i is the attack's own answer for original i (kept in the standard mode)."""
    recovered = (reconstruction.detach() * client.std + client.mean).clamp(0, 1).cpu().numpy()
    if not np.isfinite(recovered).all():
        raise FloatingPointError("the reconstruction holds NaN or infinite pixels")
    # A kernel without the metric_mode parameter scores in the standard mode, which its rows then name.
    mode = MODES[params.get("metric_mode", STANDARD)]
    indices, labels, candidates = _candidates(client, mode.candidates)
    lpips = Lpips.load(params["lpips_net"], str(client.device))  # cached per worker process
    scores = mode.score(Images(candidates=candidates, recovered=recovered,
                               normalised=reconstruction.detach().cpu().numpy(),
                               mean=client.mean.flatten().cpu().numpy(), std=client.std.flatten().cpu().numpy(),
                               prematched=prematched),
                        lpips)
    job_info = {**job_info, **runtime.job_columns(client.device, started)}
    in_batch = {int(index): position for position, index in enumerate(client.indices)}
    rows, pictures = [], []
    for s in scores:
        original = s.pop("original")
        index = int(indices[original])
        # The shard's metric_mode column is the job's parameter, which a row column may not repeat.
        columns = {k: v for k, v in s.items() if k != "metric_mode"}
        rows.append({"image_index": index, "label": int(labels[original]), "batch_position": in_batch.get(index),
                     **columns, **job_info})
        pictures.append({"image_index": index, "original_png": png_bytes(candidates[original]),
                         "reconstruction_png": png_bytes(recovered[s["matched_position"]])})
    return KernelResult(rows=rows, images=pictures)


def png_bytes(image: np.ndarray) -> bytes:
    """[C, H, W] float in [0, 1] -> PNG."""
    from PIL import Image

    array = (np.clip(image, 0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
