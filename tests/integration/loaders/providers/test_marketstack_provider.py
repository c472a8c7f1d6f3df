"""The Marketstack provider against a loopback stub speaking Marketstack's documented API."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

import lake
from loaders.providers import MarketstackProvider, ProviderSettings, get_provider
from stockdata.errors import PermanentError, StockDataError, TransientError
from tests.stubs.logs import event_names, log_lines
from tests.stubs.marketstack import Fault, MarketstackStub, bars_from_csv


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    """The real, scrubbed JSON log lines written during the test."""
    with log_lines() as out:
        yield out


KEY = "ms-SECRET-key-4f9a1c"
ALL_TIME = {"date_from": dt.date(1980, 1, 1), "date_to": dt.date(2020, 12, 31)}


def _csv_closes(path: Path) -> dict[dt.date, float]:
    with path.open(newline="") as f:
        return {dt.date.fromisoformat(r["Date"]): float(r["Close"]) for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def stub(samples: Path) -> Iterator[MarketstackStub]:
    bars = bars_from_csv(samples / "MSFT.csv", "MSFT") | bars_from_csv(samples / "GOOG.csv", "GOOG")
    with MarketstackStub(bars, api_key=KEY) as server:
        yield server


@pytest.fixture
def ms(stub: MarketstackStub) -> Iterator[MarketstackStub]:
    stub.clear()
    yield stub
    stub.clear()


def provider(
    stub: MarketstackStub, sleeps: list[float] | None = None, **settings: Any
) -> MarketstackProvider:
    values: dict[str, Any] = {
        "marketstack_base_url": stub.base_url,
        "marketstack_api_key": KEY,
        "provider_backoff_base_seconds": 0.01,
        "provider_max_retries": 3,
        "provider_timeout_seconds": 2.0,
    } | settings
    p = get_provider(
        "marketstack",
        ProviderSettings(**values),
        sleep=(sleeps.append if sleeps is not None else (lambda _s: None)),
    )
    assert isinstance(p, MarketstackProvider)
    return p


def test_full_msft_history_pages_by_offset_until_total(ms: MarketstackStub, samples: Path) -> None:
    table = provider(ms).fetch_bars(["MSFT"], exchange_mic="XNAS", **ALL_TIME)

    assert table.schema == lake.BAR_SCHEMA
    assert table.num_rows == 7983
    eod = [r for r in ms.requests if r.path == "/v2/eod"]
    assert [r.params["offset"] for r in eod] == [str(o) for o in range(0, 8000, 1000)]
    assert {r.params["limit"] for r in eod} == {"1000"}
    assert {r.params["access_key"] for r in eod} == {KEY}
    assert {(r.params["date_from"], r.params["date_to"]) for r in eod} == {
        ("1980-01-01", "2020-12-31")
    }
    ordered = table.sort_by("trade_date")
    assert ordered.column("trade_date")[0].as_py() == dt.date(1986, 3, 13)
    assert ordered.column("close")[0].as_py() == 0.07533
    assert ordered.column("trade_date")[-1].as_py() == dt.date(2017, 11, 10)
    assert ordered.column("close")[-1].as_py() == 83.87
    assert ordered.column("volume")[-1].as_py() == 19396301
    got = dict(
        zip(
            ordered.column("trade_date").to_pylist(),
            ordered.column("close").to_pylist(),
            strict=True,
        )
    )
    assert got == _csv_closes(samples / "MSFT.csv")
    assert set(table.column("ticker").to_pylist()) == {"MSFT"}
    assert set(table.column("exchange_mic").to_pylist()) == {"XNAS"}
    assert set(table.column("source").to_pylist()) == {"marketstack"}
    assert set(table.column("split_factor").to_pylist()) == {1.0}


def test_small_pages_and_date_range(ms: MarketstackStub) -> None:
    table = provider(ms, provider_page_size=7).fetch_bars(
        ["MSFT", "GOOG"],
        exchange_mic="XNAS",
        date_from=dt.date(2013, 2, 1),
        date_to=dt.date(2013, 2, 28),
    )
    # February 2013 had 19 NYSE sessions; both tickers have all of them.
    assert table.num_rows == 38
    eod = [r for r in ms.requests if r.path == "/v2/eod"]
    assert [r.params["offset"] for r in eod] == ["0", "7", "14", "21", "28", "35"]
    assert eod[0].params["symbols"] == "MSFT,GOOG"
    goog = table.filter(pc.equal(table.column("ticker"), "GOOG")).sort_by("trade_date")
    assert goog.column("close")[-1].as_py() == 801.2


def test_symbols_go_in_batches_of_at_most_100(ms: MarketstackStub) -> None:
    symbols = [f"T{i:03d}" for i in range(250)]
    for s in symbols:
        ms.set_bars(
            s,
            [
                {
                    "date": "2021-04-08",
                    "open": 10,
                    "high": 11,
                    "low": 9,
                    "close": 10.5,
                    "volume": 1e3,
                },
                {
                    "date": "2021-04-09",
                    "open": 10,
                    "high": 12,
                    "low": 9,
                    "close": 11.5,
                    "volume": 2e3,
                },
            ],
        )
    table = provider(ms).fetch_bars(
        [*symbols, "T000"],
        exchange_mic="XNAS",
        date_from=dt.date(2021, 4, 1),
        date_to=dt.date(2021, 4, 30),
    )
    eod = [r for r in ms.requests if r.path == "/v2/eod"]
    assert [len(r.params["symbols"].split(",")) for r in eod] == [100, 100, 50]
    assert [s for r in eod for s in r.params["symbols"].split(",")] == symbols
    assert table.num_rows == 500
    assert pc.sum(table.column("volume")).as_py() == 250 * 3000


def test_v1_is_selectable(ms: MarketstackStub) -> None:
    p = provider(ms, marketstack_version="v1")
    assert p.base_url == f"{ms.root_url}/v1"
    table = p.fetch_bars(
        ["MSFT"], exchange_mic="XNAS", date_from=dt.date(2017, 11, 6), date_to=dt.date(2017, 11, 10)
    )
    assert table.sort_by("trade_date").column("close").to_pylist() == [
        84.47,
        84.26,
        84.56,
        84.09,
        83.87,
    ]
    assert p.list_tickers("XNAS") == [
        {"exchange_mic": "XNAS", "symbol": "GOOG", "name": "GOOG", "currency_code": None},
        {"exchange_mic": "XNAS", "symbol": "MSFT", "name": "MSFT", "currency_code": None},
    ]
    assert {r.path for r in ms.requests} == {"/v1/eod", "/v1/tickers"}


def test_exchange_scoped_eod_of_one_day(ms: MarketstackStub) -> None:
    table = provider(ms).fetch_exchange_day("XNAS", dt.date(2013, 3, 1))
    rows = {r["ticker"]: r["close"] for r in table.to_pylist()}
    assert rows == {"GOOG": 806.19, "MSFT": 24.8}
    assert [r.path for r in ms.requests] == ["/v2/exchanges/XNAS/eod/2013-03-01"]


def test_exchange_and_ticker_lists(ms: MarketstackStub) -> None:
    p = provider(ms)
    assert [e["mic"] for e in p.list_exchanges()] == ["XNAS", "XNYS"]
    assert p.list_exchanges()[0] == {
        "mic": "XNAS",
        "name": "NASDAQ Stock Exchange",
        "acronym": "NASDAQ",
        "country": "USA",
        "country_code": "US",
        "city": "New York",
        "website": "www.nasdaq.com",
        "timezone": "America/New_York",
        "currency_code": "USD",
    }
    assert [t["symbol"] for t in p.list_tickers("XNAS")] == ["GOOG", "MSFT"]
    assert p.list_tickers("XNYS") == []
    assert ms.requests[-1].path == "/v2/tickerslist"


# -- faults ---------------------------------------------------------------------------------

ONE_WEEK = {"date_from": dt.date(2017, 11, 6), "date_to": dt.date(2017, 11, 10)}


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status(500),
        Fault.status(503),
        Fault.delay(3.0),
        Fault.truncate(),
        Fault.reset(),
        Fault.error_200("rate_limit_reached"),
    ],
    ids=["500", "503", "timeout", "truncated", "connection-cut", "rate-limit-under-200"],
)
def test_transient_fault_then_success(ms: MarketstackStub, fault: Fault) -> None:
    ms.inject(fault)
    sleeps: list[float] = []
    table = provider(ms, sleeps, provider_timeout_seconds=0.5).fetch_bars(
        ["MSFT"], exchange_mic="XNAS", **ONE_WEEK
    )
    assert table.num_rows == 5
    assert table.sort_by("trade_date").column("close")[-1].as_py() == 83.87
    assert len(ms.requests) == 2
    assert len(sleeps) == 1
    assert 0.0 <= sleeps[0] <= 0.01


def test_429_with_retry_after_waits_at_least_that_long(ms: MarketstackStub) -> None:
    ms.inject(Fault.status(429, retry_after=2), Fault.status(429, retry_after=1))
    sleeps: list[float] = []
    table = provider(ms, sleeps).fetch_bars(["MSFT"], exchange_mic="XNAS", **ONE_WEEK)
    assert table.num_rows == 5
    assert len(ms.requests) == 3
    assert sleeps == [2.0, 1.0]


def test_retry_after_longer_than_the_backoff_cap_is_handed_to_the_caller(
    ms: MarketstackStub,
) -> None:
    ms.inject(Fault.status(429, retry_after=3600))
    with pytest.raises(TransientError) as caught:
        provider(ms, [], provider_backoff_max_seconds=60).fetch_bars(
            ["MSFT"], exchange_mic="XNAS", **ONE_WEEK
        )
    assert caught.value.code == "rate_limit_reached"
    assert caught.value.retry_after == 3600.0
    assert len(ms.requests) == 1


def test_retries_exhausted_raise_transient_error(ms: MarketstackStub) -> None:
    ms.inject(*[Fault.status(500)] * 4)
    sleeps: list[float] = []
    with pytest.raises(TransientError) as caught:
        provider(ms, sleeps, provider_max_retries=3).fetch_bars(
            ["MSFT"], exchange_mic="XNAS", **ONE_WEEK
        )
    assert caught.value.code == "internal_error"
    assert str(caught.value).startswith("marketstack: giving up after 4 attempts: ")
    assert len(ms.requests) == 4
    assert len(sleeps) == 3
    # full jitter: each wait lies in [0, base * 2^attempt]
    assert all(0 <= s <= 0.01 * 2**i for i, s in enumerate(sleeps))


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault.error_200("usage_limit_reached"), "usage_limit_reached"),
        (Fault.error("usage_limit_reached", 429), "usage_limit_reached"),
        (Fault.error("too_many_requests", 429), "too_many_requests"),
        (Fault.error("function_access_restricted", 403), "function_access_restricted"),
        (Fault.error("validation_error", 422), "validation_error"),
        (Fault.error_200("invalid_access_key"), "invalid_access_key"),
        (Fault.raw(404, "<html>not here</html>", content_type="text/html"), "http-404"),
    ],
    ids=["usage-200", "usage-429", "monthly-429", "restricted", "validation", "key-200", "html"],
)
def test_permanent_errors_are_not_retried(ms: MarketstackStub, fault: Fault, code: str) -> None:
    ms.inject(fault)
    with pytest.raises(PermanentError) as caught:
        provider(ms, []).fetch_bars(["MSFT"], exchange_mic="XNAS", **ONE_WEEK)
    assert caught.value.code == code
    assert len(ms.requests) == 1


def test_invalid_key_is_permanent_and_never_shown(
    stub: MarketstackStub, log_buffer: io.StringIO
) -> None:
    stub.clear()
    wrong = "WRONG-key-77e1"
    p = provider(stub, [], marketstack_api_key=wrong)
    with pytest.raises(PermanentError) as caught:
        p.fetch_bars(["MSFT"], exchange_mic="XNAS", **ONE_WEEK)
    assert caught.value.code == "invalid_access_key"
    assert str(caught.value) == (
        "marketstack: invalid_access_key: You have not supplied a valid API Access Key."
    )
    assert stub.requests[0].params["access_key"] == wrong
    logs = log_buffer.getvalue()
    assert "access_key=***" in logs
    assert wrong not in logs
    assert wrong not in repr(caught.value) + repr(caught.value.fields)


def test_key_never_appears_in_logs_or_errors(ms: MarketstackStub, log_buffer: io.StringIO) -> None:
    ms.inject(
        Fault.status(429, retry_after=0),
        Fault.delay(1.5),
        Fault.truncate(),
        Fault.reset(),
        Fault.status(500),
    )
    errors: list[StockDataError] = []
    p = provider(ms, [], provider_timeout_seconds=0.5, provider_max_retries=5)
    table = p.fetch_bars(["MSFT"], exchange_mic="XNAS", **ONE_WEEK)
    assert table.num_rows == 5
    ms.inject(*[Fault.reset()] * 2)
    with pytest.raises(TransientError) as transient:
        provider(ms, [], provider_max_retries=1).fetch_bars(
            ["MSFT"], exchange_mic="XNAS", **ONE_WEEK
        )
    errors.append(transient.value)
    ms.inject(*[Fault.delay(1.5)] * 2)
    with pytest.raises(TransientError) as timeout:
        provider(ms, [], provider_timeout_seconds=0.3, provider_max_retries=1).fetch_bars(
            ["MSFT"], exchange_mic="XNAS", **ONE_WEEK
        )
    errors.append(timeout.value)
    assert transient.value.code == "connection-error"
    assert timeout.value.code == "timeout"
    logs = log_buffer.getvalue()
    assert event_names(logs).count("provider_retry") == 7  # 5 + 1 + 1
    assert "access_key=***" in logs
    assert KEY not in logs
    for err in errors:
        assert KEY not in f"{err} {err!r} {err.fields}"
        assert err.__cause__ is None


def test_missing_key_is_a_configuration_error() -> None:
    with pytest.raises(StockDataError) as caught:
        get_provider("marketstack", ProviderSettings(marketstack_api_key=None))
    assert caught.value.code == "configuration"
    assert str(caught.value) == (
        "STOCKDATA_MARKETSTACK_API_KEY is not set: get a key from marketstack and export it"
    )
