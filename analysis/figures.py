"""Pictures people look at: metric-versus-factor curves (Figures 3, 7, 9, 11, 12) and originals above
reconstructions. Recovery-specific figures (Figures 5 and 10) are in analysis/paper_figures.py."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from PIL import Image  # noqa: E402

from analysis.levels import level_key, natural_levels, sort_naturally  # noqa: E402
from analysis.tables import METRICS  # noqa: E402

# Column -> the words a figure shows for it (axis labels, titles, legends): a reader sees "client batch
# size", never `batch_size`. Every figure of analysis/ names a column through label(); a column missing
# here shows its name with spaces for underscores.
LABELS = {
    "psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓",
    "batch_size": "client batch size", "model_state": "model state", "dataset": "data set", "model": "architecture",
    "activation": "activation function", "resolution": "image side (pixels)", "bins": "imprint bins",
    "same_label": "images sharing a label", "data_seed": "data seed", "model_seed": "model seed",
    "seed": "attack seed", "iterations": "attack iterations", "num_images": "images attacked",
    "labels": "label restoration", "simulation": "server's simulation of local training",
    "local_epochs": "local epochs", "local_batch_size": "local batch size", "local_lr": "local learning rate",
    "train_epochs": "training epochs", "lr": "learning rate", "tv": "total-variation weight",
    "cost_fn": "gradient distance", "exact": "recovered exactly", "added_parameters": "added parameters",
    "metric_mode": "scoring", "bin_cdf": "assumed brightness distribution",
}
# The metrics' names without the arrow saying which way is better, for titles.
METRIC_NAMES = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS"}


def label(column: str) -> str:
    """The words for a column: LABELS, else its name with spaces for underscores."""
    return LABELS.get(column, column.replace("_", " "))


def setting_name(row: dict, keys: list[str]) -> str:
    """A setting of the factors in words, e.g. "client batch size 4, model state trained"."""
    return ", ".join(f"{label(k)} {row[k]}" for k in keys) or "all"


def _in_words(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _x_factor(table: pl.DataFrame, factors: list[str]) -> str | None:
    """The numeric factor with the most levels goes on the x axis; the others become lines."""
    numeric = [f for f in factors if table.schema[f].is_numeric()]
    candidates = numeric or factors
    return max(candidates, key=lambda f: table[f].n_unique()) if candidates else None


def _draw_curves(ax, table: pl.DataFrame, metric: str, x: str | None, lines: list[str]) -> None:
    """One line per setting of `lines`, in level order (so is the legend), over the x factor's levels.
    A text x factor gets one tick per level, in level order, shared by every line: a line that lacks
    a level skips its position instead of shifting onto its neighbour's."""
    table = sort_naturally(table, [*lines, *([x] if x else [])])
    groups = table.partition_by(lines, as_dict=False, maintain_order=True) if lines else [table]
    numeric_x = bool(x) and table.schema[x].is_numeric()
    levels = natural_levels(table[x].drop_nulls().to_list(), x) if x else [0]
    for group in groups:
        xs = group[x].to_list() if x else [0]
        positions = xs if numeric_x else [levels.index(v) if v in levels else np.nan for v in xs]
        mean = group[f"{metric}_mean"].to_numpy().astype(float)
        std = np.nan_to_num(group[f"{metric}_std"].to_numpy().astype(float))  # one image: no spread, no band
        ax.plot(positions, mean, marker="o", label=setting_name(group.row(0, named=True), lines))
        ax.fill_between(positions, mean - std, mean + std, alpha=0.2)
    if x and not numeric_x:
        ax.set_xticks(range(len(levels)), [str(v) for v in levels])
    if numeric_x and levels:
        if levels[0] > 0 and levels[-1] / levels[0] >= 8:
            ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(v) for v in levels])
    ax.set_xlabel(label(x) if x else "")
    ax.set_ylabel(label(metric))
    ax.grid(alpha=0.3)


def metric_curves(table: pl.DataFrame, factors: list[str], path: Path, x: str | None = None,
                  panel: str | None = None) -> Path:
    """Mean with a ±1 std band against the x factor, one line per setting of the other factors: one
    column of panels per metric and, with `panel` (say `dataset`, as in Figure 3(a)), one row per value.
    `table` is a factor table (`tables.summarize`); the file format follows the suffix (.png, .pdf)."""
    fig = metric_curves_figure(table, factors, x, panel)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def metric_curves_figure(table: pl.DataFrame, factors: list[str], x: str | None = None,
                         panel: str | None = None) -> plt.Figure:
    """The figure `metric_curves` writes, still open: lines, legend entries, ticks and panels all in
    level order (analysis/levels.py)."""
    metrics = [m for m in METRICS if f"{m}_mean" in table.columns and table[f"{m}_mean"].null_count() < len(table)]
    x = x or _x_factor(table, [f for f in factors if f != panel])
    lines = [f for f in factors if f not in (x, panel)]
    panels = table.partition_by(panel, as_dict=False, maintain_order=True) if panel else [table]
    if panel:
        panels = sorted(panels, key=lambda p: level_key(panel)(p[panel][0]))
    fig, axes = plt.subplots(len(panels), max(1, len(metrics)), figsize=(4.2 * max(1, len(metrics)),
                                                                         3.4 * len(panels)), squeeze=False)
    for row_axes, part in zip(axes, panels):
        for ax, metric in zip(row_axes, metrics):
            _draw_curves(ax, part, metric, x, lines)
            if panel:
                ax.set_title(f"{label(panel)}: {part[panel][0]}", fontsize=9)
    if lines:
        axes[0][0].legend(fontsize=8)
    against = f" against {label(x)}" if x else ""
    fig.suptitle(f"{_in_words([METRIC_NAMES[m] for m in metrics]) or 'metrics'}{against} "
                 "(mean ± std over images and seeds)", fontsize=9)
    fig.tight_layout()
    return fig


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


