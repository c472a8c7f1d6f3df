"""Sessions, the latest closed session at a given instant, row checks, batching, backfill plans."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

import loaders
from loaders._worker import WorkerOptions
from stockdata.errors import ConfigurationError, InvalidInputError

UTC = dt.UTC


@pytest.mark.parametrize(
    ("code", "now", "expected"),
    [
        # Friday 2024-11-29 is a half day on NYSE: close 13:00 New York = 18:00 UTC
        ("XNYS", dt.datetime(2024, 11, 29, 17, 59, tzinfo=UTC), dt.date(2024, 11, 27)),
        ("XNYS", dt.datetime(2024, 11, 29, 18, 0, tzinfo=UTC), dt.date(2024, 11, 29)),
        # Saturday and Sunday: Friday's session
        ("XNYS", dt.datetime(2024, 11, 30, 12, 0, tzinfo=UTC), dt.date(2024, 11, 29)),
        ("XNYS", dt.datetime(2024, 12, 1, 23, 0, tzinfo=UTC), dt.date(2024, 11, 29)),
        # Monday 01:00 London (the old cron) is still Sunday evening in New York
        ("XNYS", dt.datetime(2024, 12, 2, 1, 0, tzinfo=UTC), dt.date(2024, 11, 29)),
        # Thanksgiving 2024-11-28 is a holiday: the Wednesday session
        ("XNYS", dt.datetime(2024, 11, 28, 23, 0, tzinfo=UTC), dt.date(2024, 11, 27)),
        # London: Boxing Day closed, Christmas Eve a half day (12:30 GMT)
        ("XLON", dt.datetime(2024, 12, 26, 12, 0, tzinfo=UTC), dt.date(2024, 12, 24)),
        ("XLON", dt.datetime(2024, 12, 24, 12, 29, tzinfo=UTC), dt.date(2024, 12, 23)),
        # Tokyo closes 15:30 local = 06:30 UTC, while New York's Monday has not begun
        ("XTKS", dt.datetime(2024, 12, 2, 6, 31, tzinfo=UTC), dt.date(2024, 12, 2)),
        ("XTKS", dt.datetime(2024, 12, 2, 6, 29, tzinfo=UTC), dt.date(2024, 11, 29)),
    ],
)
def test_latest_closed_session(code: str, now: dt.datetime, expected: dt.date) -> None:
    assert loaders.latest_closed_session(code, now) == expected


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        loaders.latest_closed_session("XNYS", dt.datetime(2024, 11, 29, 18))


def test_the_september_2001_closure_has_no_sessions() -> None:
    assert loaders.sessions_between("XNYS", dt.date(2001, 9, 7), dt.date(2001, 9, 18)) == [
        dt.date(2001, 9, 7),
        dt.date(2001, 9, 10),
        dt.date(2001, 9, 17),
        dt.date(2001, 9, 18),
    ]
    assert not loaders.is_session("XNYS", dt.date(2001, 9, 11))


def test_session_checks_flag_holidays_weekends_and_the_future() -> None:
    now = dt.datetime(2024, 11, 29, 20, 0, tzinfo=UTC)
    checks = loaders.session_checks("XNYS", timezone="America/New_York", now=now)
    dates = pa.array(
        [dt.date(2024, 11, 27), dt.date(2024, 11, 28), dt.date(2024, 11, 30), dt.date(2024, 12, 2)],
        pa.date32(),
    )
    table = pa.table({"trade_date": dates})
    results = {reason: mask.to_pylist() for mask, reason in (c(table) for c in checks)}
    assert results == {
        "trade date is after today in America/New_York": [False, False, True, True],
        "not a trading session of XNYS": [False, True, True, False],
    }


def test_batches_are_sorted_deduplicated_and_at_most_100() -> None:
    tickers = [f"T{i:03d}" for i in range(249, -1, -1)] + ["t000"]
    got = loaders.batches(tickers)
    assert [len(b) for b in got] == [100, 100, 50]
    assert got[0][:2] == ["T000", "T001"]
    assert got[2][-1] == "T249"
    with pytest.raises(InvalidInputError):
        loaders.batches(tickers, 101)


def test_backfill_plan_is_ticker_batch_by_year() -> None:
    plan = loaders.plan_backfill(["B", "A"], dt.date(2015, 6, 1), dt.date(2017, 2, 3), batch_size=1)
    assert plan == [
        (["A"], dt.date(2015, 6, 1), dt.date(2015, 12, 31)),
        (["A"], dt.date(2016, 1, 1), dt.date(2016, 12, 31)),
        (["A"], dt.date(2017, 1, 1), dt.date(2017, 2, 3)),
        (["B"], dt.date(2015, 6, 1), dt.date(2015, 12, 31)),
        (["B"], dt.date(2016, 1, 1), dt.date(2016, 12, 31)),
        (["B"], dt.date(2017, 1, 1), dt.date(2017, 2, 3)),
    ]
    with pytest.raises(InvalidInputError, match="is after"):
        loaders.year_ranges(dt.date(2017, 1, 2), dt.date(2017, 1, 1))


@pytest.mark.parametrize(
    ("delivery", "retry_after", "low", "high"),
    [(1, None, 2.5, 5.0), (3, None, 10.0, 20.0), (10, None, 30.0, 60.0), (1, 45.0, 45.0, 45.0)],
)
def test_backoff_doubles_is_capped_and_honours_retry_after(
    delivery: int, retry_after: float | None, low: float, high: float
) -> None:
    options = WorkerOptions(backoff_base=5.0, backoff_max=60.0)
    for _ in range(50):
        assert low <= options.backoff(delivery, retry_after) <= high


def test_providers_declare_their_symbols_per_job() -> None:
    limits = {name: loaders.max_symbols_per_job(name) for name in loaders.provider_names()}
    assert limits == {
        "eodhd": 100,
        "file": 1,
        "marketstack": 100,
        "synthetic": 2500,
        "tiingo": 100,
    }
    with pytest.raises(ConfigurationError, match="unknown provider 'nope'"):
        loaders.max_symbols_per_job("nope")


def test_backfill_batch_size_defaults_to_the_provider_limit_and_refuses_more() -> None:
    assert loaders.check_batch_size("synthetic", None) == 2500
    assert loaders.check_batch_size("marketstack", None) == 100
    assert loaders.check_batch_size("synthetic", 250) == 250
    with pytest.raises(InvalidInputError) as info:
        loaders.check_batch_size("marketstack", 101)
    assert info.value.message == (
        "--batch-size 101 exceeds provider 'marketstack''s limit of 100 symbols per job"
    )
    with pytest.raises(InvalidInputError, match="exceeds provider 'file'"):
        loaders.check_batch_size("file", 2)


def test_a_5000_ticker_20_year_plan_has_100_jobs_at_1000_and_1000_jobs_at_100() -> None:
    tickers = [f"T{i:05d}" for i in range(5000)]
    lo, hi = dt.date(2005, 1, 1), dt.date(2024, 12, 31)
    big = loaders.plan_backfill(tickers, lo, hi, batch_size=1000, limit=1000)
    small = loaders.plan_backfill(tickers, lo, hi)
    assert (len(big), len(small)) == (100, 1000)
    assert [len(b) for b, _, _ in big[::20]] == [1000] * 5
    assert big[0] == (tickers[:1000], dt.date(2005, 1, 1), dt.date(2005, 12, 31))
    assert big[-1] == (tickers[4000:], dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    with pytest.raises(InvalidInputError, match=r"batch size must be 1\.\.100, got 1000"):
        loaders.plan_backfill(tickers, lo, hi, batch_size=1000)
