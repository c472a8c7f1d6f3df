"""Tiingo and EODHD providers against loopback stubs speaking their documented formats."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lake
from loaders.providers import EodhdProvider, ProviderSettings, TiingoProvider, get_provider
from stockdata.errors import (
    CredentialError,
    InvalidInputError,
    PermanentError,
    TransientError,
)
from tests.stubs import eodhd as eodhd_stub
from tests.stubs import tiingo as tiingo_stub
from tests.stubs.eodhd import EodhdStub
from tests.stubs.logs import log_lines
from tests.stubs.tiingo import Fault, TiingoStub


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    """The real, scrubbed JSON log lines written during the test."""
    with log_lines() as out:
        yield out


KEY = "tok-SECRET-91ab77"
WEEK = {"date_from": dt.date(2017, 11, 6), "date_to": dt.date(2017, 11, 10)}
CLOSES = [84.47, 84.26, 84.56, 84.09, 83.87]


def _settings(**values: Any) -> ProviderSettings:
    return ProviderSettings(
        provider_backoff_base_seconds=0.01,
        provider_max_retries=3,
        provider_timeout_seconds=0.5,
        **values,
    )


@pytest.fixture(scope="module")
def tiingo_server(samples: Path) -> Iterator[TiingoStub]:
    bars = tiingo_stub.bars_from_csv(samples / "MSFT.csv", "MSFT")
    bars["brk-b"] = [
        {"date": "2017-11-10", "open": 180, "high": 182, "low": 179, "close": 181.5, "volume": 3e6}
    ]
    with TiingoStub(bars, api_key=KEY) as server:
        yield server


@pytest.fixture
def tiingo(tiingo_server: TiingoStub) -> Iterator[TiingoStub]:
    tiingo_server.clear()
    yield tiingo_server
    tiingo_server.clear()


def tiingo_provider(stub: TiingoStub, key: str = KEY) -> TiingoProvider:
    p = get_provider(
        "tiingo",
        _settings(tiingo_base_url=stub.base_url, tiingo_api_key=key),
        sleep=lambda _s: None,
    )
    assert isinstance(p, TiingoProvider)
    return p


def test_tiingo_prices_with_the_token_in_the_header(tiingo: TiingoStub) -> None:
    table = tiingo_provider(tiingo).fetch_bars(["MSFT", "BRK.B"], exchange_mic="XNYS", **WEEK)
    assert table.schema == lake.BAR_SCHEMA
    msft = [r for r in table.to_pylist() if r["ticker"] == "MSFT"]
    assert [r["close"] for r in msft] == CLOSES
    assert msft[-1]["trade_date"] == dt.date(2017, 11, 10)
    assert msft[-1]["volume"] == 19396301
    assert msft[-1]["split_factor"] == 1.0
    brk = [r for r in table.to_pylist() if r["ticker"] == "BRK.B"]
    assert [(r["close"], r["source"]) for r in brk] == [(181.5, "tiingo")]
    assert [r.path for r in tiingo.requests] == [
        "/tiingo/daily/msft/prices",
        "/tiingo/daily/brk-b/prices",
    ]
    assert tiingo.requests[0].params == {
        "startDate": "2017-11-06",
        "endDate": "2017-11-10",
        "format": "json",
    }
    assert tiingo.requests[0].headers["Authorization"] == f"Token {KEY}"


def test_tiingo_faults(tiingo: TiingoStub) -> None:
    tiingo.inject(Fault.status(429, retry_after=0), Fault.truncate(), Fault.status(502))
    table = tiingo_provider(tiingo).fetch_bars(["MSFT"], exchange_mic="XNAS", **WEEK)
    assert table.column("close").to_pylist() == CLOSES
    assert len(tiingo.requests) == 4
    tiingo.inject(*[Fault.status(500)] * 4)
    with pytest.raises(TransientError) as caught:
        tiingo_provider(tiingo).fetch_bars(["MSFT"], exchange_mic="XNAS", **WEEK)
    assert caught.value.code == "server_error"


def test_tiingo_permanent_errors(tiingo: TiingoStub, log_buffer: io.StringIO) -> None:
    with pytest.raises(PermanentError) as unknown:
        tiingo_provider(tiingo).fetch_bars(["NOPE"], exchange_mic="XNAS", **WEEK)
    assert unknown.value.code == "not_found"
    assert str(unknown.value) == "tiingo: Error: Ticker 'NOPE' not found"
    assert not isinstance(unknown.value, CredentialError)
    with pytest.raises(CredentialError) as refused:
        tiingo_provider(tiingo, key="bad-token-1234").fetch_bars(
            ["MSFT"], exchange_mic="XNAS", **WEEK
        )
    assert refused.value.code == "unauthorized"
    tiingo.inject(Fault.error_200("x", message="Error: something odd"))
    with pytest.raises(PermanentError) as odd:
        tiingo_provider(tiingo).fetch_bars(["MSFT"], exchange_mic="XNAS", **WEEK)
    assert odd.value.code == "tiingo_error"
    assert len(tiingo.requests) == 3
    logs = log_buffer.getvalue()
    assert KEY not in logs
    assert "bad-token-1234" not in logs + str(refused.value)


def test_tiingo_has_no_list_endpoints(tiingo: TiingoStub) -> None:
    with pytest.raises(PermanentError) as caught:
        tiingo_provider(tiingo).list_exchanges()
    assert caught.value.code == "not-supported"


# -- EODHD ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eodhd_server(samples: Path) -> Iterator[EodhdStub]:
    bars = eodhd_stub.bars_from_csv(samples / "MSFT.csv", "MSFT.US")
    bars["VOD.LSE"] = [
        {"date": "2017-11-10", "open": 220, "high": 222, "low": 219, "close": 221.0, "volume": 5e7}
    ]
    symbols = {
        "US": [
            {
                "Code": "MSFT",
                "Name": "Microsoft Corporation",
                "Exchange": "NASDAQ",
                "Currency": "USD",
            },
            {"Code": "IBM", "Name": "IBM", "Exchange": "NYSE", "Currency": "USD"},
            {"Code": "XYZOTC", "Name": "Pink", "Exchange": "PINK", "Currency": "USD"},
        ]
    }
    with EodhdStub(bars, api_key=KEY, symbols=symbols) as server:
        yield server


@pytest.fixture
def eodhd(eodhd_server: EodhdStub) -> Iterator[EodhdStub]:
    eodhd_server.clear()
    yield eodhd_server
    eodhd_server.clear()


def eodhd_provider(stub: EodhdStub, key: str = KEY) -> EodhdProvider:
    p = get_provider(
        "eodhd", _settings(eodhd_base_url=stub.base_url, eodhd_api_key=key), sleep=lambda _s: None
    )
    assert isinstance(p, EodhdProvider)
    return p


def test_eodhd_prices_with_exchange_suffixes(eodhd: EodhdStub) -> None:
    p = eodhd_provider(eodhd)
    us = p.fetch_bars(["MSFT"], exchange_mic="XNAS", **WEEK)
    assert us.column("close").to_pylist() == CLOSES
    assert us.column("adj_close").to_pylist() == CLOSES
    assert us.column("volume")[-1].as_py() == 19396301
    lse = p.fetch_bars(["VOD"], exchange_mic="XLON", **WEEK)
    assert lse.to_pylist() == [
        {
            "ticker": "VOD",
            "exchange_mic": "XLON",
            "trade_date": dt.date(2017, 11, 10),
            "open": 220.0,
            "high": 222.0,
            "low": 219.0,
            "close": 221.0,
            "volume": 50_000_000,
            "adj_open": None,
            "adj_high": None,
            "adj_low": None,
            "adj_close": 221.0,
            "adj_volume": None,
            "split_factor": None,
            "dividend": None,
            "currency": None,
            "source": "eodhd",
        }
    ]
    assert [r.path for r in eodhd.requests] == ["/api/eod/MSFT.US", "/api/eod/VOD.LSE"]
    assert eodhd.requests[0].params == {
        "from": "2017-11-06",
        "to": "2017-11-10",
        "period": "d",
        "api_token": KEY,
        "fmt": "json",
    }
    with pytest.raises(InvalidInputError):
        p.fetch_bars(["X"], exchange_mic="XQQQ", **WEEK)


def test_eodhd_lists(eodhd: EodhdStub) -> None:
    p = eodhd_provider(eodhd)
    assert [(e["mic"], e["currency_code"], e["timezone"]) for e in p.list_exchanges()] == [
        ("XNAS", "USD", None),
        ("XNYS", "USD", None),
        ("XLON", "GBP", None),
    ]
    assert p.list_tickers("XNAS") == [
        {
            "exchange_mic": "XNAS",
            "symbol": "MSFT",
            "name": "Microsoft Corporation",
            "currency_code": "USD",
        }
    ]
    assert [t["symbol"] for t in p.list_tickers("XNYS")] == ["IBM"]


@pytest.mark.parametrize(
    ("fault", "code", "credential"),
    [
        (Fault.status(402), "payment_required", True),
        (Fault.status(404), "not_found", False),
        (Fault.status(401), "unauthenticated", True),
    ],
)
def test_eodhd_permanent_errors(
    eodhd: EodhdStub, fault: Fault, code: str, credential: bool
) -> None:
    eodhd.inject(fault)
    with pytest.raises(PermanentError) as caught:
        eodhd_provider(eodhd).fetch_bars(["MSFT"], exchange_mic="XNAS", **WEEK)
    assert caught.value.code == code
    assert isinstance(caught.value, CredentialError) is credential
    assert KEY not in str(caught.value)
    assert len(eodhd.requests) == 1


def test_eodhd_transient_then_success_and_key_scrubbed(
    eodhd: EodhdStub, log_buffer: io.StringIO
) -> None:
    eodhd.inject(Fault.status(429, retry_after=0), Fault.delay(1.5))
    table = eodhd_provider(eodhd).fetch_bars(["MSFT"], exchange_mic="XNAS", **WEEK)
    assert table.column("close").to_pylist() == CLOSES
    assert len(eodhd.requests) == 3
    logs = log_buffer.getvalue()
    assert "api_token=***" in logs
    assert KEY not in logs
