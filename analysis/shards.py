"""Lazy access to a sweep directory's Parquet files."""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq


def scan_shards(sweep: str | Path) -> pl.LazyFrame:
    """Every metrics row of the sweep, lazily; the image files are never touched."""
    folder = Path(sweep) / "shards"
    if not any(folder.glob("*.parquet")):
        raise FileNotFoundError(f"no finished job in {folder}: nothing to analyse yet")
    return pl.scan_parquet(str(folder / "*.parquet"))


def factors(sweep: str | Path) -> list[str]:
    """The grid's varying parameters, as recorded in the manifest's Parquet metadata."""
    metadata = pq.read_schema(Path(sweep) / "manifest.parquet").metadata or {}
    return json.loads(metadata.get(b"orch.factors", b"[]"))


def load_images(sweep: str | Path, job_ids: list[str]) -> pl.DataFrame:
    """Originals and reconstructions (PNG bytes) of the given jobs only."""
    files = [Path(sweep) / "images" / f"{j}.parquet" for j in job_ids]
    files = [str(f) for f in files if f.exists()]
    if not files:
        return pl.DataFrame(schema={"job_id": pl.String, "image_index": pl.Int64,
                                    "original_png": pl.Binary, "reconstruction_png": pl.Binary})
    return pl.read_parquet(files)
