"""Lazy access to a sweep directory's Parquet files: the one place where analysis reads rows.

Every row analysis sees carries, beside its shard's columns, what the job's kernel declared of it for the
analysis (`describe(params)`: attack_family, model_parameters, ...), which the orchestrator writes into
manifest.parquet as one column per key and lists in its `orch.descriptors` metadata."""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq


def _sweep_folder(sweep: str | Path) -> Path:
    """`sweep` if it is a folder; FileNotFoundError naming what it is otherwise (a wrong path, or a grid
    file given where its sweep folder belongs)."""
    path = Path(sweep)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such sweep folder")
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is a file, not a sweep folder (the folder a launch made, e.g. runs/<name>)")
    return path


def scan_shards(sweep: str | Path) -> pl.LazyFrame:
    """Every metrics row of the sweep, lazily, with its job's descriptor columns from the manifest (joined
    on job_id; absent where the manifest predates them: see descriptors_note). Images are never touched."""
    folder = _sweep_folder(sweep) / "shards"
    if not any(folder.glob("*.parquet")):
        raise FileNotFoundError(f"no finished job in {folder}: nothing to analyse yet")
    rows = pl.scan_parquet(str(folder / "*.parquet"))
    manifest = Path(sweep) / "manifest.parquet"
    names = set(rows.collect_schema().names())
    joined = [d for d in (_descriptor_names(manifest) or []) if d not in names]  # a shard's own column wins
    if not joined:
        return rows
    return rows.join(pl.scan_parquet(manifest).select("job_id", *joined), on="job_id", how="left")


def _metadata(manifest: Path) -> dict[bytes, bytes]:
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} is missing: not a sweep folder, or its launch stopped before writing it")
    return pq.read_schema(manifest).metadata or {}


def _descriptor_names(manifest: Path) -> list[str] | None:
    """The manifest's descriptor columns; None for a manifest written before kernels described their jobs
    (or none at all)."""
    if not manifest.is_file():
        return None
    listed = _metadata(manifest).get(b"orch.descriptors")
    return None if listed is None else json.loads(listed)


def descriptors_note(sweep: str | Path) -> str | None:
    """Why the rows lack their descriptor columns, for the report; None when the manifest has them."""
    manifest = _sweep_folder(sweep) / "manifest.parquet"
    if _descriptor_names(manifest) is not None:
        return None
    meta = Path(sweep) / "sweep.json"
    scale = json.loads(meta.read_text()).get("scale") if meta.is_file() else None
    relaunch = f"orch launch {Path(sweep) / 'grid.yaml'} --sweep-dir {sweep}" + (f" --scale {scale}" if scale else "")
    return (f"{manifest} predates the kernels' descriptors (attack_family, model_parameters), which Table I "
            f"needs: relaunch to refresh the manifest ({relaunch}); no job reruns")


def factors(sweep: str | Path) -> list[str]:
    """The grid's varying parameters, as recorded in the manifest's Parquet metadata."""
    return json.loads(_metadata(_sweep_folder(sweep) / "manifest.parquet").get(b"orch.factors", b"[]"))


def load_images(sweep: str | Path, job_ids: list[str]) -> pl.DataFrame:
    """Originals and reconstructions (PNG bytes) of the given jobs only."""
    files = [Path(sweep) / "images" / f"{j}.parquet" for j in job_ids]
    files = [str(f) for f in files if f.exists()]
    if not files:
        return pl.DataFrame(schema={"job_id": pl.String, "image_index": pl.Int64,
                                    "original_png": pl.Binary, "reconstruction_png": pl.Binary})
    return pl.read_parquet(files)