RECONSTRUCTIONS_TITLE = "Originals (top) and their reconstructions (bottom)"


def reconstruction_grid(rows: pl.DataFrame, images: pl.DataFrame, factors: list[str], path: Path,
                        per_setting: int = 8, title: str = RECONSTRUCTIONS_TITLE) -> Path:
    """For each setting of the factors: a row of originals above a row of their reconstructions,
    each reconstruction captioned with its PSNR, SSIM and LPIPS; `title` says what the rows show (an
    attack's own words, say "Robbing the Fed: originals (top) and exact recoveries (bottom)")."""
    joined = sort_naturally(rows.join(images, on=["job_id", "image_index"], how="inner"), [*factors, "image_index"])
    settings = joined.partition_by(factors, as_dict=False, maintain_order=True) if factors else [joined]
    if len(settings) > 1 and max(len(s) for s in settings) == 1:  # one image per setting (e.g. Fishing)
        return _one_image_per_setting(settings, factors, path, title)
    columns = max(1, min(per_setting, max(len(s) for s in settings)))
    fig, axes = plt.subplots(2 * len(settings), columns, figsize=(1.35 * columns + 1.6, 2.9 * len(settings)),
                             squeeze=False)
    for s, setting in enumerate(settings):
        top, bottom = axes[2 * s], axes[2 * s + 1]
        for c in range(columns):
            for ax in (top[c], bottom[c]):
                ax.axis("off")
            if c >= len(setting):
                continue
            row = setting.row(c, named=True)
            top[c].imshow(_decode(row["original_png"]))
            bottom[c].imshow(_decode(row["reconstruction_png"]))
            lp = "–" if row.get("lpips") is None else f"{row['lpips']:.2f}"
            bottom[c].set_title(_scores(row), fontsize=6)
        top[0].set_title(setting_name(setting.row(0, named=True), factors), fontsize=8, loc="left")
        top[0].text(-0.1, 0.5, "original", transform=top[0].transAxes, rotation=90, va="center", ha="right", fontsize=7)
        bottom[0].text(-0.1, 0.5, "reconstruction", transform=bottom[0].transAxes, rotation=90, va="center",
                       ha="right", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _scores(row: dict) -> str:
    """A reconstruction's caption: its PSNR, SSIM and LPIPS (– where LPIPS was not computed)."""
    lp = "–" if row.get("lpips") is None else f"{row['lpips']:.2f}"
    return f"{row['psnr']:.1f} dB\nSSIM {row['ssim']:.2f}, LPIPS {lp}"


def _one_image_per_setting(settings: list[pl.DataFrame], factors: list[str], path: Path, title: str) -> Path:
    """Settings side by side: originals above reconstructions, the setting's values as column title."""
    fig, axes = plt.subplots(2, len(settings), figsize=(1.5 * len(settings) + 1.0, 3.6), squeeze=False)
    for c, setting in enumerate(settings):
        row = setting.row(0, named=True)
        draw_pair(axes[0][c], axes[1][c], row)
        axes[0][c].set_title("\n".join(f"{label(k)} {row[k]}" for k in factors), fontsize=6)
        axes[1][c].set_xlabel(_scores(row), fontsize=6)
    return save_pairs(fig, axes, path, fontsize=7, title=title)


def draw_pair(top, bottom, row: dict) -> None:
    """An original above its reconstruction, without ticks."""
    top.imshow(_decode(row["original_png"]))
    bottom.imshow(_decode(row["reconstruction_png"]))
    for ax in (top, bottom):
        ax.set_xticks([])
        ax.set_yticks([])


def save_pairs(fig, axes, path: Path, fontsize: int, title: str) -> Path:
    """Names the two rows of a figure of draw_pair columns, titles it and writes it."""
    axes[0][0].set_ylabel("original", fontsize=fontsize)
    axes[1][0].set_ylabel("reconstruction", fontsize=fontsize)
    fig.suptitle(title, fontsize=fontsize + 1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
