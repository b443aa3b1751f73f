"""The factor table through dask.dataframe: the same numbers as `tables.summarize`, for shard
directories that outgrow one machine. Without a client it runs on local threads; pass a
`distributed.Client` (for instance one attached to a `dask_jobqueue.SLURMCluster`) to spread it."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from analysis.levels import sort_naturally
from analysis.tables import METRICS


def _read_files(files: list[str], columns: list[str] | None = None):
    """One partition: a few hundred shards read together (one partition per shard costs more in
    scheduling than in reading)."""
    return pl.scan_parquet(files).select(columns or pl.all()).collect().to_pandas()


def summarize_dask(shard_dir: str | Path, by: list[str], client=None, files_per_partition: int = 250) -> pl.DataFrame:
    """One row per combination of `by`: images, jobs, mean / std (ddof 1) of each metric, lpips_n;
    reads only the columns it needs, `files_per_partition` shards per task."""
    import dask.dataframe as dd  # imported here: `import analysis` stays light

    path = Path(shard_dir)
    files = sorted(str(p) for p in path.glob("*.parquet")) if path.is_dir() else [str(path)]
    if not files:
        raise FileNotFoundError(f"no finished job in {shard_dir}: nothing to analyse yet")
    names = pl.read_parquet_schema(files[0]).keys()
    metrics = [m for m in METRICS if m in names]
    columns = [*by, "job_id", *metrics]
    chunks = [files[i:i + files_per_partition] for i in range(0, len(files), files_per_partition)]
    frame = dd.from_map(_read_files, chunks, columns=columns, enforce_metadata=False)
    if "lpips" in metrics:
        frame = frame.assign(lpips_n=frame["lpips"].notnull().astype("int64"))
    grouped = frame.groupby(by, dropna=False)
    parts = [grouped["job_id"].count().rename("images"), grouped["job_id"].nunique().rename("jobs")]
    for metric in metrics:
        parts += [grouped[metric].mean().rename(f"{metric}_mean"), grouped[metric].std().rename(f"{metric}_std")]
    if "lpips" in metrics:
        parts.append(grouped["lpips_n"].sum())
    computed = (client.compute(parts, sync=True) if client is not None
                else __import__("dask").compute(*parts))
    import pandas as pd

    table = pl.from_pandas(pd.concat(computed, axis=1).reset_index())
    table = table.with_columns(pl.col("images", "jobs").cast(pl.UInt32), *(
        pl.col(c).fill_nan(None) for c in table.columns if c.endswith(("_mean", "_std"))))
    if "lpips_n" in table.columns:
        table = table.with_columns(pl.col("lpips_n").cast(pl.UInt32))
    return sort_naturally(table, by)


@contextmanager
def slurm_client(workers: int = 2, queue: str | None = None, cores: int = 1, memory: str = "4GB",
                 walltime: str = "01:00:00", log_directory: str | None = None, timeout_s: float = 300,
                 **cluster_options) -> Iterator:
    """A `distributed.Client` whose workers are SLURM jobs (dask-jobqueue, one worker process per job),
    for `summarize_dask(..., client=client)`. Workers run this interpreter, so the shards' folder must be
    on a file system the nodes share. Blocks until `workers` have joined; cancels them on exit.

        with slurm_client(workers=8, queue="cpu", memory="16GB") as client:
            table = summarize_dask("sweeps/opgia/shards", ["dataset", "batch_size"], client=client)
    """
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    with SLURMCluster(queue=queue, cores=cores, processes=1, memory=memory, walltime=walltime,
                      python=sys.executable, log_directory=log_directory, **cluster_options) as cluster, \
            Client(cluster) as client:
        cluster.scale(jobs=workers)
        client.wait_for_workers(workers, timeout=timeout_s)
        yield client
