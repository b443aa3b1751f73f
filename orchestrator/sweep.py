"""The sweep directory: everything about one sweep lives under one folder.

    grid.yaml            the grid text as first launched (frozen)
    manifest.parquet     one row per job: id, label, parameters (as JSON), resources, and what its
                         kernel's describe(params) says of it (one column per key, e.g. attack_family)
    sweep.json           name, scale, kernel, factors, cache folder, creation time: written last, so
                         a folder without it is a launch killed while creating the sweep
    shards/<id>.parquet  metrics rows of a finished grid job: the only proof that it is done
    prerequisites/<id>.parquet   the same for jobs other jobs depend on (e.g. a training run)
    images/<id>.parquet  originals and reconstructions as PNG bytes, of the copy whose shard is published
    images/<id>.rows.<copy>  rows staged by one copy of a job while it publishes (see publish)
    failures/<id>.<attempt>.json traceback, host, time and whether a rerun can help, per failed attempt
    running/<id>.json    a job running on the local executor now: worker and launcher pid, host, start
    provenance.jsonl     one line per launch: git SHA, package versions, host, command
    scheduler/submissions.jsonl  SLURM arrays submitted: array id, job ids per task, resources
    scheduler/intents.jsonl      one line before each sbatch: an array whose launcher died is adopted
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
from orchestrator.registry import get_kernel

STALE_TMP_SECONDS = 24 * 3600
_SUBFOLDERS = ("shards", "prerequisites", "images", "failures", "logs", "tmp")
# What a first launch writes before sweep.json: a folder holding only these is one to launch into again.
_LEFT_BY_A_KILLED_LAUNCH = {*_SUBFOLDERS, "grid.yaml", "manifest.parquet", ".lock"}


def now() -> datetime:
    return datetime.now(timezone.utc)


def _alive(pid) -> bool:
    """Whether a process with this id exists on this host."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _descriptor_columns(jobs: list[JobSpec], taken: set[str]) -> dict[str, pa.Array]:
    """What each job's kernel says of it (`describe(params)`, optional; for the analysis layer, e.g. an
    attack family or a model's size), one column per key, typed by its values, null where a job's kernel
    does not give that key. Read from the declaration only: shards and job ids do not change."""
    described = []
    for job in jobs:
        describe = getattr(get_kernel(job.kernel), "describe", None)
        described.append(dict(describe(job.params)) if describe else {})
    names = list(dict.fromkeys(name for values in described for name in values))
    if clash := sorted(set(names) & taken):
        raise ValueError(f"kernel descriptors {clash} clash with the manifest's own columns")
    columns = {}
    for name in names:
        values = [d.get(name) for d in described]
        try:
            column = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            kinds = sorted({type(v).__name__ for v in values if v is not None})
            raise ValueError(f"descriptor {name!r} mixes value types {kinds} across kernels: {error}") from None
        columns[name] = column if column.type != pa.null() else pa.array(values, pa.string())
    return columns


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
        """sweep.json, or an OrchError that says what the folder is instead of a sweep."""
        if not self.meta_path.is_file():
            raise OrchError(self._not_a_sweep())
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise OrchError(f"{self.meta_path}: unreadable ({error}); it is written in one atomic step, so "
                            "something else changed it: restore it or launch into a new --sweep-dir") from None
        if not isinstance(meta, dict) or not {"name", "scale", "max_attempts", "cache_dir"} <= meta.keys():
            raise OrchError(f"{self.meta_path}: not the metadata of a sweep (expected name, scale, max_attempts, "
                            "cache_dir)")
        return meta

    def _not_a_sweep(self) -> str:
        root = self.root
        if not root.exists():
            return f"{root}: no such sweep directory"
        if root.is_file():
            hint = (f"; a grid file is launched: orch launch {root}" if root.suffix in (".yaml", ".yml")
                    else "")
            return f"{root} is a file, not a sweep directory{hint}"
        if (root / "grid.yaml").exists() or (root / "tmp").exists():
            return (f"{root}: a launch was killed before it finished creating this sweep (no sweep.json); "
                    f"launch the grid again with --sweep-dir {root}")
        return f"{root} is not a sweep directory (no sweep.json)"

    def check(self) -> dict:
        """Everything a command needs to read the sweep (sweep.json and the manifest); returns sweep.json."""
        meta = self.meta()
        self.jobs()
        return meta

    def check_target(self) -> None:
        """Before a launch creates anything: the folder is absent, a sweep, or what a killed launch left."""
        if self.root.exists() and not self.root.is_dir():
            raise OrchError(f"--sweep-dir {self.root} is a file; a sweep directory is a folder (absent or a sweep)")
        if self.root.is_dir() and not self.exists():
            foreign = sorted(e.name for e in os.scandir(self.root) if e.name not in _LEFT_BY_A_KILLED_LAUNCH)
            if foreign:
                shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                raise OrchError(f"--sweep-dir {self.root} is a folder that is not a sweep (it holds {shown}); "
                                "pick a new or empty folder")

    def check_compatible(self, plan: Plan) -> None:
        """An existing sweep is continued only by the grid and scale it was first launched from."""
        if not self.exists():
            return
        meta = self.meta()
        try:
            frozen = (self.root / "grid.yaml").read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise OrchError(f"{self.root / 'grid.yaml'}: unreadable ({error})") from None
        if frozen != plan.grid.text or meta["scale"] != plan.grid.scale:
            raise OrchError(
                f"{self.root} was launched from a different grid or scale ({meta.get('source')}, scale "
                f"{meta['scale']}); resume it with `orch resume {self.root}` or pick another --sweep-dir")

    def result_path(self, job: JobSpec) -> Path:
        return self.root / ("prerequisites" if job.prerequisite else "shards") / f"{job.job_id}.parquet"

    @property
    def cache_dir(self) -> Path:
        return Path(self.meta()["cache_dir"])

    # --- creation -----------------------------------------------------------------------------
    def create(self, plan: Plan, cache_dir: Path) -> None:
        """First launch writes the frozen grid, the manifest, then sweep.json; later launches must use the
        same grid. sweep.json is the commit point: each file is written atomically, and a kill before the
        last write leaves a folder every command names as unfinished and a launch completes."""
        self.check_compatible(plan)
        if self.exists():
            self._write_manifest(plan)  # same grid: the same jobs, rewritten in one atomic step
            return
        grid = plan.grid
        for sub in _SUBFOLDERS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._write_atomic(self.root / "grid.yaml", grid.text.encode())
        self._write_manifest(plan)
        meta = {"name": grid.name, "source": grid.source, "scale": grid.scale, "kernel": grid.kernel.name,
                "factors": grid.factors, "max_attempts": grid.max_attempts,
                "cache_dir": str(Path(cache_dir).resolve()), "created": now().isoformat()}
        self._write_atomic(self.meta_path, json.dumps(meta, indent=2).encode())

    def _write_manifest(self, plan: Plan) -> None:
        rows = []
        for job in plan.all_jobs:
            rows.append({"job_id": job.job_id, "kernel": job.kernel, "label": job.label,
                         "prerequisite": job.prerequisite, "requires": list(job.requires),
                         "resources": json.dumps(job.resources), "params": json.dumps(job.params, sort_keys=True)})
        table = pa.Table.from_pylist(rows, schema=pa.schema([
            ("job_id", pa.string()), ("kernel", pa.string()), ("label", pa.string()), ("prerequisite", pa.bool_()),
            ("requires", pa.list_(pa.string())), ("resources", pa.string()), ("params", pa.string())]))
        descriptors = _descriptor_columns(plan.all_jobs, set(table.column_names))
        for name, column in descriptors.items():
            table = table.append_column(name, column)
        # Readers that know only Parquet (the analysis layer, users' scripts) find the grid's factors here,
        # and which columns are the kernels' descriptors of their jobs.
        table = table.replace_schema_metadata({"orch.name": plan.grid.name, "orch.scale": str(plan.grid.scale),
                                               "orch.factors": json.dumps(plan.grid.factors),
                                               "orch.descriptors": json.dumps(list(descriptors))})
        self._write_table(self.root / "manifest.parquet", table, overwrite=True)

    def jobs(self) -> list[JobSpec]:
        path = self.root / "manifest.parquet"
        try:
            table = pq.read_table(path).to_pylist()
            return [JobSpec(r["job_id"], r["kernel"], json.loads(r["params"]), r["label"],
                            json.loads(r["resources"]), tuple(r["requires"]), r["prerequisite"]) for r in table]
        except (OSError, KeyError, TypeError, ValueError, pa.ArrowException) as error:
            problem = "missing" if not path.exists() else f"unreadable ({str(error).splitlines()[0][:200]})"
            raise OrchError(f"{path}: {problem}; rewrite it with the sweep's own grid: orch launch "
                            f"{self.root / 'grid.yaml'} --sweep-dir {self.root}"
                            + (f" --scale {self.meta()['scale']}" if self.meta()["scale"] else "")) from None

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
                record.setdefault("retryable", True)  # records written before the key existed
                found.setdefault(record["job_id"], []).append(record)
        return found

    def attempts(self, job_id: str) -> int:
        folder = self.root / "failures"
        return sum(1 for e in os.scandir(folder) if e.name.startswith(job_id + ".")) if folder.exists() else 0

    # --- writes -------------------------------------------------------------------------------
    def publish(self, job: JobSpec, rows: pa.Table, images: pa.Table | None) -> bool:
        """Makes the job done: its shard, and its images if it has any. True if this call's result is the
        one published, False if another copy's already was.

        Two copies of one job may run at once (a requeued SLURM task beside its original on a lost node,
        an orphaned array beside its resubmission). The shard is first-wins, and the images follow the
        same rule, so that they always belong to the published shard. With images, in three steps:

          1. this copy's rows are staged as images/<id>.rows.<copy> (no reader looks there);
          2. its images are hard-linked to images/<id>.parquet, first wins: the copy that wins this link
             owns the job, and the file says which copy that is (Parquet metadata orch.copy);
          3. the owner's staged rows are hard-linked to the shard, first wins, then unlinked.

        Step 3 is the same whoever runs it: a copy that lost step 2 completes step 3 with the owner's
        staged rows, not its own. So a kill at any moment leaves no images and no shard (the job reruns),
        images without a shard (the job reruns and its rerun publishes the owner's staged rows), or both
        from one copy; never a shard without its images, nor images of another copy beside the shard.
        Whether a job has images depends on its parameters only, so its copies agree on it.
        """
        shard = self.result_path(job)
        if images is None or not images.num_rows:
            return self._write_table(shard, rows, overwrite=False)
        folder = self.root / "images"
        copy = f"{socket.gethostname()}.{os.getpid()}.{time.monotonic_ns()}"
        staged = folder / f"{job.job_id}.rows.{copy}"
        self._write_table(staged, rows, overwrite=True)
        images_path = folder / f"{job.job_id}.parquet"
        tagged = images.replace_schema_metadata({**(images.schema.metadata or {}), b"orch.copy": copy.encode()})
        if self._write_table(images_path, tagged, overwrite=False):
            owner = copy
        else:
            owner = (pq.read_schema(images_path).metadata or {}).get(b"orch.copy", b"").decode()
        owner_rows = folder / f"{job.job_id}.rows.{owner}"
        # Staged rows first: their owner links the shard before it unlinks them.
        if owner != copy and not owner_rows.exists() and not shard.exists():
            # Images nobody can complete: written before this layout (no orch.copy) or edited by hand.
            # This copy's images and rows take their place.
            self._write_table(images_path, tagged, overwrite=True)
            owner, owner_rows = copy, staged
        try:
            os.link(owner_rows, shard)
            placed = True
        except (FileExistsError, FileNotFoundError):  # placed already (and unlinked) by another copy
            placed = False
        if shard.exists():  # staged rows, the owner's and those of copies that lost, are dead weight now
            for stale in folder.glob(f"{job.job_id}.rows.*"):
                stale.unlink(missing_ok=True)
        return placed and owner == copy

    def record_failure(self, job: JobSpec, attempt: int, error: str, traceback_text: str,
                       retryable: bool = True) -> None:
        """retryable: whether a rerun can change the outcome (a killed worker, memory, a flaky file
        system); a deterministic failure (bad data, a bad parameter combination) is failed for good."""
        record = {"job_id": job.job_id, "label": job.label, "attempt": attempt, "error": error,
                  "retryable": retryable, "traceback": traceback_text, "host": socket.gethostname(),
                  "pid": os.getpid(), "time": now().isoformat()}
        path = self.root / "failures" / f"{job.job_id}.{attempt:03d}.json"
        self._write_atomic(path, json.dumps(record, indent=2).encode())

    # --- jobs running on the local executor ---------------------------------------------------
    def mark_running(self, job: JobSpec) -> None:
        """Called by the worker process that runs the job; its parent is the launcher. Written in place
        with one write(), not through tmp/: a worker killed while writing leaves at worst a partial record
        here, which readers skip and the next launch removes, rather than a file in tmp/ for a day."""
        record = {"job_id": job.job_id, "kernel": job.kernel, "label": job.label, "pid": os.getpid(),
                  "launcher_pid": os.getppid(), "host": socket.gethostname(), "started": now().isoformat()}
        folder = self.root / "running"
        folder.mkdir(exist_ok=True)
        (folder / f"{job.job_id}.json").write_text(json.dumps(record))

    def unmark_running(self, job_id: str) -> None:
        (self.root / "running" / f"{job_id}.json").unlink(missing_ok=True)

    def running(self) -> dict[str, dict]:
        """job id -> record, for the jobs that really run now. A record left by a killed launcher or
        worker is stale: on this host its worker or launcher pid is dead. (A record from another host
        cannot be checked and is believed.)"""
        folder, found = self.root / "running", {}
        if not folder.exists():
            return found
        host = socket.gethostname()
        for entry in os.scandir(folder):
            try:
                record = json.loads(Path(entry.path).read_text())
            except (OSError, ValueError):
                continue  # removed meanwhile, or partial: being written, or its worker was killed writing it
            if not isinstance(record, dict) or "job_id" not in record:
                continue
            if record.get("host") != host or (_alive(record.get("pid")) and _alive(record.get("launcher_pid"))):
                found[record["job_id"]] = record
        return found

    def clean_stale_running(self) -> None:
        """Under the launch lock: records whose processes are gone only mislead `status`."""
        live = self.running()
        folder = self.root / "running"
        if folder.exists():
            for entry in os.scandir(folder):
                if entry.name[:-5] not in live:
                    Path(entry.path).unlink(missing_ok=True)

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
