"""Where a kernel runs: device, threads, seeds."""
from __future__ import annotations

import os

import torch


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
