"""Figures 4, 5, 8 and 10 of the paper, and reconstruction grids for any slice of a sweep."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from analysis.figures import draw_pair, label, reconstruction_grid, save_pairs  # noqa: E402
from analysis.influence import SAME_LABEL  # noqa: E402
from analysis.levels import level_key, sort_naturally  # noqa: E402
from analysis.shards import load_images, scan_shards  # noqa: E402

SHOWN = ["job_id", "image_index", "psnr", "ssim", "lpips"]


def _metrics_line(frame: pl.DataFrame) -> str:
    lpips = frame["lpips"].mean() if "lpips" in frame.columns else None
    lp = "–" if lpips is None else f"{lpips:.4f}"
    return f"PSNR {frame['psnr'].mean():.2f}\nSSIM {frame['ssim'].mean():.4f}\nLPIPS {lp}"


def label_repetition_row(rows: pl.DataFrame, images: pl.DataFrame, path: Path) -> Path:
    """Figure 5: one batch per number of images sharing a label (`same_label` if the rows have it, else
    counted from `label` within each job), originals above reconstructions, the batch's mean PSNR / SSIM
    / LPIPS beneath. `rows` holds metric rows; `images` those jobs' PNGs (`shards.load_images`)."""
    if "same_label" not in rows.columns:
        rows = rows.with_columns(SAME_LABEL.alias("same_label"))
    joined = rows.join(images, on=["job_id", "image_index"], how="inner")
    batches = [group.sort("image_index") for _, group in
               sorted(joined.group_by("same_label"), key=lambda kv: kv[0][0])]
    batches = [b.filter(pl.col("job_id") == b["job_id"].min()) for b in batches]  # one batch per level
    columns = sum(len(b) for b in batches)
    fig, axes = plt.subplots(2, columns, figsize=(1.2 * columns + 0.6, 3.6), squeeze=False)
    c = 0
    for batch in batches:
        for i, row in enumerate(batch.iter_rows(named=True)):
            draw_pair(axes[0][c + i], axes[1][c + i], row)
        axes[0][c].set_title(f"{batch['same_label'][0]} share a label", fontsize=8, loc="left")
        axes[1][c].set_xlabel(_metrics_line(batch), fontsize=7, loc="left")
        c += len(batch)
    return save_pairs(fig, axes, path, fontsize=8, title="One batch per number of images sharing a label: originals "
                      "(top) and reconstructions (bottom), as in Figure 5")


def exact_recovery_curve(rows: pl.LazyFrame, path: Path) -> Path | None:
    """Figure 10: share of exactly recovered images against the number of bins, one line per batch size
    (the paper shows B = 64), the added parameters on the upper axis when the rows carry
    `added_parameters`. Expects `bins`, `batch_size` and `exact`; None when they are absent."""
    names = rows.collect_schema().names()
    if not {"bins", "batch_size", "exact"} <= set(names):
        return None
    extra = [pl.col("added_parameters").first()] if "added_parameters" in names else []
    # The rtf kernel's predictions, as shares of B: each image in each bin with probability 1/k.
    expected = ([(pl.col("expected_exact_uniform").first() / pl.col("batch_size").first()).alias("expected")]
                if "expected_exact_uniform" in names else [])
    share = (rows.filter(pl.col("exact").is_not_null()).group_by("batch_size", "bins")
             .agg(pl.col("exact").cast(pl.Float64).mean().alias("share"), *extra, *expected)
             .sort("batch_size", "bins").collect())
    if share.is_empty():
        return None
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    for (batch_size,), line in share.group_by("batch_size", maintain_order=True):
        drawn = ax.plot(line["bins"], line["share"], marker="o", label=f"{label('batch_size')} {batch_size}")
        if expected:
            ax.plot(line["bins"], line["expected"], linestyle="--", color=drawn[0].get_color(),
                    label=f"{label('batch_size')} {batch_size}, expected (1-1/k)^(B-1)")
    bins = sorted(share["bins"].unique().to_list())
    if bins[0] > 0 and bins[-1] / bins[0] >= 8:
        ax.set_xscale("log")
    ax.set_xlabel(f"{label('bins')} k")
    ax.set_ylabel("share of images recovered exactly")
    ax.set_title("Robbing the Fed: exact recoveries against the number of bins (Figure 10)", fontsize=9)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if extra:
        params = share.group_by("bins").agg(pl.col("added_parameters").first()).sort("bins")
        top = ax.twiny()
        top.set_xscale(ax.get_xscale())
        top.set_xlim(ax.get_xlim())
        top.set_xticks(params["bins"].to_list(), [f"{p:.2g}" for p in params["added_parameters"]], fontsize=7)
        top.minorticks_off()
        top.set_xlabel(label("added_parameters"))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def slice_grid(sweep: str | Path, path: Path, where: dict | None = None, by: list[str] | None = None,
               per_setting: int = 8) -> Path | None:
    """Originals above reconstructions, captioned with PSNR / SSIM / LPIPS, for the rows matching every
    `where` key (a list means any of), one block per setting of `by`. Reads the images of the shown jobs
    only; None when the slice is empty or has no stored images."""
    rows = scan_shards(sweep)
    for key, value in (where or {}).items():
        rows = rows.filter(pl.col(key).is_in(value) if isinstance(value, list) else pl.col(key) == value)
    by = by or []
    names = rows.collect_schema().names()
    metric_rows = rows.select(*dict.fromkeys([*by, *(c for c in SHOWN if c in names)])).collect()
    if "lpips" not in metric_rows.columns:
        metric_rows = metric_rows.with_columns(pl.lit(None, pl.Float64).alias("lpips"))
    shown = (sort_naturally(metric_rows, [*by, "image_index"]).group_by(by, maintain_order=True).head(per_setting) if by
             else metric_rows.sort("image_index").head(per_setting))
    images = load_images(sweep, shown["job_id"].unique().to_list())
    if shown.is_empty() or images.is_empty():
        return None
    return reconstruction_grid(shown, images, by, path, per_setting)


