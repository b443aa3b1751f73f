"""Declared kernel parameters: their type, default, allowed values. Pure Python, no torch."""
from __future__ import annotations

import dataclasses
import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REQUIRED = object()
_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
_MAX_CHOICES_SHOWN = 8

# Messages quote the offending value: bounded, because a grid may hold a megabyte-long string.
_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxdict = 2, 6, 6
_repr.maxstring = _repr.maxother = _repr.maxlong = 60


def _short(value: Any) -> str:
    text = _repr.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Param:
    type: type
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple | None = None
    min: float | None = None
    nullable: bool = False
    # False for parameters that say where things are, not what is computed (e.g. data_root):
    # they stay out of the job id, so moving the data does not rerun a finished sweep.
    identity: bool = True

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def check(self, value: Any) -> str | None:
        """Why `value` is not acceptable, or None when it is."""
        if value is None:
            return None if self.nullable else f"expected {_TYPE_NAMES[self.type]}, got null"
        # bool is a subclass of int in Python: `true` must not pass as an integer.
        ok = isinstance(value, self.type) and not (self.type in (int, float) and isinstance(value, bool))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            return f"expected {_TYPE_NAMES[self.type]}, got {type(value).__name__} {_short(value)}"
        # NaN passes every comparison (nan < 0 is False) and infinity every minimum: neither is a setting.
        if isinstance(value, float) and not math.isfinite(value):
            return f"expected a finite number, got {value!r}"
        if self.choices is not None and value not in self.choices:
            from difflib import get_close_matches

            guess = get_close_matches(str(value)[:200], [str(c) for c in self.choices], n=1, cutoff=0.6)
            hint = f"; did you mean '{guess[0]}'?" if guess else ""
            shown = ", ".join(map(str, self.choices[:_MAX_CHOICES_SHOWN]))
            more = f", ... ({len(self.choices)} in all)" if len(self.choices) > _MAX_CHOICES_SHOWN else ""
            return f"unknown value {_short(value)}{hint} (valid: {shown}{more})"
        if self.min is not None and value < self.min:
            return f"expected a value >= {self.min}, got {_short(value)}"
        return None

    def coerce(self, value: Any) -> Any:
        """Canonical form used for hashing: ints given for floats become floats."""
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value


def settings_class(name: str, params: Mapping[str, Param], resolved: Mapping[str, Any] | None = None) -> type:
    """A frozen dataclass with one field per parameter, in order, defaulting to the declared default (or,
    for a default a kernel resolves per data set, to `resolved`'s value): an algorithm's settings
    without a second copy of its defaults. `from_params(params)` picks its fields out of a job's params."""
    resolved = resolved or {}
    defaults = {n: resolved.get(n, p.default) for n, p in params.items()}
    fields = [(n, p.type, dataclasses.field(default=dataclasses.MISSING if defaults[n] is REQUIRED else defaults[n]))
              for n, p in params.items()]
    cls = dataclasses.make_dataclass(name, fields, frozen=True)
    cls.from_params = classmethod(lambda c, job: c(**{n: job[n] for n in params}))
    return cls
