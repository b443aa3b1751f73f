"""User-facing errors: one clear message, raised before anything is created or submitted."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class OrchError(Exception):
    """An error caused by the user's input; the CLI prints it without a traceback."""


class GridError(OrchError):
    """Every problem found in one grid file, reported together."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s)"] + [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


def nearest(name: str, valid: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_name(kind: str, name: str, valid: Iterable[str], owner: str = "") -> str:
    """"unknown parameter 'batch_sise' of kernel 'ig'; did you mean 'batch_size'? (valid: ...)"."""
    valid = sorted(valid, key=str)
    guess = nearest(name, [str(v) for v in valid])
    hint = f"; did you mean '{guess}'?" if guess else ""
    return f"unknown {kind} '{name}'{owner}{hint} (valid: {', '.join(map(str, valid))})"
