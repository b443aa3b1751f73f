"""Pictures people look at: metric-versus-factor curves and originals above reconstructions."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from PIL import Image  # noqa: E402

from analysis.tables import METRICS  # noqa: E402

LABELS = {"psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓"}


def _x_factor(table: pl.DataFrame, factors: list[str]) -> str | None:
    """The numeric factor with the most levels goes on the x axis; the others become lines."""
    numeric = [f for f in factors if table.schema[f].is_numeric()]
    candidates = numeric or factors
    return max(candidates, key=lambda f: table[f].n_unique()) if candidates else None


def _group_name(row: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={row[k]}" for k in keys) or "all"


def metric_curves(table: pl.DataFrame, factors: list[str], path: Path) -> Path:
    """One panel per metric: mean with a ±1 std band against the x factor, one line per other setting."""
    metrics = [m for m in METRICS if f"{m}_mean" in table.columns and table[f"{m}_mean"].null_count() < len(table)]
    x = _x_factor(table, factors)
    others = [f for f in factors if f != x]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    groups = table.partition_by(others, as_dict=False, maintain_order=True) if others else [table]
    for ax, metric in zip(axes[0], metrics):
        for group in groups:
            group = group.sort(x) if x else group
            xs = group[x].to_list() if x else [0]
            positions = xs if x and table.schema[x].is_numeric() else list(range(len(xs)))
            mean = group[f"{metric}_mean"].to_numpy().astype(float)
            std = np.nan_to_num(group[f"{metric}_std"].to_numpy().astype(float))
            ax.plot(positions, mean, marker="o", label=_group_name(group.row(0, named=True), others))
            ax.fill_between(positions, mean - std, mean + std, alpha=0.2)
            if x and not table.schema[x].is_numeric():
                ax.set_xticks(positions, [str(v) for v in xs])
        if x and table.schema[x].is_numeric():
            if table[x].min() > 0 and table[x].max() / table[x].min() >= 8:
                ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(table[x].unique().to_list()), [str(v) for v in sorted(table[x].unique().to_list())])
        ax.set_xlabel(x or "")
        ax.set_ylabel(LABELS[metric])
        ax.grid(alpha=0.3)
    if others:
        axes[0][0].legend(fontsize=8)
    fig.suptitle("mean ± std over images and seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def reconstruction_grid(rows: pl.DataFrame, images: pl.DataFrame, factors: list[str], path: Path,
                        per_setting: int = 8) -> Path:
    """For each setting of the factors: a row of originals above a row of their reconstructions,
    each reconstruction captioned with its PSNR / SSIM / LPIPS."""
    joined = rows.join(images, on=["job_id", "image_index"], how="inner").sort([*factors, "image_index"])
    settings = joined.partition_by(factors, as_dict=False, maintain_order=True) if factors else [joined]
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
            bottom[c].set_title(f"{row['psnr']:.1f} dB\n{row['ssim']:.2f} / {lp}", fontsize=6)
        top[0].set_title(_group_name(setting.row(0, named=True), factors), fontsize=8, loc="left")
        top[0].text(-0.1, 0.5, "original", transform=top[0].transAxes, rotation=90, va="center", ha="right", fontsize=7)
        bottom[0].text(-0.1, 0.5, "reconstruction", transform=bottom[0].transAxes, rotation=90, va="center",
                       ha="right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
