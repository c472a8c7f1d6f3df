"""Row validation before anything is written: what passes goes to eod_prices, the rest to rejects."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

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


def _duplicate_mask(t: pa.Table) -> pa.Array:
    """True for every row whose (ticker, trade_date) occurs more than once in the batch."""
    keys = pa.table({"ticker": t.column("ticker"), "trade_date": t.column("trade_date")})
    counts = keys.group_by(["ticker", "trade_date"]).aggregate([([], "count_all")])
    joined = (
        keys.append_column("_i", pa.array(range(t.num_rows), pa.int64()))
        .join(counts, ["ticker", "trade_date"], join_type="left outer")
        .sort_by("_i")
    )
    return pc.greater(pc.fill_null(joined.column("count_all"), 1), 1).combine_chunks()


def validate(
    table: pa.Table,
    *,
    today: dt.date | None = None,
    extra_checks: Iterable[RowCheck] = (),
) -> Validated:
    """Split a conformed batch into good rows and rejects with the first failing reason each."""
    t = conform(table)
    if t.num_rows == 0:
        return Validated(t, REJECT_SCHEMA.empty_table())
    today = today or dt.datetime.now(dt.UTC).date()
    checks = _core_checks(t)
    checks.append(
        (
            pc.greater(t.column("trade_date"), pa.scalar(today, pa.date32())),
            "trade date is in the future",
        )
    )
    checks.append((_duplicate_mask(t), "duplicate (ticker, trade_date) in the batch"))
    checks.extend(check(t) for check in extra_checks)

    reasons: list[str | None] = [None] * t.num_rows
    bad_any = pa.array([False] * t.num_rows)
    for mask, reason in checks:
        mask = pc.fill_null(mask, True)
        if isinstance(mask, pa.ChunkedArray):
            mask = mask.combine_chunks()
        new = pc.and_(mask, pc.invert(bad_any))
        for i in pc.indices_nonzero(new).to_pylist():
            reasons[i] = reason
        bad_any = pc.or_(bad_any, mask)
    good = t.filter(pc.invert(bad_any))
    return Validated(good, _rejects(t.filter(bad_any), [r for r in reasons if r is not None]))


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
