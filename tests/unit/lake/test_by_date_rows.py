"""The eod_by_date projection: the validated batch re-ordered by (trade_date, ticker)."""

from __future__ import annotations

import datetime as dt

import lake
from lake._write import by_date_rows


def test_a_validated_batch_comes_out_date_major_then_ticker() -> None:
    bars = lake.synthetic_bars(
        ["CCC", "AAA", "BBB"], date_from=dt.date(2024, 12, 30), date_to=dt.date(2025, 1, 2)
    )
    checked = lake.validate(bars, today=dt.date(2026, 1, 1))
    batch = checked.good.append_column("period", checked.good.column("trade_date").cast("string"))
    out = by_date_rows(batch)
    assert out.schema.names == lake.BY_DATE_SCHEMA.names
    assert [(r["trade_date"].isoformat(), r["ticker"]) for r in out.to_pylist()] == [
        ("2024-12-30", "AAA"),
        ("2024-12-30", "BBB"),
        ("2024-12-30", "CCC"),
        ("2024-12-31", "AAA"),
        ("2024-12-31", "BBB"),
        ("2024-12-31", "CCC"),
        ("2025-01-02", "AAA"),
        ("2025-01-02", "BBB"),
        ("2025-01-02", "CCC"),
    ]
    closes = {(r["ticker"], r["trade_date"]): r["close"] for r in bars.to_pylist()}
    assert all(closes[(r["ticker"], r["trade_date"])] == r["close"] for r in out.to_pylist())
