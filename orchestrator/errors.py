"""User-facing errors: one clear message, raised before anything is created or submitted.

The promise for every wrong input is one message of at most three lines that names the file (and
`line:column` where the parser knows it), the full key path, what was expected and the nearest valid
name. The helpers here keep every message bounded: a hostile file may hold a megabyte-long key or a
list of 100,000 values, and none of it may end up printed whole.
"""
from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Iterable
from dataclasses import dataclass

MAX_VALUE_CHARS = 60  # a value or name quoted in a message is cut to this length
MAX_VALID_NAMES = 8  # a "(valid: ...)" list shows this many names, then "..."
MAX_LINE_CHARS = 300  # no line of a message is longer
MAX_LINES = 3

_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxdict, _repr.maxtuple, _repr.maxset = 3, 6, 6, 6, 6
_repr.maxstring = _repr.maxother = _repr.maxlong = MAX_VALUE_CHARS


class OrchError(Exception):
    """An error caused by the user's input; the CLI prints it without a traceback."""


def clip(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def short(value) -> str:
    """repr(value), bounded in length and in the work done to make it (reprlib stops early)."""
    return clip(_repr.repr(value))


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_path(parts: Iterable) -> str:
    """('scales', 'small', 'axes', 'lr', 2) -> 'scales.small.axes.lr[2]': names of mappings joined by
    dots, positions in lists in brackets; a name that is not plain is quoted (scales['../up'])."""
    text = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        elif not isinstance(part, str) or not _PLAIN_KEY.fullmatch(part):
            text += f"[{short(part)}]"
        else:
            text += f".{clip(part)}" if text else clip(part)
    return text


def got(value) -> str:
    """'list [1, 2]': the type and a bounded repr, for "expected ..., got ..." messages."""
    return f"{type(value).__name__} {short(value)}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: where (the full key path), what, and where in the text."""
    where: str  # e.g. "scales.small.fixed.train_epochs"; "" when the problem is the file as a whole
    message: str
    position: tuple[int, int] | None = None  # (line, column), 1-based, when the parser knows it

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class GridError(OrchError):
    """Every problem found in one grid or profile file. `problems` lists all of them ("key.path:
    message"); the message shows the first ones, one line each, within three lines."""

    def __init__(self, source: str, problems: list[str | Problem]):
        self.source = source
        self.located = [p if isinstance(p, Problem) else Problem("", str(p)) for p in problems]
        self.problems = [str(p) for p in self.located]
        super().__init__(self._text())

    def _line(self, problem: Problem) -> str:
        at = f"{self.source}:{problem.position[0]}:{problem.position[1]}" if problem.position else self.source
        return clip(f"{at}: {problem}", MAX_LINE_CHARS)

    def _text(self) -> str:
        if len(self.located) <= MAX_LINES:
            return "\n".join(self._line(p) for p in self.located)
        shown = self.located[:MAX_LINES - 1]
        rest = self.located[MAX_LINES - 1:]
        names = ", ".join(p.where or clip(p.message, 40) for p in rest)
        tail = clip(f"(and {len(rest)} more problem(s): {names})", MAX_LINE_CHARS)
        return "\n".join([self._line(p) for p in shown] + [tail])


def nearest(name: str, valid: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(clip(str(name), 200), list(valid), n=1, cutoff=0.6)
    return matches[0] if matches else None


def valid_list(names: Iterable, near: str | None = None) -> str:
    """At most MAX_VALID_NAMES names (those nearest to `near` when there are more), then how many
    there are in all."""
    names = [str(n) for n in names]
    if len(names) <= MAX_VALID_NAMES:
        return ", ".join(names)
    shown = names[:MAX_VALID_NAMES] if near is None else \
        difflib.get_close_matches(clip(str(near), 200), names, n=MAX_VALID_NAMES, cutoff=0.0)
    return ", ".join(shown) + f", ... ({len(names)} in all)"


def unknown_name(kind: str, name: str, valid: Iterable[str], owner: str = "") -> str:
    """"unknown parameter 'batch_sise' of kernel 'ig'; did you mean 'batch_size'? (valid: ...)"."""
    valid = sorted(valid, key=str)
    guess = nearest(name, [str(v) for v in valid])
    hint = f"; did you mean '{guess}'?" if guess else ""
    listed = f" (valid: {valid_list(valid, near=name)})" if valid else ""
    return f"unknown {kind} '{clip(str(name))}'{owner}{hint}{listed}"
