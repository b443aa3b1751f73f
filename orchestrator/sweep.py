"""The sweep directory: everything about one sweep lives under one folder.

    grid.yaml            the grid text as first launched (frozen)
    sweep.json           name, scale, kernel, factors, cache folder, creation time
    manifest.parquet     one row per job: id, label, parameters (as columns and as JSON), resources
    shards/<id>.parquet  metrics rows of a finished grid job: the only proof that it is done
    prerequisites/<id>.parquet   the same for jobs other jobs depend on (e.g. a training run)
    images/<id>.parquet  originals and reconstructions as PNG bytes
    failures/<id>.<attempt>.json traceback, host and time of each failed attempt
    provenance.jsonl     one line per launch: git SHA, package versions, host, command
    scheduler/submissions.jsonl  SLURM arrays submitted: array id, job ids per task, resources
    logs/                scheduler logs (logs/slurm/<array>_<task>_0_log.{out,err})
    tmp/                 files being written; renamed into place when complete

A result file is written under tmp/ and then hard-linked into place: a reader never sees a partial
file, and a rerun can never overwrite what a finished job wrote.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.errors import OrchError
from orchestrator.expand import JobSpec, Plan

STALE_TMP_SECONDS = 24 * 3600


def now() -> datetime:
    return datetime.now(timezone.utc)


class Sweep:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    # --- layout -------------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.root / "sweep.json"

    def exists(self) -> bool:
        return self.meta_path.exists()

    def meta(self) -> dict:
        if not self.exists():
            raise OrchError(f"{self.root} is not a sweep directory (no sweep.json)")
        return json.loads(self.meta_path.read_text())

    def result_path(self, job: JobSpec) -> Path:
        return self.root / ("prerequisites" if job.prerequisite else "shards") / f"{job.job_id}.parquet"

    @property
    def cache_dir(self) -> Path:
        return Path(self.meta()["cache_dir"])

    # --- creation -----------------------------------------------------------------------------
    def create(self, plan: Plan, cache_dir: Path) -> None:
        """First launch writes the frozen grid and sweep.json; later launches must use the same grid."""
        grid = plan.grid
        if self.exists():
            meta = self.meta()
            frozen = (self.root / "grid.yaml").read_text()
            if frozen != grid.text or meta["scale"] != grid.scale:
                raise OrchError(
                    f"{self.root} was launched from a different grid or scale ({meta['source']}, scale "
                    f"{meta['scale']}); resume it with `orch resume {self.root}` or pick another --sweep-dir")
        else:
            for sub in ("shards", "prerequisites", "images", "failures", "logs", "tmp"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            self._write_atomic(self.root / "grid.yaml", grid.text.encode())
            meta = {"name": grid.name, "source": grid.source, "scale": grid.scale, "kernel": grid.kernel.name,
                    "factors": grid.factors, "max_attempts": grid.max_attempts,
                    "cache_dir": str(Path(cache_dir).resolve()), "created": now().isoformat()}
            self._write_atomic(self.meta_path, json.dumps(meta, indent=2).encode())
        self._write_manifest(plan)

    def _write_manifest(self, plan: Plan) -> None:
        rows = []
        for job in plan.all_jobs:
            rows.append({"job_id": job.job_id, "kernel": job.kernel, "label": job.label,
                         "prerequisite": job.prerequisite, "requires": list(job.requires),
                         "resources": json.dumps(job.resources), "params": json.dumps(job.params, sort_keys=True)})
        table = pa.Table.from_pylist(rows, schema=pa.schema([
            ("job_id", pa.string()), ("kernel", pa.string()), ("label", pa.string()), ("prerequisite", pa.bool_()),
            ("requires", pa.list_(pa.string())), ("resources", pa.string()), ("params", pa.string())]))
        # Readers that know only Parquet (the analysis layer, users' scripts) find the grid's factors here.
        table = table.replace_schema_metadata({"orch.name": plan.grid.name, "orch.scale": str(plan.grid.scale),
                                               "orch.factors": json.dumps(plan.grid.factors)})
        self._write_table(self.root / "manifest.parquet", table, overwrite=True)

    def jobs(self) -> list[JobSpec]:
        table = pq.read_table(self.root / "manifest.parquet").to_pylist()
        return [JobSpec(r["job_id"], r["kernel"], json.loads(r["params"]), r["label"], json.loads(r["resources"]),
                        tuple(r["requires"]), r["prerequisite"]) for r in table]

    # --- state --------------------------------------------------------------------------------
    def completed(self) -> set[str]:
        done = set()
        for sub in ("shards", "prerequisites"):
            folder = self.root / sub
            if folder.exists():
                done.update(e.name[:-8] for e in os.scandir(folder) if e.name.endswith(".parquet"))
        return done

    def failures(self) -> dict[str, list[dict]]:
        """job id -> failure records, oldest attempt first."""
        found: dict[str, list[dict]] = {}
        folder = self.root / "failures"
        if not folder.exists():
            return found
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.endswith(".json"):
                record = json.loads(Path(entry.path).read_text())
                found.setdefault(record["job_id"], []).append(record)
        return found

    def attempts(self, job_id: str) -> int:
        folder = self.root / "failures"
        return sum(1 for e in os.scandir(folder) if e.name.startswith(job_id + ".")) if folder.exists() else 0

    # --- writes -------------------------------------------------------------------------------
    def publish(self, job: JobSpec, rows: pa.Table, images: pa.Table | None) -> bool:
        """Images first, then the shard that proves the job done. False if a shard was already there."""
        if images is not None and images.num_rows:
            self._write_table(self.root / "images" / f"{job.job_id}.parquet", images, overwrite=True)
        return self._write_table(self.result_path(job), rows, overwrite=False)

    def record_failure(self, job: JobSpec, attempt: int, error: str, traceback_text: str) -> None:
        record = {"job_id": job.job_id, "label": job.label, "attempt": attempt, "error": error,
                  "traceback": traceback_text, "host": socket.gethostname(), "pid": os.getpid(),
                  "time": now().isoformat()}
        path = self.root / "failures" / f"{job.job_id}.{attempt:03d}.json"
        self._write_atomic(path, json.dumps(record, indent=2).encode())

    def append_provenance(self, record: dict) -> None:
        self._append_line(self.root / "provenance.jsonl", record)

    def append_submission(self, record: dict) -> None:
        self._append_line(self.root / "scheduler" / "submissions.jsonl", record)

    @staticmethod
    def _append_line(path: Path, record: dict) -> None:
        # One write() of one line in append mode: concurrent appenders never interleave within a line.
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def _temporary(self, final: Path) -> Path:
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        return self.root / "tmp" / f"{final.name}.{socket.gethostname()}.{os.getpid()}.{time.monotonic_ns()}"

    def _write_table(self, final: Path, table: pa.Table, overwrite: bool) -> bool:
        partial = self._temporary(final)
        pq.write_table(table, partial)
        return self._place(partial, final, overwrite)

    def _write_atomic(self, final: Path, data: bytes) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = self._temporary(final)
        with open(partial, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self._place(partial, final, overwrite=True)

    @staticmethod
    def _place(partial: Path, final: Path, overwrite: bool) -> bool:
        try:
            if overwrite:
                os.replace(partial, final)
                return True
            try:
                os.link(partial, final)  # fails if `final` exists: the first finished result wins
                return True
            except FileExistsError:
                return False
        finally:
            partial.unlink(missing_ok=True)

    def clean_stale_tmp(self) -> int:
        folder, removed = self.root / "tmp", 0
        if folder.exists():
            for entry in os.scandir(folder):
                if time.time() - entry.stat().st_mtime > STALE_TMP_SECONDS:
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
        return removed

    # --- one launcher at a time ---------------------------------------------------------------
    @contextmanager
    def lock(self):
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / ".lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise OrchError(f"{self.root} is being launched or resumed by {holder}; wait for it or stop it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        try:
            yield self
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
