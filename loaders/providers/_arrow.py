"""Turning provider rows into an Arrow table in the lake's bar schema (no validation)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import pyarrow as pa

from lake import BAR_SCHEMA

T = TypeVar("T")

_FLOAT_COLUMNS = (
    "open",
    "high",
    "low",
    "close",
    "adj_open",
    "adj_high",
    "adj_low",
    "adj_close",
    "adj_volume",
    "split_factor",
    "dividend",
)


def to_float(value: Any) -> float | None:
    """A number from a JSON value (numbers or numeric strings); None when absent or not one."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def to_volume(value: Any) -> int | None:
    """Volumes arrive as floats (Marketstack) or ints; the lake stores whole shares."""
    number = to_float(value)
    if number is None or not math.isfinite(number):
        return None
    return round(number)


def to_date(value: Any) -> dt.date | None:
    """A date from `2021-04-09`, `2021-04-09T00:00:00+0000` or `2019-01-02T00:00:00.000Z`."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def bars_table(rows: Iterable[Mapping[str, Any]], *, source: str) -> pa.Table:
    """Rows with BAR_SCHEMA keys (trade_date as a date) as a BAR_SCHEMA table."""
    rows = list(rows)
    columns: dict[str, list[Any]] = {f.name: [] for f in BAR_SCHEMA}
    for row in rows:
        for name, values in columns.items():
            values.append(row.get(name))
    columns["source"] = [source] * len(rows)
    arrays = [pa.array(columns[f.name], type=f.type) for f in BAR_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=BAR_SCHEMA)


def empty_bars() -> pa.Table:
    return BAR_SCHEMA.empty_table()


def batched(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """Consecutive chunks of at most `size` items."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def unique(symbols: Iterable[str]) -> list[str]:
    """Symbols in first-seen order without repeats or blanks."""
    seen: dict[str, None] = {}
    for s in symbols:
        s = s.strip()
        if s:
            seen.setdefault(s, None)
    return list(seen)


FLOAT_COLUMNS = _FLOAT_COLUMNS
