"""`orch report`: the factor table (CSV, Markdown) and the two pictures, under <sweep>/report/."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from analysis.figures import metric_curves, reconstruction_grid
from analysis.shards import factors, load_images, scan_shards
from analysis.tables import summarize, to_markdown


@dataclass
class Report:
    table: pl.DataFrame
    files: list[Path]
    notes: list[str]  # why a metric is missing, once each


def write_report(sweep: str | Path, out: str | Path | None = None) -> Report:
    sweep = Path(sweep)
    out = Path(out) if out else sweep / "report"
    out.mkdir(parents=True, exist_ok=True)
    by = factors(sweep)
    rows = scan_shards(sweep)
    table = summarize(rows, by)
    files = [out / "summary.csv", out / "summary.md"]
    table.write_csv(files[0])
    files[1].write_text(to_markdown(table))
    files.append(metric_curves(table, by, out / "metrics.png"))
    # Only the images of the jobs shown are read: the first few of each setting.
    metric_rows = rows.select(["job_id", "image_index", *by, "psnr", "ssim", "lpips"]).collect()
    shown = metric_rows.sort([*by, "image_index"]).group_by(by, maintain_order=True).head(8) if by else metric_rows.head(8)
    images = load_images(sweep, shown["job_id"].unique().to_list())
    if len(images):
        files.append(reconstruction_grid(shown, images, by, out / "reconstructions.png"))
    notes = []
    if "lpips_note" in rows.collect_schema().names():
        notes = rows.select(pl.col("lpips_note").drop_nulls().unique()).collect()["lpips_note"].to_list()
    return Report(table, files, sorted(notes))
