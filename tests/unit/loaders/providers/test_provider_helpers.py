"""Pure pieces of the providers: parsing, error mapping, backoff, settings, the registry."""

from __future__ import annotations

import datetime as dt
import random

import pytest

import lake
from loaders.providers import (
    ProviderSettings,
    Reply,
    RetryPolicy,
    SyntheticProvider,
    check_marketstack,
    eodhd_symbol,
    get_provider,
    parse_retry_after,
    provider_names,
    tiingo_symbol,
)
from loaders.providers._arrow import batched, to_date, to_volume, unique
from stockdata.errors import (
    ConfigurationError,
    CredentialError,
    InvalidInputError,
    PermanentError,
    TransientError,
)


def test_registry_knows_every_provider() -> None:
    assert provider_names() == ["eodhd", "file", "marketstack", "synthetic", "tiingo"]
    with pytest.raises(ConfigurationError) as caught:
        get_provider("yahoo", None)
    assert str(caught.value) == (
        "unknown provider 'yahoo': choose one of eodhd, file, marketstack, synthetic, tiingo"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2021-04-09T00:00:00+0000", dt.date(2021, 4, 9)),
        ("2019-01-02T00:00:00.000Z", dt.date(2019, 1, 2)),
        ("2017-01-05", dt.date(2017, 1, 5)),
        ("09/04/2021", None),
        (None, None),
        (20210409, None),
    ],
)
def test_dates(raw: object, expected: dt.date | None) -> None:
    assert to_date(raw) == expected


def test_volumes_and_batches() -> None:
    assert [to_volume(v) for v in (77522654.0, "123", 10.6, None, "n/a", float("nan"))] == [
        77522654,
        123,
        11,
        None,
        None,
        None,
    ]
    assert [len(b) for b in batched([str(i) for i in range(250)], 100)] == [100, 100, 50]
    assert unique(["MSFT", " GOOG", "MSFT", ""]) == ["MSFT", "GOOG"]


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, "rate_limit_reached", TransientError),
        (200, "rate_limit_reached", TransientError),
        (500, "internal_error", TransientError),
        (503, "something_new", TransientError),
        (429, "usage_limit_reached", CredentialError),
        (200, "usage_limit_reached", CredentialError),
        (401, "invalid_access_key", CredentialError),
        (200, "missing_access_key", CredentialError),
        (200, "inactive_user", CredentialError),
        (422, "validation_error", PermanentError),
        (403, "function_access_restricted", CredentialError),
        (200, "something_new", PermanentError),
    ],
)
def test_marketstack_error_mapping(status: int, code: str, kind: type[Exception]) -> None:
    reply = Reply(status, {"error": {"code": code, "message": "m", "context": {}}}, "")
    with pytest.raises(kind) as caught:
        check_marketstack(reply)
    assert caught.value.code == code  # type: ignore[attr-defined]
    # a key or quota error says "this process is broken", a job error does not
    assert isinstance(caught.value, CredentialError) == (kind is CredentialError)


def test_marketstack_success_passes() -> None:
    check_marketstack(Reply(200, {"pagination": {}, "data": []}, ""))


def test_backoff_is_full_jitter_capped_and_respects_retry_after() -> None:
    policy = RetryPolicy(backoff_base_seconds=0.5, backoff_max_seconds=4.0)
    rng = random.Random(7)
    for attempt in range(8):
        delay = policy.backoff(attempt, None, rng)
        assert 0.0 <= delay <= min(4.0, 0.5 * 2**attempt)
    assert policy.backoff(0, 3.0, rng) == 3.0


def test_retry_after_header_forms() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_marketstack_version_switches_the_root() -> None:
    v1 = ProviderSettings(marketstack_base_url="http://h:1/v2", marketstack_version="v1")
    assert v1.marketstack_url() == "http://h:1/v1"
    assert ProviderSettings().marketstack_url() == "https://api.marketstack.com/v2"
    other = ProviderSettings(marketstack_base_url="https://api.apilayer.net/marketstack/")
    assert other.marketstack_url() == "https://api.apilayer.net/marketstack/v2"


def test_keys_from_env_and_refused_defaults_in_prod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKDATA_MARKETSTACK_API_KEY", "from-env")
    assert ProviderSettings().api_key("marketstack") == "from-env"
    assert "from-env" not in repr(ProviderSettings())
    monkeypatch.setenv("STOCKDATA_PROFILE", "prod")
    monkeypatch.setenv("STOCKDATA_TIINGO_API_KEY", "stockdata-dev")
    with pytest.raises(ConfigurationError) as caught:
        ProviderSettings().api_key("tiingo")
    assert str(caught.value) == (
        "STOCKDATA_TIINGO_API_KEY must be set to a real secret when STOCKDATA_PROFILE=prod"
    )


def test_symbol_spellings() -> None:
    assert tiingo_symbol("BRK.B") == "brk-b"
    assert eodhd_symbol("MSFT", "XNAS") == "MSFT.US"
    assert eodhd_symbol("VOD", "xlon") == "VOD.LSE"
    assert eodhd_symbol("SAP", "XETR") == "SAP.XETRA"
    assert eodhd_symbol("X", "XABC", exchange_code="ZZ") == "X.ZZ"
    with pytest.raises(InvalidInputError):  # the job's exchange, not this process, is at fault
        eodhd_symbol("X", "XABC")


def test_synthetic_provider_wraps_the_lake_generator() -> None:
    p = get_provider("synthetic", None, seed=3, tickers=["aaa"])
    assert isinstance(p, SyntheticProvider)
    span = {"date_from": dt.date(2024, 1, 1), "date_to": dt.date(2024, 1, 31)}
    table = p.fetch_bars(["AAA", "BBB"], exchange_mic="XNYS", **span)
    assert table.schema == lake.BAR_SCHEMA
    # January 2024 had 21 NYSE sessions
    assert table.num_rows == 42
    assert set(table.column("source").to_pylist()) == {"synthetic"}
    direct = lake.synthetic_bars(["AAA", "BBB"], exchange_mic="XNYS", seed=3, **span)
    assert table.column("close").to_pylist() == direct.column("close").to_pylist()
    assert p.list_tickers("XNYS") == [
        {"exchange_mic": "XNYS", "symbol": "AAA", "name": None, "currency_code": None}
    ]


def test_json_bars_keeps_going_past_a_bad_value() -> None:
    from loaders.providers._arrow import json_bars
    from loaders.providers._marketstack import FIELDS

    good = {
        "symbol": "MSFT",
        "date": "2021-04-09T00:00:00+0000",
        "open": 252.87,
        "high": 255.99,
        "low": 252.44,
        "close": 255.85,
        "volume": 24326800.0,
    }
    bad = good | {"date": "09/04/2021", "close": "n/a", "volume": None, "symbol": None}
    table = json_bars([good, bad], FIELDS, source="marketstack", exchange_mic="XNAS")
    assert table.schema == lake.BAR_SCHEMA
    rows = table.to_pylist()
    assert (rows[0]["trade_date"], rows[0]["close"], rows[0]["volume"]) == (
        dt.date(2021, 4, 9),
        255.85,
        24326800,
    )
    assert (rows[1]["ticker"], rows[1]["trade_date"], rows[1]["close"], rows[1]["volume"]) == (
        None,
        None,
        None,
        None,
    )
    assert rows[1]["open"] == 252.87
    checked = lake.validate(table, today=dt.date(2022, 1, 1))
    assert (checked.good.num_rows, checked.rejects.column("reason").to_pylist()) == (
        1,
        ["missing required value"],
    )
