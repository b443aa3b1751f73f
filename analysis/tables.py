"""Mean and standard deviation of each metric by the grid's factors; and `needs`, how every table and
figure of the report states the columns it is made from."""
from __future__ import annotations

import functools
from collections.abc import Callable

import polars as pl

from analysis.levels import sort_naturally

METRICS = ("psnr", "ssim", "lpips")


def needs(*columns: str) -> Callable:
    """Declares the row columns a table is made from (`table.needs`): it applies to a sweep whose rows hold
    them all, and returns None for any other, so a sweep lacking one column skips exactly that table."""
    def declare(make: Callable) -> Callable:
        @functools.wraps(make)
        def table(rows: pl.LazyFrame, *args, **kwargs):
            return make(rows, *args, **kwargs) if applies(table, rows) else None
        table.needs = columns
        return table
    return declare


def applies(made_from, rows: pl.LazyFrame) -> bool:
    """Whether the rows hold every column `made_from` (a table, or a figure of the report) needs."""
    return set(made_from.needs) <= set(rows.collect_schema().names())


def summarize(rows: pl.LazyFrame, by: list[str]) -> pl.DataFrame:
    """One row per combination of `by`, in level order (analysis/levels.py): images, jobs, and mean /
    std of each metric present. LPIPS is averaged over the images that have a value; `lpips_n` says
    how many did."""
    present = [m for m in METRICS if m in rows.collect_schema().names()]
    aggregations = [pl.len().alias("images"), pl.col("job_id").n_unique().alias("jobs")]
    for metric in present:
        aggregations += [pl.col(metric).mean().alias(f"{metric}_mean"), pl.col(metric).std().alias(f"{metric}_std")]
    if "lpips" in present:
        aggregations.append(pl.col("lpips").is_not_null().sum().alias("lpips_n"))
    grouped = rows.group_by(by) if by else rows.select(pl.all())
    table = grouped.agg(aggregations) if by else rows.select(aggregations)
    return sort_naturally(table.collect(), by) if by else table.collect()


def markdown_cell(text: str) -> str:
    """A table cell's text as Markdown: a `|` inside it would end the cell (Table I's cells read
    "data | paper"), and a line break would end the row."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", " ").replace("\n", " ")


def to_markdown(table: pl.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table: exactly one cell per column on every row."""
    header = "| " + " | ".join(markdown_cell(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    lines = [header, rule]
    for row in table.iter_rows():
        cells = [("" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else markdown_cell(str(v)))
                 for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compact(table: pl.DataFrame) -> pl.DataFrame:
    """For a terminal: each metric as one 'mean ± std' column."""
    columns = [c for c in table.columns if not any(c.startswith(f"{m}_") for m in METRICS)]
    out = table.select(columns)
    for metric in METRICS:
        if f"{metric}_mean" not in table.columns:
            continue
        mean, std = table[f"{metric}_mean"], table[f"{metric}_std"]
        out = out.with_columns(pl.Series(metric, [
            "–" if m is None else f"{m:.3f} ± {0.0 if s is None else s:.3f}" for m, s in zip(mean, std)]))
    return out
