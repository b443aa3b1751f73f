"""Tables II, III and IV of the paper, in the paper's shape, from whatever rows the sweep holds.

Each function takes the lazy metrics rows and returns a `PaperTable`, or None when a column it `needs`
(declared above it) is absent: the kernel that writes it has not run in this sweep. Only metric columns
are read: never the image files.
"""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from analysis.levels import natural_levels, sort_naturally
from analysis.tables import METRICS, needs

HEADERS = {"psnr": "PSNR ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓"}
# Table III's column groups; they follow the paper's order through analysis.levels.LEVEL_ORDER.
SIMULATION_NAMES = {"strong": "Strong Simulation", "weak": "Weak Simulation", "none": "No Simulation"}


@dataclass
class PaperTable:
    name: str  # file stem: table2_similarity, ...
    caption: str
    table: pl.DataFrame


def _varying(frame: pl.DataFrame, candidates: tuple[str, ...]) -> list[str]:
    """The candidate columns that take more than one value: they become leading key columns."""
    return [c for c in candidates if c in frame.columns and frame[c].n_unique() > 1]


def _single_values(frame: pl.DataFrame, candidates: tuple[str, ...]) -> str:
    fixed = [f"{c}={frame[c][0]}" for c in candidates if c in frame.columns and frame[c].n_unique() == 1]
    return f" ({', '.join(fixed)})" if fixed else ""


@needs("shared_labels", "position", "cosine")
def similarity_table(rows: pl.LazyFrame) -> PaperTable | None:
    """Table II: cosine similarity between the gradient of one image of a batch and the batch's gradient.

    Expects the `gradient_similarity` kernel's rows: `shared_labels` (i: batch I_i holds i images of the
    anchor's label), `position` (0 is the anchor, 1..i-1 share its label, the rest have distinct labels)
    and `cosine`, one row per (batch, image) and job; cells are means over jobs (anchors). Row `I^j` is
    the j-th image of each batch, so the paper's first row is `I^1` and its last column `I_B`; the paper
    prints only those cells, this table all of them. `model_state` (and `dataset`, `model`) become
    leading columns when they vary."""
    extra = [c for c in ("dataset", "model", "model_state") if c in rows.collect_schema().names()]
    cells = (rows.filter(pl.col("cosine").is_not_null())
             .group_by(*extra, "shared_labels", "position")
             .agg(pl.col("cosine").mean(), pl.len().alias("n")).collect())
    if cells.is_empty():
        return None
    keys = [*_varying(cells, tuple(extra)), "position"]
    table = cells.select(keys).unique()
    for shared in sorted(cells["shared_labels"].unique().to_list()):
        column = cells.filter(pl.col("shared_labels") == shared).select(
            *keys, pl.col("cosine").round(4).alias(f"I_{shared}"))
        table = table.join(column, on=keys, how="left")
    table = sort_naturally(table, keys)
    table = table.with_columns(pl.format("I^{}", pl.col("position") + 1).alias("position")).rename({"position": ""})
    anchors = int(cells["n"].max())
    caption = (f"Cosine similarity between each image's gradient and its batch's gradient; I_i: i images share the "
               f"anchor's label; mean over {anchors} anchor(s)" + _single_values(cells, tuple(extra)))
    return PaperTable("table2_similarity", caption, table)


@needs("local_epochs", "local_batch_size", "simulation", "dataset")
def fedavg_table(rows: pl.LazyFrame) -> PaperTable | None:
    """Table III: IG under practical FedAvg, one row per local epochs E and local batch size B,
    PSNR / SSIM / LPIPS means for strong, weak and no simulation.

    Reads the `ig_fedavg` kernel's `local_epochs`, `local_batch_size` (B) and `simulation` ('strong' |
    'weak' | 'none') and the metric columns; `dataset` becomes a leading column when the sweep holds more
    than one."""
    names = rows.collect_schema().names()
    metrics = [m for m in METRICS if m in names]
    means = (rows.filter(pl.col("simulation").is_not_null() & pl.col("local_epochs").is_not_null())
             .rename({"local_batch_size": "batch_size"}).group_by("dataset", "local_epochs", "batch_size", "simulation")
             .agg(pl.col(m).mean() for m in metrics).collect())
    if means.is_empty():
        return None
    keys = [*_varying(means, ("dataset",)), "local_epochs", "batch_size"]
    table = means.select(keys).unique()
    for simulation in natural_levels(means["simulation"].to_list(), "simulation"):
        part = means.filter(pl.col("simulation") == simulation).select(
            *keys, *(pl.col(m).alias(f"{SIMULATION_NAMES[simulation]} {HEADERS[m]}") for m in metrics))
        table = table.join(part, on=keys, how="left")
    table = sort_naturally(table, keys)
    caption = "Reconstruction results of IG under practical FedAvg" + _single_values(means, ("dataset",))
    return PaperTable("table3_fedavg", caption, table.rename({"local_epochs": "E", "batch_size": "B"}))


@needs("bins", "batch_size", "dataset", "exact")
def robbing_table(rows: pl.LazyFrame) -> PaperTable | None:
    """Table IV: images exactly recovered by Robbing the Fed, "k/n" per batch size and data set.

    Expects `bins` (int), `batch_size` (int), `dataset` (str) and `exact` (bool, one row per attacked
    image). `n` counts the images attacked (64 per batch size in the paper; more with several seeds).
    `bins`, `model_state` and `model` become leading columns when they vary."""
    extra = [c for c in ("model_state", "model") if c in rows.collect_schema().names()]
    counts = (rows.filter(pl.col("exact").is_not_null() & pl.col("bins").is_not_null())
              .group_by("bins", *extra, "batch_size", "dataset")
              .agg(pl.col("exact").sum().alias("k"), pl.len().alias("n")).collect())
    if counts.is_empty():
        return None
    keys = [*_varying(counts, ("bins", *extra)), "batch_size"]
    table = counts.select(keys).unique()
    for dataset in natural_levels(counts["dataset"].drop_nulls().to_list(), "dataset"):
        part = counts.filter(pl.col("dataset") == dataset).select(
            *keys, pl.format("{}/{}", "k", "n").alias(dataset))
        table = table.join(part, on=keys, how="left")
    table = sort_naturally(table, keys)
    caption = "Images exactly reconstructed by Robbing the Fed" + _single_values(counts, ("bins", *extra))
    return PaperTable("table4_robbing", caption, table.rename({"batch_size": "Batch Size"}))


PAPER_TABLES = (similarity_table, fedavg_table, robbing_table)


def paper_tables(rows: pl.LazyFrame) -> list[PaperTable]:
    """Every one of Tables II-IV whose `needs` this sweep's rows meet (and that has data)."""
    return [t for t in (make(rows) for make in PAPER_TABLES) if t is not None]
