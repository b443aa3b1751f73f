"""What a refactor of the kernels or the orchestrator must not change: every shipped grid's job ids
(so no finished sweep reruns) and every kernel's shard schema (so no sweep mixes two schemas).

The pins live in tests/pinned/. A deliberate change (a new kernel version, a new column) rewrites
them with `python tests/test_pinned_contracts.py --write`, and the diff shows what changed.
"""
import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
PINNED = Path(__file__).parent / "pinned"
SAMPLE = 5  # ids printed per grid beside the digest of all of them, so a failure shows which moved

# One small job per kernel: enough to produce every column its shards hold.
TINY_JOBS = {
    "ig": dict(model="mlp", num_images=2, batch_size=1, batch_index=0, iterations=2),
    "dlg": dict(num_images=2, batch_size=1, batch_index=0, iterations=2),
    "ig_fedavg": dict(model="mlp", num_images=2, local_epochs=1, local_batch_size=1, simulation="strong",
                      iterations=2),
    "rtf": dict(num_images=2, batch_size=2, batch_index=0, bins=8),
    "fishing": dict(model="mlp", num_images=2, batch_size=2, batch_index=0, iterations=2),
    "gradient_similarity": dict(model="mlp", batch_size=2),
    "gradient_embedding": dict(model="mlp", num_images=4, perplexity=2.0),
    "activation_inputs": dict(model="mlp", num_images=2),
    "train_model": dict(model="mlp", train_epochs=1, train_pool=64),
}


def grid_ids() -> dict[str, dict]:
    from orchestrator.expand import expand
    from orchestrator.grid import load_grid

    pins = {}
    for path in sorted((ROOT / "grids").glob("*.yaml")):
        grid = load_grid(path)
        for scale in grid.scales or [None]:
            plan = expand(load_grid(path, scale))
            ids = [j.job_id for j in plan.all_jobs]
            pins[f"{path.name}:{scale}"] = {"jobs": len(ids), "sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
                                            "first": ids[:SAMPLE]}
    return pins


def kernel_schema(name: str, tmp_path: Path) -> list[list[str]]:
    """The (column, Arrow type) list of a shard of one tiny job of `name`, as the runner builds it."""
    import torch

    from orchestrator.expand import JobSpec, job_id
    from orchestrator.registry import get_kernel
    from orchestrator.runner import shard_table

    kernel = get_kernel(name)
    params = {n: p.default for n, p in kernel.params.items() if not p.required} | TINY_JOBS[name]
    params = kernel.resolve(params) if kernel.resolve else params
    assert not (kernel.check and kernel.check(params)), kernel.check(params)
    context = SimpleNamespace(cache_dir=tmp_path / "cache", cpus=1, job_id="pin", scratch_dir=tmp_path / "scratch")
    threads = torch.get_num_threads()
    try:
        result = kernel.load()(dict(params), context)
    finally:
        torch.set_num_threads(threads)
    job = JobSpec(job_id(kernel, params), name, params, "pin", {})
    job_columns = {c: "x" for c in ("job_id", "job_label", "kernel", "kernel_version", "sweep", "scale")}
    now = datetime.now(timezone.utc)
    run_columns = {"status": "ok", "attempt": 1, "host": "h", "started_at": now, "finished_at": now,
                   "job_seconds": 0.0, "git_sha": None, "scheduler_job": None}
    table = shard_table(kernel, job, result.rows, result.column_types, job_columns, run_columns)
    return [[field.name, str(field.type)] for field in table.schema]


def test_every_shipped_grid_keeps_its_job_ids():
    pinned = json.loads((PINNED / "job_ids.json").read_text())
    assert grid_ids() == pinned


@pytest.mark.parametrize("name", sorted(TINY_JOBS))
def test_every_kernel_keeps_its_shard_schema(name, tmp_path):
    pinned = json.loads((PINNED / "shard_schemas.json").read_text())
    assert kernel_schema(name, tmp_path) == pinned[name]


def test_every_kernel_is_pinned():
    from orchestrator.registry import kernels

    assert sorted(kernels()) == sorted(TINY_JOBS)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import tempfile

    sys.path.insert(0, str(ROOT))
    PINNED.mkdir(exist_ok=True)
    (PINNED / "job_ids.json").write_text(json.dumps(grid_ids(), indent=1) + "\n")
    with tempfile.TemporaryDirectory() as folder:
        schemas = {name: kernel_schema(name, Path(folder) / name) for name in sorted(TINY_JOBS)}
    (PINNED / "shard_schemas.json").write_text(json.dumps(schemas, indent=1) + "\n")
    print(f"wrote {PINNED}/job_ids.json and shard_schemas.json")
