"""Row validation before anything is written: what passes goes to eod_prices, the rest to rejects."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake._schema import BAR_SCHEMA, REJECT_SCHEMA, REQUIRED_BAR_COLUMNS
from stockdata.errors import InvalidInputError

#: An extra check: given the batch, return a boolean mask of rows that FAIL and the reason.
RowCheck = Callable[[pa.Table], tuple[pa.ChunkedArray | pa.Array, str]]


@dataclass(frozen=True, slots=True)
class Validated:
    """A batch split into the rows to write and the rejected rows (REJECT_SCHEMA)."""

    good: pa.Table
    rejects: pa.Table


def conform(table: pa.Table) -> pa.Table:
    """Cast a batch to BAR_SCHEMA, or fail with the reason: unknown/missing columns, bad types."""
    names = set(table.column_names)
    unknown = names - set(BAR_SCHEMA.names)
    if unknown:
        raise InvalidInputError(f"unknown column(s) {sorted(unknown)} in the batch", code="schema")
    missing = REQUIRED_BAR_COLUMNS - names
    if missing:
        raise InvalidInputError(f"missing column(s) {sorted(missing)} in the batch", code="schema")
    columns = []
    for field in BAR_SCHEMA:
        if field.name not in names:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        col = table.column(field.name)
        try:
            if pa.types.is_floating(col.type) and pa.types.is_integer(field.type):
                col = pc.round(col)
            columns.append(col.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInputError(
                f"column {field.name!r} has type {col.type}, expected {field.type}: {exc}",
                code="schema",
            ) from exc
    return pa.Table.from_arrays(columns, schema=BAR_SCHEMA.remove_metadata())


def _or(a: pa.Array | pa.ChunkedArray, b: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.or_kleene(pc.fill_null(a, True), pc.fill_null(b, True))


def _core_checks(t: pa.Table) -> list[tuple[pa.ChunkedArray | pa.Array, str]]:
    o, h, lo, c, v = (t.column(n) for n in ("open", "high", "low", "close", "volume"))
    nulls = pc.is_null(t.column("ticker"))
    for name in ("exchange_mic", "trade_date", "open", "high", "low", "close", "volume"):
        nulls = pc.or_(nulls, pc.is_null(t.column(name)))
    positive = pc.and_(
        pc.and_(pc.greater(o, 0), pc.greater(h, 0)), pc.and_(pc.greater(lo, 0), pc.greater(c, 0))
    )
    finite = pc.and_(
        pc.and_(pc.is_finite(o), pc.is_finite(h)), pc.and_(pc.is_finite(lo), pc.is_finite(c))
    )
    return [
        (nulls, "missing required value"),
        (pc.invert(pc.fill_null(finite, False)), "price is not a finite number"),
        (pc.invert(pc.fill_null(positive, False)), "price must be > 0"),
        (pc.less(v, 0), "volume must be >= 0"),
        (pc.less(h, lo), "high < low"),
        (pc.less(h, pc.max_element_wise(o, c)), "high < max(open, close)"),
        (pc.greater(lo, pc.min_element_wise(o, c)), "low > min(open, close)"),
    ]


def _key(t: pa.Table) -> np.ndarray:
    """An int64 per row that orders like (ticker, trade_date): ticker rank << 32 | day number."""
    encoded = pc.dictionary_encode(t.column("ticker").combine_chunks())
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    rank = np.asarray(pc.rank(encoded.dictionary, sort_keys="ascending", tiebreaker="min"))
    ticker_rank = rank.astype(np.int64)[np.asarray(encoded.indices.fill_null(0))]
    days = np.asarray(
        t.column("trade_date").combine_chunks().cast(pa.int32()).fill_null(0), dtype=np.int64
    )
    key: np.ndarray = (ticker_rank << 32) | (days - np.iinfo(np.int32).min)
    return key


def _mask(values: pa.ChunkedArray | pa.Array | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(bool)
    filled = pc.fill_null(values, True)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks()
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)


def validate(
    table: pa.Table,
    *,
    today: dt.date | None = None,
    extra_checks: Iterable[RowCheck] = (),
) -> Validated:
    """Split a conformed batch into good rows and rejects with the first failing reason each.

    Both come back sorted by (ticker, trade_date), the order the lake stores rows in; a batch
    that is already sorted (the usual case) is not copied.
    """
    t = conform(table)
    if t.num_rows == 0:
        return Validated(t, REJECT_SCHEMA.empty_table())
    key = _key(t)
    if t.num_rows > 1 and not bool(np.all(key[1:] >= key[:-1])):
        order = np.argsort(key, kind="stable")
        t = t.combine_chunks().take(pa.array(order))
        key = key[order]
    today = today or dt.datetime.now(dt.UTC).date()
    same = key[1:] == key[:-1]
    duplicate = np.zeros(t.num_rows, dtype=bool)
    duplicate[1:] |= same
    duplicate[:-1] |= same
    checks: list[tuple[pa.ChunkedArray | pa.Array | np.ndarray, str]] = _core_checks(t)
    checks.append(
        (
            pc.greater(t.column("trade_date"), pa.scalar(today, pa.date32())),
            "trade date is in the future",
        )
    )
    checks.append((duplicate, "duplicate (ticker, trade_date) in the batch"))
    checks.extend(check(t) for check in extra_checks)

    bad = np.zeros(t.num_rows, dtype=bool)
    reason_of = np.full(t.num_rows, -1, dtype=np.int16)
    for i, (mask, _) in enumerate(checks):
        failing = _mask(mask)
        reason_of[failing & ~bad] = i
        bad |= failing
    if not bad.any():
        return Validated(t, REJECT_SCHEMA.empty_table())
    reasons = [checks[i][1] for i in reason_of[bad]]
    good = t.filter(pa.array(~bad))
    return Validated(good, _rejects(t.filter(pa.array(bad)), reasons))


def _rejects(bad: pa.Table, reasons: list[str], job_id: str | None = None) -> pa.Table:
    rows = bad.to_pylist()
    now = dt.datetime.now(dt.UTC)
    return pa.table(
        {
            "job_id": [job_id] * len(rows),
            "ticker": [r["ticker"] for r in rows],
            "exchange_mic": [r["exchange_mic"] for r in rows],
            "trade_date": [None if r["trade_date"] is None else str(r["trade_date"]) for r in rows],
            "raw": [json.dumps(r, default=str, sort_keys=True) for r in rows],
            "reason": reasons,
            "source": [r["source"] for r in rows],
            "rejected_at": [now] * len(rows),
        },
        schema=REJECT_SCHEMA,
    )
