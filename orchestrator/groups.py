"""Groups: jobs that one worker (or one SLURM array task) runs together, loading the model and data once.

Two jobs share a group when they are of the same kernel, need the same prerequisites, ask for the same
resources and differ only in the kernel's `group_varying` parameters (batch_index, seed, ...): the
fan-out of one grid point. A group holds at most `resources.group_size` jobs (default 1: every job on
its own, as before groups existed). Groups are an execution detail: job ids, shards and failure records
stay per job.
"""
from __future__ import annotations

import json

from orchestrator.contracts import group_varying
from orchestrator.expand import JobSpec
from orchestrator.registry import get_kernel


def group_size(job: JobSpec) -> int:
    return int(job.resources.get("group_size", 1))  # manifests written before groups existed lack it


def group_jobs(jobs: list[JobSpec]) -> list[list[JobSpec]]:
    """The jobs as groups, in the order of their first job; each job in exactly one group."""
    varying: dict[str, frozenset[str]] = {}
    groups: dict[str, list[list[JobSpec]]] = {}
    for job in jobs:
        size = group_size(job)
        if job.kernel not in varying:
            varying[job.kernel] = frozenset(group_varying(get_kernel(job.kernel)))
        if size <= 1 or not varying[job.kernel]:
            groups[job.job_id] = [[job]]  # its own key: it never shares a group
            continue
        shared = {k: v for k, v in job.params.items() if k not in varying[job.kernel]}
        key = json.dumps([job.kernel, job.requires, job.resources, shared], sort_keys=True, default=str)
        filling = groups.setdefault(key, [[]])
        if len(filling[-1]) >= size:
            filling.append([])
        filling[-1].append(job)
    # dicts keep insertion order: the groups of one key follow its first job
    return [group for chunks in groups.values() for group in chunks]
