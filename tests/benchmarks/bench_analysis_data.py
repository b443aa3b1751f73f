"""Synthetic sweep directories in the documented layout, for analysis tests and benchmarks.

Quality follows a known law, so tests can check that the analysis finds it: PSNR falls with log2 of the
batch size, by 3 dB on a trained model and by 4 dB at 224 pixels, and is unaffected by the seed and by
`model` unless `model_effect` is set; SSIM and LPIPS follow PSNR. Written with pyarrow only; the
manifest's descriptor columns come from the kernels' own declarations, as a launch writes them.
"""
from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

RESOLUTION = {"cifar10": 32, "cifar100": 32, "imagenet": 224}


def quality(point: dict, rng: np.random.Generator, n: int, model_effect: float = 0.0) -> dict[str, np.ndarray]:
    psnr = (22.0 - 1.5 * np.log2(point.get("batch_size", 1)) - 3.0 * (point.get("model_state") == "trained")
            - 4.0 * (RESOLUTION.get(point.get("dataset"), 32) > 32) - model_effect * (point.get("model") == "resnet50")
            + rng.normal(0.0, 1.0, n))
    ssim = np.clip(0.05 * psnr - 0.4 + rng.normal(0.0, 0.03, n), 0.0, 1.0)
    return {"psnr": psnr, "ssim": ssim, "lpips": np.clip(0.6 - 0.02 * psnr + rng.normal(0.0, 0.01, n), 0.0, 1.0)}


def _png(rng: np.random.Generator, side: int = 16) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def described(kernel: str, point: dict) -> dict:
    """What a launch's manifest records of a job of `kernel` at `point` (the declaration's describe() of
    its resolved parameters); {} for a kernel name the registry does not hold."""
    from kernels.registry import KERNELS

    declaration = KERNELS.get(kernel)
    if declaration is None:
        return {}
    params = {n: p.default for n, p in declaration.params.items() if not p.required} | point
    return declaration.describe(declaration.resolve(params) if declaration.resolve else params)


def write_sweep(root: Path, axes: dict[str, list], seeds: int = 2, images_per_job: int = 4, kernel: str = "ig",
                extra: dict | None = None, with_images: bool = False, model_effect: float = 0.0,
                row_columns=None, seed: int = 0, descriptors: dict | None = None) -> Path:
    """One shard per (axes point, seed) with `images_per_job` rows. `extra` holds constant columns;
    `row_columns(point, rng, n)` may add per-row columns (such as `exact`); `descriptors` replaces the
    manifest's descriptor columns of every job (None: the kernel's own describe()). Returns `root`."""
    rng = np.random.default_rng(seed)
    for folder in ("shards", "images", "failures"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    names = list(axes)
    manifest = []
    for values in itertools.product(*axes.values(), range(seeds)):
        point = dict(zip(names, values[:-1]))
        label = ",".join(f"{k}={v}" for k, v in point.items())
        job_id = f"{kernel}-{len(manifest):012x}"
        job_descriptors = described(kernel, {**(extra or {}), **point}) if descriptors is None else descriptors
        manifest.append({"job_id": job_id, "kernel": kernel, "label": label, "prerequisite": False,
                         "requires": [], "resources": "{}", "params": json.dumps({**point, "seed": values[-1]}),
                         **job_descriptors})
        n = images_per_job
        columns = {"job_id": [job_id] * n, "job_label": [label] * n, "kernel": [kernel] * n,
                   "kernel_version": [f"{kernel}-1"] * n, "sweep": ["synthetic"] * n, "scale": [None] * n,
                   **{k: [v] * n for k, v in {**(extra or {}), **point}.items()}, "seed": [values[-1]] * n,
                   "image_index": np.arange(n), "label": np.arange(n) % 8, "batch_position": np.arange(n),
                   "matched_position": np.arange(n), **quality(point, rng, n, model_effect),
                   "lpips_note": [None] * n, "metric_mode": ["standard"] * n, "status": ["done"] * n}
        if row_columns:
            columns.update(row_columns(point, rng, n))
        pq.write_table(pa.table(columns), root / "shards" / f"{job_id}.parquet")
        if with_images:
            pq.write_table(pa.table({"job_id": [job_id] * n, "image_index": np.arange(n),
                                     "original_png": [_png(rng) for _ in range(n)],
                                     "reconstruction_png": [_png(rng) for _ in range(n)]}),
                           root / "images" / f"{job_id}.parquet")
    table = pa.Table.from_pylist(manifest).replace_schema_metadata(
        {"orch.name": "synthetic", "orch.scale": "None", "orch.factors": json.dumps(names),
         "orch.descriptors": json.dumps(list(job_descriptors))})
    pq.write_table(table, root / "manifest.parquet")
    (root / "provenance.jsonl").write_text(json.dumps({"time": "2026-01-01T00:00:00+00:00", "git_sha": "abc123",
                                                       "packages": {"polars": "2.1.0"}, "host": "synthetic",
                                                       "python": "3.11", "command": ["orch", "launch"]}) + "\n")
    (root / "sweep.json").write_text(json.dumps({"name": "synthetic", "source": "synthetic.yaml", "scale": None,
                                                 "kernel": "ig", "factors": names, "max_attempts": 2,
                                                 "cache_dir": str(root / ".cache"),
                                                 "created": "2026-01-01T00:00:00+00:00"}))
    return root
