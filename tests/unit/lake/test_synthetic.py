"""The synthetic generator: deterministic per ticker, on the real calendar, consistent."""

from __future__ import annotations

import datetime as dt
import itertools

import pyarrow.compute as pc
import pytest

import lake
from stockdata.errors import InvalidInputError


def test_same_bars_for_a_ticker_whatever_else_is_asked() -> None:
    wide = lake.synthetic_bars(
        ["AAA", "BBB", "CCC"], date_from=dt.date(2019, 1, 1), date_to=dt.date(2020, 12, 31), seed=3
    )
    narrow = lake.synthetic_bars(
        ["BBB"], date_from=dt.date(2020, 3, 2), date_to=dt.date(2020, 3, 6), seed=3
    )
    window = wide.filter(
        pc.and_(
            pc.equal(wide.column("ticker"), "BBB"),
            pc.and_(
                pc.greater_equal(wide.column("trade_date"), dt.date(2020, 3, 2)),
                pc.less_equal(wide.column("trade_date"), dt.date(2020, 3, 6)),
            ),
        )
    )
    assert narrow.equals(window)
    assert narrow.num_rows == 5
    other_seed = lake.synthetic_bars(
        ["BBB"], date_from=dt.date(2020, 3, 2), date_to=dt.date(2020, 3, 6), seed=4
    )
    assert other_seed.column("close").to_pylist() != narrow.column("close").to_pylist()


def test_sessions_come_from_the_exchange_calendar() -> None:
    bars = lake.synthetic_bars(
        ["AAA"], date_from=dt.date(2024, 12, 23), date_to=dt.date(2025, 1, 3)
    )
    assert [d.isoformat() for d in bars.column("trade_date").to_pylist()] == [
        "2024-12-23",
        "2024-12-24",
        "2024-12-26",
        "2024-12-27",
        "2024-12-30",
        "2024-12-31",
        "2025-01-02",
        "2025-01-03",
    ]
    assert bars.schema == lake.BAR_SCHEMA
    assert set(bars.column("currency").to_pylist()) == {"USD"}
    assert set(bars.column("exchange_mic").to_pylist()) == {"XNYS"}


def test_bars_pass_validation_and_adjustments_are_consistent() -> None:
    bars = lake.synthetic_bars(
        [f"T{i}" for i in range(40)], date_from=dt.date(2000, 1, 1), date_to=dt.date(2009, 12, 31)
    )
    checked = lake.validate(bars, today=dt.date(2026, 1, 1))
    assert checked.rejects.num_rows == 0
    assert checked.good.num_rows == bars.num_rows
    rows = bars.to_pylist()
    splits = [r for r in rows if r["split_factor"] != 1.0]
    dividends = [r for r in rows if r["dividend"] > 0]
    assert splits and dividends
    for prev, cur in itertools.pairwise(rows):
        if prev["ticker"] != cur["ticker"]:
            continue
        step = (cur["adj_close"] / cur["close"]) / (prev["adj_close"] / prev["close"])
        expected = cur["split_factor"]
        if cur["dividend"] > 0:
            expected *= prev["close"] / (prev["close"] - cur["dividend"])
        assert step == pytest.approx(expected, rel=1e-9), (cur["ticker"], cur["trade_date"])


def test_unknown_exchange_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="no trading calendar for exchange 'XXXX'"):
        lake.synthetic_bars(
            ["A"], exchange_mic="XXXX", date_from=dt.date(2020, 1, 1), date_to=dt.date(2020, 2, 1)
        )
