"""`sync_catalog` and `stockdata catalog seed --source P` against provider stubs and Postgres."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

import catalog
from loaders.providers import ProviderSettings, get_provider, sync_catalog
from tests.stubs.eodhd import DEFAULT_EXCHANGES as EODHD_EXCHANGES
from tests.stubs.eodhd import EodhdStub
from tests.stubs.marketstack import DEFAULT_EXCHANGES, MarketstackStub

KEY = "ms-SECRET-seed-55d0"

LSE = {
    "name": "London Stock Exchange",
    "acronym": "LSE",
    "mic": "XLON",
    "country": "United Kingdom",
    "country_code": "GB",
    "city": "London",
    "website": "www.londonstockexchange.com",
    "timezone": "Europe/London",
    "currency": "GBP",
}
TICKERS = {
    "XNAS": [
        {"symbol": "MSFT", "name": "Microsoft Corporation"},
        {"symbol": "GOOG", "name": "Alphabet Inc. Class C"},
    ],
    "XLON": [{"symbol": "VOD", "name": "Vodafone Group Plc"}],
}


@pytest.fixture(scope="module")
def stub() -> Iterator[MarketstackStub]:
    with MarketstackStub(
        api_key=KEY, exchanges=[*DEFAULT_EXCHANGES, LSE], tickers=TICKERS
    ) as server:
        yield server


def _settings(stub: MarketstackStub) -> ProviderSettings:
    return ProviderSettings(marketstack_base_url=stub.base_url, marketstack_api_key=KEY)


def _tickers(engine: Engine) -> list[tuple[str, str, str | None, str | None]]:
    with engine.connect() as conn:
        return [
            tuple(r)  # type: ignore[misc]
            for r in conn.execute(
                sa.text(
                    "SELECT e.mic, t.symbol, t.name, t.currency_code FROM tickers t "
                    "JOIN exchanges e ON e.id = t.exchange_id ORDER BY e.mic, t.symbol"
                )
            )
        ]


def test_sync_into_an_empty_catalog_then_again_changes_nothing(
    db: Engine, stub: MarketstackStub
) -> None:
    provider = get_provider("marketstack", _settings(stub))
    with catalog.session_scope(db) as session:
        first = sync_catalog(session, provider)
    assert (first.exchanges_inserted, first.exchanges_updated, first.exchanges_skipped) == (3, 0, 0)
    assert (first.tickers_inserted, first.tickers_updated, first.currencies_inserted) == (3, 0, 2)
    with catalog.session_scope(db) as session:
        second = sync_catalog(session, provider)
    assert (second.exchanges_inserted, second.exchanges_updated) == (0, 0)
    assert (second.tickers_inserted, second.tickers_updated, second.currencies_inserted) == (
        0,
        0,
        0,
    )
    assert _tickers(db) == [
        ("XLON", "VOD", "Vodafone Group Plc", "GBP"),
        ("XNAS", "GOOG", "Alphabet Inc. Class C", "USD"),
        ("XNAS", "MSFT", "Microsoft Corporation", "USD"),
    ]
    with catalog.session_scope(db) as session:
        lse = catalog.get_exchange(session, "XLON")
        assert (lse.name, lse.timezone, lse.currency_code, lse.city) == (
            "London Stock Exchange",
            "Europe/London",
            "GBP",
            "London",
        )


def test_sync_only_some_exchanges_keeps_calendar_fields(
    seeded: Engine, stub: MarketstackStub
) -> None:
    provider = get_provider("marketstack", _settings(stub))
    with catalog.session_scope(seeded) as session:
        result = sync_catalog(session, provider, exchanges=["xlon"])
    assert (result.exchanges_inserted, result.exchanges_updated) == (0, 1)
    assert (result.tickers_inserted, result.tickers_updated) == (1, 0)
    with catalog.session_scope(seeded) as session:
        lse = catalog.get_exchange(session, "XLON")
        assert (lse.website, lse.calendar_code, lse.timezone) == (
            "www.londonstockexchange.com",
            "XLON",
            "Europe/London",
        )
    assert ("XLON", "VOD", "Vodafone Group Plc", "GBP") in _tickers(seeded)


def test_exchanges_without_timezone_are_skipped_unless_known(seeded: Engine) -> None:
    unknown = {**EODHD_EXCHANGES[1], "Code": "ZZ", "OperatingMIC": "XZZZ", "Currency": "XYZ"}
    symbols = {"US": [{"Code": "AAPL", "Name": "Apple Inc", "Exchange": "NASDAQ"}]}
    with EodhdStub(api_key=KEY, exchanges=[EODHD_EXCHANGES[0], unknown], symbols=symbols) as s:
        provider = get_provider(
            "eodhd", ProviderSettings(eodhd_base_url=s.base_url, eodhd_api_key=KEY)
        )
        with catalog.session_scope(seeded) as session:
            result = sync_catalog(session, provider)
    assert (result.exchanges_inserted, result.exchanges_updated, result.exchanges_skipped) == (
        0,
        2,
        1,
    )
    assert result.tickers_inserted == 1
    with catalog.session_scope(seeded) as session:
        xnas = catalog.get_exchange(session, "XNAS")
        assert (xnas.name, xnas.timezone, xnas.calendar_code) == (
            "USA Stocks",
            "America/New_York",
            "XNYS",
        )
    assert ("XNAS", "AAPL", "Apple Inc", "USD") in _tickers(seeded)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("STOCKDATA_")} | env
    return subprocess.run(
        [sys.executable, "-m", "stockdata", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
    )


def test_cli_seed_from_marketstack(db: Engine, pg_url: str, stub: MarketstackStub) -> None:
    url = sa.make_url(pg_url).render_as_string(hide_password=False)
    env = {
        "STOCKDATA_DATABASE_URL": url,
        "STOCKDATA_MARKETSTACK_BASE_URL": stub.base_url,
        "STOCKDATA_MARKETSTACK_API_KEY": KEY,
    }
    first = _cli("catalog", "seed", "--source", "marketstack", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == (
        "marketstack: exchanges: 3 new, 0 changed, 0 skipped; tickers: 3 new, 0 changed; "
        "currencies: 2 new\n"
    )
    again = _cli("catalog", "seed", "--source", "marketstack", env=env)
    assert again.stdout == (
        "marketstack: exchanges: 0 new, 0 changed, 0 skipped; tickers: 0 new, 0 changed; "
        "currencies: 0 new\n"
    )
    assert KEY not in first.stderr + again.stderr

    wrong = _cli(
        "catalog",
        "seed",
        "--source",
        "marketstack",
        env=env | {"STOCKDATA_MARKETSTACK_API_KEY": "WRONG-cli-key-3e"},
    )
    assert wrong.returncode == 1
    assert wrong.stderr.strip().splitlines()[-1] == (
        "error: marketstack: invalid_access_key: You have not supplied a valid API Access Key."
    )
    assert "WRONG-cli-key-3e" not in wrong.stderr + wrong.stdout

    no_key = _cli(
        "catalog",
        "seed",
        "--source",
        "marketstack",
        env=env | {"STOCKDATA_MARKETSTACK_API_KEY": ""},
    )
    assert (no_key.returncode, no_key.stderr) == (
        1,
        "error: STOCKDATA_MARKETSTACK_API_KEY is not set: get a key from marketstack and "
        "export it\n",
    )
    unknown = _cli("catalog", "seed", "--source", "yahoo", env=env)
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: unknown provider 'yahoo': choose one of ")
