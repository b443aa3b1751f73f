"""The order in which a factor's levels are shown, in every table, legend, axis, panel and page.

Sorting levels as strings puts `resnet101` before `resnet18` and `10` before `2`. Here numbers sort by
value, the digit runs inside names sort by value too (`resnet18 < resnet34 < resnet50 < resnet101`,
`B2 < B10`), letters ignore case, and a few levels follow the paper's order instead of the alphabet
(LEVEL_ORDER). Missing values (None, null) come first, where polars puts them. Pure standard library
apart from polars frames, so anything may use it.
"""
from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterable

import polars as pl

# A text that is a number as a whole ("0.25", "-3", "1e-3") sorts by value, among the numbers.
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_DIGIT_RUNS = re.compile(r"(\d+)")

# Levels whose order is the paper's, not the alphabet's: an untrained model is the left panel of
# Figure 4 and level 0 of Table I; Table III reads strong, weak, then no simulation. Other levels of
# these factors follow, in natural order.
LEVEL_ORDER: dict[str, tuple[str, ...]] = {
    "model_state": ("untrained", "trained"),
    "simulation": ("strong", "weak", "none"),
}


def natural_key(value) -> tuple:
    """Sort key for one level: None first, then numbers by value (NaN after them), then texts with
    their digit runs compared as integers. Keys of different kinds never compare their payloads, so a
    column mixing kinds still sorts."""
    if value is None:
        return (0,)
    if isinstance(value, numbers.Real):  # bool, int, float and numpy scalars
        return (1, 1, 0.0) if math.isnan(value) else (1, 0, float(value))
    text = str(value)
    if _NUMBER.fullmatch(text.strip()):
        return (1, 0, float(text))
    # re.split with a capturing group alternates text and digits, text first: every key has a text at
    # even positions and an integer at odd ones, so two keys always compare position by position.
    parts = tuple(int(part) if i % 2 else part.casefold() for i, part in enumerate(_DIGIT_RUNS.split(text)))
    return (2, parts, text)  # the text itself breaks ties such as "a01" / "a1" or "A" / "a"


def level_key(column: str | None = None) -> Callable[[object], tuple]:
    """Sort key for the levels of `column`: its LEVEL_ORDER first, in that order, then natural order."""
    order = LEVEL_ORDER.get(column or "")
    if not order:
        return natural_key
    return lambda value: (0, order.index(value)) if value in order else (1, natural_key(value))


def natural_levels(values: Iterable, column: str | None = None) -> list:
    """The distinct values, in level order."""
    return sorted(set(values), key=level_key(column))


def sort_naturally(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """`frame` sorted by `columns` in level order (stable: ties keep their order). Numeric columns sort
    by value as polars does; a text column sorts by each level's rank in `natural_levels`."""
    keys = []
    for column in columns:
        dtype = frame.schema[column]
        if dtype.is_numeric() or dtype == pl.Boolean:
            keys.append(pl.col(column))
            continue
        text = frame[column].cast(pl.String)
        rank = {level: i for i, level in enumerate(natural_levels(text.drop_nulls().to_list(), column))}
        keys.append(pl.col(column).cast(pl.String).replace_strict(rank, default=None, return_dtype=pl.UInt32))
    return frame.sort(keys, maintain_order=True) if keys else frame
