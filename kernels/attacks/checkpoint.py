"""Periodic checkpoints of a long attack, so a preempted, requeued or killed job resumes mid-attack.

The state of an optimisation attack is small (the images being optimised and the optimiser's moments),
so it is written atomically every `every_s` seconds. Saving on a schedule rather than on a signal also
covers SIGKILL, node loss and `scontrol requeue`, which give a job no chance to react.

A checkpoint is read back as data only (`weights_only=True`: tensors, numbers, strings and containers),
so a file planted in the scratch folder cannot run code. A file that cannot be read that way (truncated,
corrupt, planted) or that is not this attack's state (another job's, another version's) is moved aside
and the attack starts over, saying why in its rows' `checkpoint_discarded` column: retrying the job
could never get past such a file.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from kernels.runtime import EXHAUSTION, describe_error


class CheckpointMismatch(ValueError):
    """A readable checkpoint that does not hold the state this attack saves."""


class AttackCheckpoint:
    def __init__(self, folder: Path | None, every_s: float):
        self.path = Path(folder) / "attack.pt" if folder else None
        self.every_s = every_s
        self._last = time.monotonic()
        # Why a checkpoint of this job was thrown away (None if never): kept in later checkpoints, so a
        # job resumed after the discard still says that it once started over.
        self.discarded: str | None = None

    def load(self) -> dict | None:
        """The saved state, or None when there is none or it is unreadable (then discarded)."""
        if self.path is None or not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except EXHAUSTION:
            raise
        except Exception as error:  # noqa: BLE001 - truncated files and refused pickles raise many kinds
            self.discard(f"{self.path.name} is unreadable ({describe_error(error)})")
            return None
        if not isinstance(state, dict):
            self.discard(f"{self.path.name} holds a {type(state).__name__}, not an attack's state")
            return None
        previous = state.get("checkpoint_discarded")
        self.discarded = previous if isinstance(previous, str) else None
        return state

    def discard(self, reason: str) -> None:
        """Moves the file aside (attack.pt.discarded, for whoever wants to look at it) so no later
        attempt reads it again, and remembers why for the rows."""
        self.discarded = f"{reason[:300]}; the attack restarted from iteration 0"
        try:
            os.replace(self.path, self.path.with_name(self.path.name + ".discarded"))
        except OSError:
            self.path.unlink(missing_ok=True)

    def due(self) -> bool:
        return self.path is not None and time.monotonic() - self._last >= self.every_s

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        torch.save({**state, "checkpoint_discarded": self.discarded}, partial)
        os.replace(partial, self.path)
        self._last = time.monotonic()


# --- checks an attack makes before it applies a saved state ----------------------------------------

def expect_tensor(state: dict, key: str, like: torch.Tensor | None) -> torch.Tensor | None:
    """state[key], if it is a finite tensor of `like`'s shape and dtype (or None where `like` is)."""
    value = state[key]
    if like is None:
        if value is not None:
            raise CheckpointMismatch(f"{key}: expected none, found a {type(value).__name__}")
        return None
    if not isinstance(value, torch.Tensor) or value.shape != like.shape or value.dtype != like.dtype:
        found = (f"{value.dtype} {list(value.shape)}" if isinstance(value, torch.Tensor)
                 else type(value).__name__)
        raise CheckpointMismatch(f"{key}: expected a {like.dtype} tensor of shape {list(like.shape)}, found {found}")
    if not bool(torch.isfinite(value).all()):
        raise CheckpointMismatch(f"{key}: holds NaN or infinite values")
    return value


def expect_count(state: dict, key: str, low: int, high: int | None = None) -> int:
    value = state[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        raise CheckpointMismatch(f"{key}: expected an integer in {low}..{'' if high is None else high}, "
                                 f"found {str(value)[:40]}")
    return value


def expect_number(state: dict, key: str) -> float:
    value = state[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise CheckpointMismatch(f"{key}: expected a number, found a {type(value).__name__}")
    return float(value)


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


def expect_optimizer_state(state: dict, key: str, variables: list[torch.Tensor]) -> dict:
    """state[key] as an optimiser's state_dict whose tensors fit `variables`. load_state_dict checks
    the parameter groups but not the shapes of the moments, which would only fail at the next step:
    every tensor must be a scalar, shaped like one of the variables (Adam's moments) or like all of
    them flattened together (L-BFGS's directions)."""
    value = state[key]
    if not isinstance(value, dict) or not isinstance(value.get("state"), dict):
        raise CheckpointMismatch(f"{key}: expected an optimiser's state_dict")
    shapes = {tuple(v.shape) for v in variables} | {(sum(v.numel() for v in variables),)}
    for tensor in _tensors(value["state"]):
        if tensor.dim() and tuple(tensor.shape) not in shapes:
            raise CheckpointMismatch(f"{key}: holds a tensor of shape {list(tensor.shape)[:8]}, "
                                     "which fits none of the attack's variables")
    return value
