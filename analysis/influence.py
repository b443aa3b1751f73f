"""Table I derived from data: does a factor change an attack's quality, and in which direction?

The test, for one attack family, one factor and one metric:
  * each row (one attacked image of one job, so images x seeds) gets the factor's numeric level;
  * rows are split into strata, one per combination of the other factors' levels (and of `dataset`,
    `simulation`, `bins` when present), so that only the tested factor varies within a stratum (the
    architecture is held fixed by its `model` name: its parameter count moves with the data set too);
  * rho is Spearman's rank correlation between level and quality within each stratum that has at least
    two levels and three rows, averaged over strata weighted by their row counts;
  * a 95% percentile bootstrap interval resamples rows with replacement within each stratum
    (`replicates` times, fixed seed); a resample whose level or quality is constant counts as rho = 0;
    a stratum larger than `max_rows` is bootstrapped m-out-of-n: resamples of `max_rows` rows, their
    spread around their own estimate shrunk by sqrt(max_rows / n) (rho is root-n consistent), so a
    million rows cost what `max_rows` rows cost;
  * the factor matters ("✓") when the interval excludes 0; the direction is the sign of rho, with quality
    oriented so that higher is better (PSNR, SSIM, `exact` as they are; LPIPS negated): "↓" means quality
    falls as the level rises. A factor with fewer than two levels in the family's rows is "not varied".

Factor levels, and the columns they come from:
  Batch Size            `batch_size`, else `local_batch_size` (FedAvg kernels)
  Image Resolution      `resolution` (pixels per side) if present, else from `dataset` (RESOLUTION below)
  # Same Label          `same_label` (the kernels' parameter: 0 = all labels distinct) where set, else
                        the largest number of images sharing a `label` within the job's batch
  Model Training State  `model_state`: untrained 0, trained 1
  Network Architecture  `model_parameters`: the target model's exact parameter count, which the kernel
                        declares (its describe(); analysis.shards joins it from the manifest), where the
                        rows also name their `model`
  Practical FedAvg      `local_epochs`, null (FedSGD) counting as 0

The family of a row is its kernel's declared `attack_family` and `attack_mechanism` (the same join),
shown under the paper's names (analysis.paper_marks.family_label).
"""
from __future__ import annotations

import numpy as np
import polars as pl
from scipy.stats import rankdata

from analysis.levels import natural_key
from analysis.paper_marks import FACTORS, PAPER_TABLE_I, family_label, paper_mark
from analysis.tables import needs

# Side of the images in pixels, per data set (the embedded set is 32x32 crops).
RESOLUTION = {"embedded": 32, "cifar10": 32, "cifar100": 32, "imagenet": 224}
ORIENTATION = {"psnr": 1.0, "ssim": 1.0, "exact": 1.0, "lpips": -1.0}
PRIMARY = ("exact", "ssim", "psnr", "lpips")  # the metric a mark is decided on: the first with data
EXTRA_STRATA = ("dataset", "simulation", "bins")
# A factor held fixed through another column while a different factor is tested: a model's parameter count
# also moves with the data set's classes and resolution, so the architecture is held fixed by its name.
HELD_BY = {"Network Architecture": "model"}
# The largest number of images sharing a label within each job's batch (1: all labels distinct).
SAME_LABEL = pl.len().over("job_id", "label").max().over("job_id")


