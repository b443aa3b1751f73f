"""Analysis at scale; prints figures, asserts nothing.

    python tests/benchmarks/bench_analysis.py [--shards 10000] [--rows-per-shard 100] [--dir /tmp/...]

Writes a synthetic sweep (4 data sets x 5 batch sizes x 2 training states x 2 models x seeds, one shard
per job) and times the factor table (mean / std of PSNR, SSIM, LPIPS by the five factors) through Polars
(lazy scan of the shard directory, the default) and through dask.dataframe, checking they agree, and
Table I's tests (stratified Spearman with bootstrap intervals) over the same rows.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from analysis.dask_path import summarize_dask  # noqa: E402
from analysis.influence import influence_evidence  # noqa: E402
from analysis.shards import scan_shards  # noqa: E402
from analysis.tables import summarize  # noqa: E402
from tests.benchmarks.bench_analysis_data import write_sweep  # noqa: E402

AXES = {"dataset": ["cifar10", "cifar100", "imagenet", "celeba"], "batch_size": [1, 4, 16, 32, 64],
        "model_state": ["untrained", "trained"], "model": ["resnet18", "resnet50"]}
FACTORS = list(AXES)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=10_000)
    parser.add_argument("--rows-per-shard", type=int, default=100)
    parser.add_argument("--dir", type=Path, default=None, help="reuse or create this sweep directory")
    args = parser.parse_args()
    configurations = 1
    for values in AXES.values():
        configurations *= len(values)
    seeds = max(1, args.shards // configurations)
    root = args.dir or Path(tempfile.mkdtemp(prefix="bench-analysis-", dir="/tmp"))
    if not (root / "manifest.parquet").exists():
        start = time.perf_counter()
        write_sweep(root, AXES, seeds=seeds, images_per_job=args.rows_per_shard)
        print(f"wrote {configurations * seeds} shards in {time.perf_counter() - start:.1f} s to {root}")
    shards = len(list((root / "shards").glob("*.parquet")))

    start = time.perf_counter()
    polars_table = summarize(scan_shards(root), FACTORS)
    polars_s = time.perf_counter() - start
    rows = int(polars_table["images"].sum())
    print(f"polars: {rows:,} rows in {shards:,} shards -> {polars_table.height} factor rows in {polars_s:.2f} s")

    start = time.perf_counter()
    dask_table = summarize_dask(root / "shards", FACTORS)
    dask_s = time.perf_counter() - start
    print(f"dask:   {int(dask_table['images'].sum()):,} rows in {shards:,} shards -> {dask_table.height} factor rows "
          f"in {dask_s:.2f} s")
    start = time.perf_counter()
    evidence = influence_evidence(scan_shards(root))
    print(f"table I: {evidence.height} tests (family x factor x metric, 1000 bootstrap resamples) "
          f"in {time.perf_counter() - start:.2f} s")
    numeric = [c for c in polars_table.columns if c.endswith(("_mean", "_std"))]
    gap = max((polars_table[c] - dask_table[c]).abs().max() for c in numeric)
    same_counts = polars_table.select(FACTORS, "images", "jobs").equals(dask_table.select(FACTORS, "images", "jobs"))
    print(f"agreement: counts identical {same_counts}, largest metric difference {gap:.2e}")


if __name__ == "__main__":
    main()
