"""Periodic checkpoints of a long attack, so a preempted, requeued or killed job resumes mid-attack.

The state of an optimisation attack is small (the images being optimised and the optimiser's moments),
so it is written atomically every `every_s` seconds. Saving on a schedule rather than on a signal also
covers SIGKILL, node loss and `scontrol requeue`, which give a job no chance to react.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch


class AttackCheckpoint:
    def __init__(self, folder: Path | None, every_s: float):
        self.path = Path(folder) / "attack.pt" if folder else None
        self.every_s = every_s
        self._last = time.monotonic()

    def load(self) -> dict | None:
        if self.path is None or not self.path.exists():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=False)

    def due(self) -> bool:
        return self.path is not None and time.monotonic() - self._last >= self.every_s

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        torch.save(state, partial)
        os.replace(partial, self.path)
        self._last = time.monotonic()