def _level_expressions(names: set[str]) -> dict[str, tuple[pl.Expr, set[str]]]:
    """Factor -> (its level as a float expression, the columns it is derived from)."""
    levels: dict[str, tuple[pl.Expr, set[str]]] = {}
    batch = [c for c in ("batch_size", "local_batch_size") if c in names]
    if batch:
        levels["Batch Size"] = (pl.coalesce(*(pl.col(c).cast(pl.Float64) for c in batch)), set(batch))
    if "resolution" in names:
        levels["Image Resolution"] = (pl.col("resolution").cast(pl.Float64), {"resolution", "dataset"})
    elif "dataset" in names:
        levels["Image Resolution"] = (pl.col("dataset").replace_strict(RESOLUTION, default=None, return_dtype=pl.Float64),
                                      {"dataset"})
    if {"label", "job_id"} <= names:
        counted = SAME_LABEL.cast(pl.Float64)
        levels["# Same Label"] = ((pl.coalesce(pl.col("same_label").cast(pl.Float64), counted)
                                   if "same_label" in names else counted), {"label", "same_label"})
    elif "same_label" in names:
        levels["# Same Label"] = (pl.col("same_label").cast(pl.Float64), {"same_label"})
    if "model_state" in names:
        levels["Model Training State"] = (
            pl.col("model_state").replace_strict({"untrained": 0.0, "trained": 1.0}, default=None,
                                                 return_dtype=pl.Float64), {"model_state"})
    if {"model_parameters", "model"} <= names:  # the count ranks architectures; the name holds one fixed
        levels["Network Architecture"] = (pl.col("model_parameters").cast(pl.Float64), {"model_parameters", "model"})
    if "local_epochs" in names:
        levels["Practical FedAvg"] = (pl.col("local_epochs").cast(pl.Float64).fill_null(0.0), {"local_epochs"})
    return levels


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank) along each row of a 2-D array. Factor levels and
    `exact` take a handful of values: their ranks come from counts per value, without sorting."""
    uniques = np.unique(values)
    if uniques.size > 64:
        return rankdata(values, axis=1)
    rows, k = values.shape[0], uniques.size
    codes = np.searchsorted(uniques, values)
    counts = np.bincount((np.arange(rows)[:, None] * k + codes).ravel(), minlength=rows * k).reshape(rows, k)
    below = np.cumsum(counts, axis=1) - counts
    return (np.take_along_axis(below, codes, axis=1) + (np.take_along_axis(counts, codes, axis=1) + 1) / 2.0)


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of x against the same row of y (2-D arrays); 0 where either is constant."""
    rx, ry = _ranks(x).astype(float), _ranks(y).astype(float)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    numerator = (rx * ry).sum(axis=1)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def stratified_spearman(level: np.ndarray, quality: np.ndarray, stratum: np.ndarray, replicates: int = 1000,
                        seed: int = 0, max_rows: int = 1000) -> tuple[float, float, float, int] | None:
    """(rho, ci_low, ci_high, rows used), or None when no stratum has two levels and three rows."""
    rng = np.random.default_rng(seed)
    used, estimates, boots = 0, [], []
    for s in np.unique(stratum):
        x, y = level[stratum == s], quality[stratum == s]
        if len(x) < 3 or np.unique(x).size < 2:
            continue
        used += len(x)
        rho = _spearman_rows(x[None], y[None])[0]
        estimates.append(len(x) * rho)
        m = min(len(x), max_rows)
        chunk = max(1, 4_000_000 // m)  # bounds memory: replicates x rows at a time
        parts = []
        for start in range(0, replicates, chunk):
            index = rng.integers(0, len(x), size=(min(chunk, replicates - start), m))
            parts.append(_spearman_rows(x[index], y[index]))
        resampled = np.concatenate(parts)
        if m < len(x):
            resampled = rho + (resampled - resampled.mean()) * np.sqrt(m / len(x))
        boots.append(len(x) * resampled)
    if not used:
        return None
    rho = float(np.sum(estimates) / used)
    low, high = np.percentile(np.sum(boots, axis=0) / used, [2.5, 97.5])
    return rho, float(low), float(high), used


EVIDENCE_SCHEMA = {"family": pl.String, "factor": pl.String, "metric": pl.String, "rho": pl.Float64,
                   "ci_low": pl.Float64, "ci_high": pl.Float64, "rows": pl.Int64, "mark": pl.String}


def _families(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows' family and mechanism codes replaced by one `family` column of the paper's labels."""
    pairs = frame.select("attack_family", "attack_mechanism").unique()
    pairs = pairs.with_columns(pl.Series("family", [family_label(f, m) for f, m in pairs.iter_rows()], pl.String))
    return (frame.join(pairs, on=["attack_family", "attack_mechanism"], how="left", nulls_equal=True)
            .drop("attack_family", "attack_mechanism"))


@needs("attack_family")  # rows are grouped by the family their kernel declared
def influence_evidence(rows: pl.LazyFrame, replicates: int = 1000, seed: int = 0,
                       max_rows: int = 1000) -> pl.DataFrame | None:
    """One row per (family, factor, metric) tested: rho, its interval, rows used, the mark; None for rows
    without `attack_family` (a manifest older than the kernels' descriptors: analysis.shards)."""
    names = set(rows.collect_schema().names())
    levels = _level_expressions(names)
    metrics = [m for m in ORIENTATION if m in names]
    mechanism = pl.col("attack_mechanism") if "attack_mechanism" in names else pl.lit(None, pl.String)
    frame = _families(rows.select(pl.col("attack_family"), mechanism.alias("attack_mechanism"),
                                  *(e.alias(f) for f, (e, _) in levels.items()),
                                  *(pl.col(c) for c in dict.fromkeys([*EXTRA_STRATA, *HELD_BY.values()]) if c in names),
                                  *(pl.col(m).cast(pl.Float64) for m in metrics)).collect())
    records = []
    for (family_name,), part in frame.group_by("family", maintain_order=True):
        for factor, (_, sources) in levels.items():
            if part[factor].drop_nulls().n_unique() < 2:
                continue
            strata = [HELD_BY.get(f, f) for f in levels if f != factor] + [c for c in EXTRA_STRATA
                                                                           if c in names and c not in sources]
            for metric in metrics:
                data = part.filter(pl.col(factor).is_not_null() & pl.col(metric).is_not_null())
                if data.is_empty():
                    continue
                stratum = data.select(pl.struct(strata).rank("dense")).to_series().to_numpy() if strata \
                    else np.zeros(len(data))
                result = stratified_spearman(data[factor].to_numpy(), ORIENTATION[metric] * data[metric].to_numpy(),
                                             stratum, replicates, seed, max_rows)
                if result is None:
                    continue
                rho, low, high, used = result
                matters = low > 0 or high < 0
                mark = ("✓" + ("↑" if rho > 0 else "↓")) if matters else "✗"
                records.append({"family": family_name, "factor": factor, "metric": metric, "rho": rho,
                                "ci_low": low, "ci_high": high, "rows": used, "mark": mark})
    return pl.DataFrame(records, schema=EVIDENCE_SCHEMA)


def _primary(evidence: pl.DataFrame) -> pl.DataFrame:
    """Per (family, factor), the row of the first metric in PRIMARY that was tested."""
    order = {m: i for i, m in enumerate(PRIMARY)}
    return (evidence.with_columns(pl.col("metric").replace_strict(order, return_dtype=pl.Int64).alias("_order"))
            .sort("_order").group_by("family", "factor", maintain_order=True).first().drop("_order"))


def _agrees(data_mark: str, paper: str) -> bool:
    """Same ✓/✗, and the same direction where the paper states one."""
    if paper == "–":
        return True
    if data_mark[0] != paper[0]:
        return False
    return len(paper) == 1 or data_mark == paper


def influence_marks(evidence: pl.DataFrame) -> pl.DataFrame:
    """Table I in the paper's shape: one row per family, one column per factor. A cell reads
    'data (rho, metric) | paper', with '≠' when they disagree; 'not varied' when the sweep holds one level."""
    primary = {(r["family"], r["factor"]): r for r in _primary(evidence).iter_rows(named=True)}
    # Rows in the paper's order, then families the paper has no row for, in level order.
    paper_rows = list(PAPER_TABLE_I)
    families = sorted(set(evidence["family"].to_list()), key=lambda f: (
        (0, paper_rows.index(f)) if f in paper_rows else (1, natural_key(f))))
    table = {"family": families}
    for factor in FACTORS:
        cells = []
        for family in families:
            paper = paper_mark(family, factor)
            row = primary.get((family, factor))
            if row is None:
                cells.append(f"not varied | paper {paper}")
                continue
            flag = "" if _agrees(row["mark"], paper) else " ≠"
            cells.append(f"{row['mark']} (ρ={row['rho']:+.2f}, {row['metric']}) | paper {paper}{flag}")
        table[factor] = cells
    return pl.DataFrame(table, schema={"family": pl.String, **{f: pl.String for f in FACTORS}})


def disagreements(evidence: pl.DataFrame) -> pl.DataFrame:
    """The (family, factor) pairs where the data's primary mark and the paper's differ."""
    rows = [{**r, "paper": paper_mark(r["family"], r["factor"])} for r in _primary(evidence).iter_rows(named=True)]
    return pl.DataFrame([r for r in rows if not _agrees(r["mark"], r["paper"])],
                        schema={**evidence.schema, "paper": pl.String})
