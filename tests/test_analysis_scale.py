"""Polars and Dask give the same factor table; metric tables never open the image files."""
import numpy as np
import polars as pl
import pyarrow.dataset as ds

from analysis.dask_path import summarize_dask
from analysis.influence import influence_evidence
from analysis.paper_tables import paper_tables
from analysis.shards import scan_shards
from analysis.tables import summarize
from tests.benchmarks.bench_analysis_data import write_sweep

AXES = {"dataset": ["cifar10", "imagenet"], "batch_size": [1, 4, 16], "model_state": ["untrained", "trained"]}


def _sweep_with_some_missing_lpips(root):
    def lpips_gaps(point, rng, n):  # LPIPS null in part of the rows, as without staged weights
        return {"lpips": np.where(rng.random(n) < 0.3, None, rng.random(n))}

    return write_sweep(root, AXES, seeds=5, images_per_job=3, row_columns=lpips_gaps)


def test_polars_and_dask_paths_give_the_same_numbers(tmp_path):
    sweep = _sweep_with_some_missing_lpips(tmp_path)
    by = list(AXES)
    polars_table = summarize(scan_shards(sweep), by)
    dask_table = summarize_dask(sweep / "shards", by, files_per_partition=7)  # several partitions
    assert polars_table.select(*by, "images", "jobs", "lpips_n").equals(dask_table.select(*by, "images", "jobs", "lpips_n"))
    assert polars_table["lpips_n"].sum() < polars_table["images"].sum()  # the null LPIPS rows were skipped
    for column in [c for c in polars_table.columns if c.endswith(("_mean", "_std"))]:
        assert np.allclose(polars_table[column].to_numpy(), dask_table[column].to_numpy(), rtol=1e-12, atol=1e-12)
    # And both match a computation that needs nothing of this project.
    plain = ds.dataset(str(sweep / "shards")).to_table().to_pandas()
    cell = plain[(plain.dataset == "imagenet") & (plain.batch_size == 16) & (plain.model_state == "trained")]
    row = polars_table.filter((pl.col("dataset") == "imagenet") & (pl.col("batch_size") == 16)
                              & (pl.col("model_state") == "trained"))
    assert abs(row["psnr_std"][0] - cell.psnr.std()) < 1e-12 and row["images"][0] == len(cell)


def test_metric_tables_never_read_the_image_files(tmp_path):
    sweep = _sweep_with_some_missing_lpips(tmp_path)
    (sweep / "images").mkdir(exist_ok=True)
    for job in (sweep / "shards").glob("*.parquet"):  # a broken image file fails any reader that opens it
        (sweep / "images" / job.name).write_bytes(b"not parquet")
    rows = scan_shards(sweep)
    assert summarize(rows, list(AXES)).height == 12
    assert influence_evidence(rows, replicates=50).height > 0
    assert paper_tables(rows) == []
    assert summarize_dask(sweep / "shards", list(AXES)).height == 12
