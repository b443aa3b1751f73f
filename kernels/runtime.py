"""Where a kernel runs (device, threads, seeds), the columns that say so, and how its errors read."""
from __future__ import annotations

import os
import pickle
import time

import torch

# Running out of memory says nothing about a file being read: the job is retried, the file kept.
EXHAUSTION = (MemoryError, torch.OutOfMemoryError)

TORCH_ADVICE = ("Weights only load failed", "Please file an issue", "Check the documentation of torch.load")


def setup(cpus: int, seed: int) -> torch.device:
    """The GPU the scheduler allocated (CUDA_VISIBLE_DEVICES) if any, else the CPU with `cpus` threads."""
    torch.set_num_threads(max(1, cpus))
    torch.manual_seed(seed)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        return f"cuda:{torch.cuda.get_device_name(device)} (CUDA_VISIBLE_DEVICES={visible})"
    return f"cpu ({torch.get_num_threads()} threads)"


def job_columns(device: torch.device, started: float) -> dict:
    """Columns every kernel of the project reports (jobs.declarations.RUN_COLUMNS): its run time and
    where it ran."""
    return {"kernel_seconds": time.time() - started, "device": describe(device)}


def describe_error(error: Exception, limit: int = 160) -> str:
    """The error's type and first sentence, for a row or a one-line message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # torch's refusal of a planted pickle opens with paragraphs of advice (among it: load the file with
    # weights_only=False, exactly what must not be done) and says what it refused on a later line.
    if isinstance(error, pickle.UnpicklingError):
        lines = [line for line in lines if not line.startswith(TORCH_ADVICE)] or lines
    first = lines[0].split(". ")[0][:limit] if lines else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
