"""Lazy access to a sweep directory's Parquet files."""
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
    """Every metrics row of the sweep, lazily; the image files are never touched."""
    folder = _sweep_folder(sweep) / "shards"
    if not any(folder.glob("*.parquet")):
        raise FileNotFoundError(f"no finished job in {folder}: nothing to analyse yet")
    return pl.scan_parquet(str(folder / "*.parquet"))


def factors(sweep: str | Path) -> list[str]:
    """The grid's varying parameters, as recorded in the manifest's Parquet metadata."""
    manifest = _sweep_folder(sweep) / "manifest.parquet"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} is missing: not a sweep folder, or its launch stopped before writing it")
    metadata = pq.read_schema(manifest).metadata or {}
    return json.loads(metadata.get(b"orch.factors", b"[]"))


def load_images(sweep: str | Path, job_ids: list[str]) -> pl.DataFrame:
    """Originals and reconstructions (PNG bytes) of the given jobs only."""
    files = [Path(sweep) / "images" / f"{j}.parquet" for j in job_ids]
    files = [str(f) for f in files if f.exists()]
    if not files:
        return pl.DataFrame(schema={"job_id": pl.String, "image_index": pl.Int64,
                                    "original_png": pl.Binary, "reconstruction_png": pl.Binary})
    return pl.read_parquet(files)
