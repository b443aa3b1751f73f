"""What a report says about a sweep's progress: its manifest and failure records, with each job's state
as the orchestrator decides it (`orch status`: shards, failure records and the SLURM queue), passed in
so that there is one definition of a job's state."""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl


def job_status(sweep: str | Path, states: dict[str, str]) -> pl.DataFrame:
    """One row per job of the manifest: job_id, kernel, label, prerequisite, state (from `states`),
    attempts (failure records) and the last error's final line."""
    sweep = Path(sweep)
    manifest = pl.read_parquet(sweep / "manifest.parquet", columns=["job_id", "kernel", "label", "prerequisite"])
    failures = []
    for path in sorted((sweep / "failures").glob("*.json")):
        record = json.loads(path.read_text())
        error = str(record.get("error", "")).strip().splitlines() or ["(no message)"]
        failures.append({"job_id": path.name.split(".")[0], "attempt": int(record.get("attempt", 0)),
                         "error": error[-1]})
    failed = (pl.DataFrame(failures, schema={"job_id": pl.String, "attempt": pl.Int64, "error": pl.String})
              .sort("attempt").group_by("job_id").agg(pl.len().alias("attempts"), pl.col("error").last()))
    table = manifest.join(failed, on="job_id", how="left").with_columns(pl.col("attempts").fill_null(0))
    return table.with_columns(pl.col("job_id").replace_strict(states, default="unknown").alias("state"))


def status_counts(status: pl.DataFrame) -> pl.DataFrame:
    """Jobs by kind (grid job or prerequisite) and state."""
    kind = pl.when(pl.col("prerequisite")).then(pl.lit("prerequisite")).otherwise(pl.lit("grid job"))
    return status.group_by(kind.alias("kind"), "state").agg(pl.len().alias("jobs")).sort("kind", "state")


def failure_groups(status: pl.DataFrame) -> pl.DataFrame:
    """Jobs that are not done and have failure records, grouped by their last error."""
    failed = status.filter((pl.col("state") != "done") & (pl.col("attempts") > 0))
    return (failed.group_by("error").agg(pl.len().alias("jobs"), pl.col("job_id").sort().head(3).str.join(", ")
                                         .alias("examples")).sort("jobs", descending=True))


def provenance(sweep: str | Path) -> list[dict]:
    """Every launch recorded in provenance.jsonl (git SHA, packages, host, python, command)."""
    path = Path(sweep) / "provenance.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