def gradient_embedding_scatter(rows: pl.LazyFrame, path: Path) -> Path | None:
    """Figure 4: the t-SNE embedding of per-image gradients, one panel per model state (and data set or
    model when they vary), points coloured by label, each panel titled with the mean pairwise cosine of
    its gradients: the number behind the picture's "more similar". Expects `embed_x`, `embed_y`, `label`
    and `mean_cosine_to_others` (the `gradient_embedding` kernel); None without them."""
    names = rows.collect_schema().names()
    if not {"embed_x", "embed_y", "label", "mean_cosine_to_others"} <= set(names):
        return None
    keys = [c for c in ("dataset", "model", "model_state") if c in names]
    points = rows.filter(pl.col("embed_x").is_not_null()).select(
        "job_id", *keys, "label", "embed_x", "embed_y", "mean_cosine_to_others").collect()
    if points.is_empty():
        return None
    # Level order puts untrained before trained: the paper's left and right panels.
    panels = sorted(points.partition_by("job_id", as_dict=False),
                    key=lambda p: tuple(level_key(k)(p[k][0]) for k in keys))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        ax.scatter(panel["embed_x"], panel["embed_y"], c=panel["label"], cmap="tab20", s=12)
        varying = [k for k in keys if points[k].n_unique() > 1] or keys[-1:]
        title = ", ".join(f"{label(k)} {panel[k][0]}" for k in varying)
        ax.set_title(f"{title}\nmean gradient cosine {panel['mean_cosine_to_others'].mean():.3f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("t-SNE dimension 1", fontsize=8)
        ax.set_ylabel("t-SNE dimension 2", fontsize=8)
    fig.suptitle("t-SNE of per-image gradients (colour: the image's class)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# The activation functions of kernels/models/architectures.py, written out so that analysis needs no torch.
# RReLU in eval mode is a leaky ReLU with slope (lower + upper) / 2 = (1/8 + 1/3) / 2.
ACTIVATION_SHAPES = {
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.01 * x),
    "rrelu": lambda x: np.where(x >= 0, x, (1 / 8 + 1 / 3) / 2 * x),
    "gelu": lambda x: 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0))),
}


def activation_inputs_figure(rows: pl.LazyFrame, path: Path, window: float = 2.0) -> Path | None:
    """Figure 8: (a) the density of the inputs each activation function sees, summed over its layers,
    with the share inside [-window, window]; (b) each function's shape over that window beside the
    straight line through its end points, so its departure from linearity is visible. Expects `bin_low`,
    `bin_high`, `count` and `activation` (the `activation_inputs` kernel); None without them."""
    names = rows.collect_schema().names()
    if not {"bin_low", "bin_high", "count", "activation"} <= set(names):
        return None
    histogram = sort_naturally(rows.filter(pl.col("count").is_not_null())
                               .group_by("activation", "bin_low", "bin_high").agg(pl.col("count").sum()).collect(),
                               ["activation", "bin_low"])
    if histogram.is_empty():
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    for (activation,), part in histogram.group_by("activation", maintain_order=True):
        finite = part.filter(pl.col("bin_low").is_finite() & pl.col("bin_high").is_finite())
        total = part["count"].sum()
        width = (finite["bin_high"] - finite["bin_low"]).to_numpy()
        density = finite["count"].to_numpy() / max(total, 1) / width
        inside = finite.filter((pl.col("bin_low") >= -window) & (pl.col("bin_high") <= window))["count"].sum()
        centres = ((finite["bin_low"] + finite["bin_high"]) / 2).to_numpy()
        left.plot(centres, density, label=f"{activation} ({inside / max(total, 1):.0%} in ±{window:g})")
    left.axvspan(-window, window, color="grey", alpha=0.1)
    left.set_xlabel("input to the activation function")
    left.set_ylabel("density (share of inputs per unit)")
    left.set_title("(a) inputs to the activation functions", fontsize=9)
    left.legend(fontsize=7)
    x = np.linspace(-window, window, 201)
    for activation in histogram["activation"].unique(maintain_order=True):
        y = ACTIVATION_SHAPES[activation](x)
        chord = y[0] + (y[-1] - y[0]) * (x - x[0]) / (x[-1] - x[0])
        deviation = np.abs(y - chord).max() / max(np.ptp(y), 1e-12)
        right.plot(x, y, label=f"{activation} (max deviation from chord {deviation:.0%} of range)")
    right.set_xlabel("input")
    right.set_ylabel("output of the activation function")
    right.set_title(f"(b) the functions over [-{window:g}, {window:g}]", fontsize=9)
    right.legend(fontsize=7)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
