"""`orch report`: the factor table, the paper's tables that the sweep has data for, and the figures,
under <sweep>/report/ (tables as CSV, Markdown and LaTeX in report/tables/; figures as PNG, and PDF on
request). With `html`, also one self-contained page (analysis/html_report.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl

from analysis.export import write_table
from analysis.figures import metric_curves, reconstruction_grid
from analysis.influence import PRIMARY, influence_evidence, influence_marks
from analysis.levels import level_key, sort_naturally
from analysis.paper_figures import (activation_inputs_figure, exact_recovery_curve, gradient_embedding_scatter,
                                    label_repetition_row)
from analysis.paper_tables import PaperTable, paper_tables
from analysis.shards import descriptors_note, factors, load_images, scan_shards
from analysis.tables import applies, summarize, to_markdown

MAX_GRIDS = 200  # per-configuration grids in one page; beyond that the page is too heavy to open


@dataclass(frozen=True)
class Drawing:
    """A figure of the report and the row columns it is drawn from: drawn where the rows hold them all."""
    stem: str  # file name under report/
    title: str
    needs: tuple[str, ...]
    draw: Callable[[pl.LazyFrame, Path], Path | None] | None = None  # (rows, png); None: drawn by report.py


METRIC_CURVES = Drawing("metrics", "metrics against the grid's factors (mean ± std)", ("psnr",))
RECONSTRUCTIONS = Drawing("reconstructions", "originals above reconstructions, first images of each setting",
                          ("image_index", "psnr"))
LABEL_REPETITION = Drawing("label_repetition", "label repetition, as in Figure 5", ("image_index", "psnr", "same_label"))
PAPER_FIGURES = (
    Drawing("exact_recovery", "share of exact recoveries against bins, as in Figure 10",
            ("bins", "batch_size", "exact"), exact_recovery_curve),
    Drawing("gradient_embedding", "t-SNE of per-image gradients, as in Figure 4",
            ("embed_x", "embed_y", "label", "mean_cosine_to_others"), gradient_embedding_scatter),
    Drawing("activation_inputs", "inputs to the activation functions and their shapes, as in Figure 8",
            ("bin_low", "bin_high", "count", "activation"), activation_inputs_figure),
)


@dataclass
class Report:
    table: pl.DataFrame
    files: list[Path]
    notes: list[str]  # why a metric is missing, once each
    tables: list[PaperTable] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)  # (title, PNG)
    grids: list[tuple[str, Path]] = field(default_factory=list)  # (configuration, PNG), for the page


def _figure(draw: Callable[[Path], Path | None], png: Path, pdf: bool) -> Path | None:
    """Draws to PNG and, on request, once more to PDF beside it."""
    made = draw(png)
    if made is not None and pdf:
        draw(png.with_suffix(".pdf"))
    return made


def _shown_rows(metric_rows: pl.DataFrame, by: list[str], per_setting: int = 8) -> pl.DataFrame:
    ordered = sort_naturally(metric_rows, [*by, "image_index"])
    return ordered.group_by(by, maintain_order=True).head(per_setting) if by else ordered.head(per_setting)


def write_report(sweep: str | Path, out: str | Path | None = None, pdf: bool = False, grids: bool = False,
                 replicates: int = 1000) -> Report:
    """Every table and figure the sweep has data for. `grids`: one reconstruction grid per configuration
    (for the HTML page); `replicates`: bootstrap resamples behind Table I."""
    sweep = Path(sweep)
    out = Path(out) if out else sweep / "report"
    rows = scan_shards(sweep)  # raises before anything is written when the folder holds no results
    by = factors(sweep)
    out.mkdir(parents=True, exist_ok=True)
    names = rows.collect_schema().names()
    table = summarize(rows, by)
    files = [out / "summary.csv", out / "summary.md"]
    table.write_csv(files[0])
    files[1].write_text(to_markdown(table))
    files += write_table(table, out / "tables" / "summary", "Metrics by factor (mean and std over images and seeds)")[2:]
    report = Report(table, files, [], [PaperTable("summary", "Metrics by factor (mean, std over images and seeds)",
                                                  table)])
    if note := descriptors_note(sweep):
        report.notes.append(note)

    evidence = influence_evidence(rows, replicates=replicates)
    if evidence is not None and not evidence.is_empty():
        report.tables += [PaperTable("table1_influence", "Table I from data: does each factor change the attack's "
                                     f"quality? Each cell: the data's mark (rho, on the first of {', '.join(PRIMARY)} "
                                     "the family's rows have) | the paper's mark; ≠ where they disagree",
                                     influence_marks(evidence)),
                          PaperTable("table1_evidence", "Table I evidence: stratified Spearman rho between factor "
                                     "level and quality (higher is better), 95% bootstrap interval", evidence)]
    report.tables += paper_tables(rows)
    for paper_table in report.tables[1:]:
        report.files += write_table(paper_table.table, out / "tables" / paper_table.name, paper_table.caption)

    if applies(METRIC_CURVES, rows):  # the gradient analyses score no reconstruction
        curves = _figure(lambda p: metric_curves(table, by, p), out / f"{METRIC_CURVES.stem}.png", pdf)
        report.files.append(curves)
        report.figures.append((METRIC_CURVES.title, curves))
        if "dataset" in by and table["dataset"].n_unique() > 1 and len(by) > 1:
            panels = _figure(lambda p: metric_curves(table, by, p, panel="dataset"), out / "metrics_by_dataset.png",
                             pdf)
            report.figures.append(("metrics by data set, as in Figure 3(a)", panels))
    for drawing in PAPER_FIGURES:
        if applies(drawing, rows) and (made := _figure(lambda p, d=drawing: d.draw(rows, p),
                                                         out / f"{drawing.stem}.png", pdf)) is not None:
            report.figures.append((drawing.title, made))

    if applies(RECONSTRUCTIONS, rows):  # a kernel that reconstructs images
        _reconstruction_figures(sweep, rows, by, out, pdf, grids, report)
    report.files += [path for _, path in report.figures if path not in report.files]
    if "lpips_note" in names:
        report.notes += sorted(rows.select(pl.col("lpips_note").drop_nulls().unique()).collect()["lpips_note"].to_list())
    return report


def _reconstruction_figures(sweep: Path, rows: pl.LazyFrame, by: list[str], out: Path, pdf: bool, grids: bool,
                            report: Report) -> None:
    """Originals above reconstructions: first images of each setting, Figure 5's row when labels repeat,
    and (for the page) one grid per configuration. Images are read only here, only for the jobs shown."""
    names = rows.collect_schema().names()
    shown_columns = ["job_id", "image_index", *by, *(m for m in ("psnr", "ssim", "lpips") if m in names)]
    if "same_label" in names:
        shown_columns.append("same_label")
    metric_rows = rows.select(*dict.fromkeys(shown_columns), *(["label"] if "label" in names else [])).collect()
    if "lpips" not in metric_rows.columns:
        metric_rows = metric_rows.with_columns(pl.lit(None, pl.Float64).alias("lpips"))
    shown = _shown_rows(metric_rows, by)
    images = load_images(sweep, shown["job_id"].unique().to_list())
    if len(images):
        grid = _figure(lambda p: reconstruction_grid(shown, images, by, p), out / f"{RECONSTRUCTIONS.stem}.png", pdf)
        report.files.append(grid)
        report.figures.append((RECONSTRUCTIONS.title, grid))
    if applies(LABEL_REPETITION, rows) and metric_rows["same_label"].n_unique() > 1:
        first_jobs = metric_rows.group_by("same_label").agg(pl.col("job_id").min())["job_id"].to_list()
        repeated = metric_rows.filter(pl.col("job_id").is_in(first_jobs))
        repetition_images = load_images(sweep, first_jobs)
        if len(repetition_images):
            row = _figure(lambda p: label_repetition_row(repeated, repetition_images, p),
                          out / f"{LABEL_REPETITION.stem}.png", pdf)
            report.figures.append((LABEL_REPETITION.title, row))
    if grids:
        report.grids = _configuration_grids(sweep, metric_rows, by, out / "grids")


def _configuration_grids(sweep: Path, metric_rows: pl.DataFrame, by: list[str], folder: Path) -> list[tuple[str, Path]]:
    """One grid per setting of the grid's factors (at most MAX_GRIDS), each reading its own jobs' images."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = metric_rows.partition_by(by, as_dict=False, maintain_order=True) if by else [metric_rows]
    settings = sorted(settings, key=lambda s: tuple(level_key(f)(s[f][0]) for f in by))[:MAX_GRIDS]
    made = []
    for i, setting in enumerate(settings):
        shown = _shown_rows(setting, by)
        images = load_images(sweep, shown["job_id"].unique().to_list())
        if images.is_empty():
            continue
        name = ", ".join(f"{f}={setting[f][0]}" for f in by) or "all"
        made.append((name, reconstruction_grid(shown, images, [], folder / f"configuration_{i:03d}.png")))
    return made
