"""Corporate actions from every provider, against loopback stubs in their documented formats.

MSFT's public split history (nine splits, 288x in all) and two of its cash dividends are
the data; every provider's answer must come out as the same rows of the actions table."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import lake
from loaders.providers import (
    ActionSource,
    EodhdProvider,
    MarketstackProvider,
    ProviderSettings,
    SyntheticProvider,
    TiingoProvider,
    get_provider,
    split_ratio,
    to_actions,
)
from stockdata.errors import CredentialError, InvalidInputError, PermanentError, TransientError
from tests.stubs.eodhd import EodhdStub
from tests.stubs.logs import log_lines
from tests.stubs.marketstack import Fault, MarketstackStub
from tests.stubs.tiingo import TiingoStub

KEY = "ak-SECRET-actions-5150"
#: MSFT's splits: (ex-date, new shares per old share).
MSFT_SPLITS = [
    (dt.date(1987, 9, 21), 2.0),
    (dt.date(1990, 4, 16), 2.0),
    (dt.date(1991, 6, 27), 1.5),
    (dt.date(1992, 6, 15), 1.5),
    (dt.date(1994, 5, 23), 2.0),
    (dt.date(1996, 12, 9), 2.0),
    (dt.date(1998, 2, 23), 2.0),
    (dt.date(1999, 3, 29), 2.0),
    (dt.date(2003, 2, 18), 2.0),
]
MSFT_DIVIDENDS = [(dt.date(2017, 8, 15), 0.39), (dt.date(2017, 11, 15), 0.42)]
ALL = {"date_from": dt.date(1986, 1, 1), "date_to": dt.date(2024, 12, 31)}


def expected(
    source: str,
    *,
    mic: str = "XNAS",
    currency: str | None = None,
    declared: dict[dt.date, dt.date] | None = None,
) -> list[dict[str, Any]]:
    """The rows every provider must give for MSFT, in the actions table's key order."""
    rows = [
        {
            "ticker": "MSFT",
            "exchange_mic": mic,
            "ex_date": day,
            "kind": "split",
            "ratio": ratio,
            "amount": None,
            "currency": None,
            "new_symbol": None,
            "declared_date": None,
            "source": source,
        }
        for day, ratio in MSFT_SPLITS
    ] + [
        {
            "ticker": "MSFT",
            "exchange_mic": mic,
            "ex_date": day,
            "kind": "dividend",
            "ratio": None,
            "amount": amount,
            "currency": currency,
            "new_symbol": None,
            "declared_date": (declared or {}).get(day),
            "source": source,
        }
        for day, amount in MSFT_DIVIDENDS
    ]
    return sorted(rows, key=lambda r: (r["ex_date"], r["kind"]))


def ordered(table: pa.Table) -> list[dict[str, Any]]:
    assert table.schema == lake.ACTION_INPUT_SCHEMA
    return sorted(table.to_pylist(), key=lambda r: (r["ticker"], r["ex_date"], r["kind"]))


def _settings(**values: Any) -> ProviderSettings:
    return ProviderSettings(
        provider_backoff_base_seconds=0.01,
        provider_max_retries=3,
        provider_timeout_seconds=1.0,
        **values,
    )


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    with log_lines() as out:
        yield out


# -- Marketstack: /splits and /dividends ----------------------------------------------------


def marketstack_stub(**options: Any) -> MarketstackStub:
    splits = {"MSFT": [{"date": d.isoformat(), "split_factor": r} for d, r in MSFT_SPLITS]}
    dividends = {"MSFT": [{"date": d.isoformat(), "dividend": a} for d, a in MSFT_DIVIDENDS]}
    return MarketstackStub({}, api_key=KEY, splits=splits, dividends=dividends, **options)


def marketstack(server: MarketstackStub, **values: Any) -> MarketstackProvider:
    p = get_provider(
        "marketstack",
        _settings(marketstack_base_url=server.base_url, marketstack_api_key=KEY, **values),
        sleep=lambda _s: None,
    )
    assert isinstance(p, MarketstackProvider)
    return p


def test_marketstack_actions_from_splits_and_dividends_paged() -> None:
    with marketstack_stub() as server:
        p = marketstack(server, provider_page_size=4)
        assert isinstance(p, ActionSource) and p.actions_on_bars is True
        table = p.fetch_actions(["MSFT", "GOOG", "MSFT"], exchange_mic="XNAS", **ALL)
        assert ordered(table) == expected("marketstack")
        # 9 splits in pages of 4 (3 calls), 2 dividends in one
        assert [(r.path, r.params["offset"]) for r in server.requests] == [
            ("/v2/splits", "0"),
            ("/v2/splits", "4"),
            ("/v2/splits", "8"),
            ("/v2/dividends", "0"),
        ]
        assert server.requests[0].params == {
            "access_key": KEY,
            "symbols": "MSFT,GOOG",
            "date_from": "1986-01-01",
            "date_to": "2024-12-31",
            "limit": "4",
            "offset": "0",
        }
        server.clear()
        one_year = p.fetch_actions(
            ["MSFT"],
            exchange_mic="XNAS",
            date_from=dt.date(2017, 1, 1),
            date_to=dt.date(2017, 12, 31),
        )
        assert [(r["ex_date"], r["amount"]) for r in ordered(one_year)] == MSFT_DIVIDENDS


def test_marketstack_actions_survive_faults_and_classify_errors(log_buffer: io.StringIO) -> None:
    with marketstack_stub() as server:
        server.inject(Fault.status(429, retry_after=0), Fault.truncate(), Fault.status(503))
        table = marketstack(server).fetch_actions(["MSFT"], exchange_mic="XNAS", **ALL)
        assert ordered(table) == expected("marketstack")
        assert len(server.requests) == 5  # three faults, then splits and dividends

        server.inject(*[Fault.status(500)] * 4)
        with pytest.raises(TransientError):
            marketstack(server).fetch_actions(["MSFT"], exchange_mic="XNAS", **ALL)

        with pytest.raises(CredentialError) as refused:
            get_provider(
                "marketstack",
                _settings(marketstack_base_url=server.base_url, marketstack_api_key="bad-key-77"),
            ).fetch_actions(["MSFT"], exchange_mic="XNAS", **ALL)  # type: ignore[attr-defined]
        assert refused.value.code == "invalid_access_key"
    assert KEY not in log_buffer.getvalue()
    assert "bad-key-77" not in log_buffer.getvalue() + str(refused.value)


def test_marketstack_plan_without_actions_fails_the_job_not_the_worker() -> None:
    with marketstack_stub(actions_in_plan=False) as server:
        with pytest.raises(PermanentError) as caught:
            marketstack(server).fetch_actions(["MSFT"], exchange_mic="XNAS", **ALL)
        assert caught.value.code == "actions-not-in-plan"
        assert not isinstance(caught.value, CredentialError)
        assert str(caught.value) == (
            "marketstack: the API plan does not include corporate actions (marketstack: "
            "function_access_restricted: The current subscription plan does not support this "
            "API endpoint.)"
        )


def test_marketstack_bad_rows_become_nulls_for_the_lake_to_reject() -> None:
    splits = {"MSFT": [{"date": "1987-09-21", "split_factor": "two"}]}
    with MarketstackStub({}, api_key=KEY, splits=splits) as server:
        table = marketstack(server).fetch_actions(["MSFT"], exchange_mic="XNAS", **ALL)
    assert [(r["ex_date"], r["kind"], r["ratio"]) for r in table.to_pylist()] == [
        (dt.date(1987, 9, 21), "split", None)
    ]
    good, rejects = lake.validate_actions(table)
    assert good.num_rows == 0
    assert rejects.column("reason").to_pylist() == [
        "action: split needs a positive ratio other than 1, got None"
    ]


# -- EODHD: /splits and /div ------------------------------------------------------------------


def eodhd_stub(**options: Any) -> EodhdStub:
    splits = {
        "MSFT.US": [
            {"date": d.isoformat(), "split": f"{r * 2:.6f}/2.000000"} for d, r in MSFT_SPLITS
        ]
    }
    dividends = {
        "MSFT.US": [
            {
                "date": d.isoformat(),
                "declarationDate": (d - dt.timedelta(days=28)).isoformat(),
                "recordDate": (d + dt.timedelta(days=1)).isoformat(),
                "paymentDate": (d + dt.timedelta(days=28)).isoformat(),
                "period": "Quarterly",
                "value": a,
                "unadjustedValue": a,
                "currency": "USD",
            }
            for d, a in MSFT_DIVIDENDS
        ]
    }
    return EodhdStub({}, api_key=KEY, splits=splits, dividends=dividends, **options)


def eodhd(server: EodhdStub) -> EodhdProvider:
    p = get_provider(
        "eodhd", _settings(eodhd_base_url=server.base_url, eodhd_api_key=KEY), sleep=lambda _s: None
    )
    assert isinstance(p, EodhdProvider)
    return p


def test_eodhd_actions_use_the_paid_dividend_and_text_ratios() -> None:
    declared = {d: d - dt.timedelta(days=28) for d, _a in MSFT_DIVIDENDS}
    with eodhd_stub() as server:
        # EODHD's `value` is split-adjusted by EODHD; the cash paid is `unadjustedValue`
        server.dividends["MSFT.US"][0]["value"] = 0.0975
        p = eodhd(server)
        assert p.actions_on_bars is False
        table = p.fetch_actions(["MSFT"], exchange_mic="XNAS", **ALL)
        assert ordered(table) == expected("eodhd", currency="USD", declared=declared)
        assert [r.path for r in server.requests] == ["/api/splits/MSFT.US", "/api/div/MSFT.US"]
        assert server.requests[0].params == {
            "from": "1986-01-01",
            "to": "2024-12-31",
            "api_token": KEY,
            "fmt": "json",
        }


def test_eodhd_actions_faults_and_plans() -> None:
    with eodhd_stub() as server:
        server.inject(Fault.status(429, retry_after=0), Fault.reset())
        assert len(eodhd(server).fetch_actions(["MSFT"], exchange_mic="XNAS", **ALL)) == 11
        server.inject(Fault.status(402))
        with pytest.raises(CredentialError) as quota:
            eodhd(server).fetch_actions(["MSFT"], exchange_mic="XNAS", **ALL)
        assert quota.value.code == "payment_required"  # the quota: release and stop
    with eodhd_stub(actions_in_plan=False) as server:
        with pytest.raises(PermanentError) as plan:
            eodhd(server).fetch_actions(["MSFT"], exchange_mic="XNAS", **ALL)
        assert plan.value.code == "actions-not-in-plan"
        assert not isinstance(plan.value, CredentialError)


# -- Tiingo and the synthetic generator: actions on the bars -----------------------------------


def test_tiingo_actions_come_from_split_factor_and_div_cash() -> None:
    bars = {
        "msft": [
            {"date": "2003-02-14", "open": 46, "high": 47, "low": 45, "close": 46.5, "volume": 1e7},
            {
                "date": "2003-02-18",
                "open": 24.6,
                "high": 25,
                "low": 24.4,
                "close": 24.96,
                "volume": 2e7,
                "split_factor": 2.0,
            },
            {
                "date": "2003-02-19",
                "open": 24.8,
                "high": 25,
                "low": 24.5,
                "close": 24.53,
                "volume": 2e7,
                "dividend": 0.08,
            },
        ]
    }
    with TiingoStub(bars, api_key=KEY) as server:
        p = get_provider("tiingo", _settings(tiingo_base_url=server.base_url, tiingo_api_key=KEY))
        assert isinstance(p, TiingoProvider) and p.actions_on_bars is True
        table = p.fetch_actions(["MSFT"], exchange_mic="XNAS", **ALL)
        assert [r.headers["Authorization"] for r in server.requests] == [f"Token {KEY}"]
    assert [(r["ex_date"], r["kind"], r["ratio"], r["amount"]) for r in ordered(table)] == [
        (dt.date(2003, 2, 18), "split", 2.0, None),
        (dt.date(2003, 2, 19), "dividend", None, 0.08),
    ]
    assert set(table.column("source").to_pylist()) == {"tiingo"}


def test_synthetic_actions_are_those_on_its_bars() -> None:
    p = SyntheticProvider(seed=0)
    span = {"date_from": dt.date(2015, 1, 1), "date_to": dt.date(2016, 12, 31)}
    table = p.fetch_actions(["SYN0001"], exchange_mic="XNYS", **span)
    on_bars = lake.actions_from_bars(
        lake.synthetic_bars(["SYN0001"], exchange_mic="XNYS", seed=0, source="synthetic", **span)
    )
    assert table.to_pylist() == on_bars.to_pylist()
    splits = [(r["ex_date"], r["ratio"]) for r in table.to_pylist() if r["kind"] == "split"]
    assert splits == [(dt.date(2015, 12, 17), 2.0)]


# -- files ------------------------------------------------------------------------------------


def test_an_actions_file_in_any_spelling(tmp_path: Path) -> None:
    path = tmp_path / "actions.csv"
    path.write_text(
        "Symbol,Date,Type,Split,Amount,Currency\n"
        "msft,1991-06-27,Split,3:2,,\n"
        "MSFT,2003-02-18,split,2/1,,\n"
        "MSFT,2017-11-15,dividend,,0.42,USD\n"
    )
    table = get_provider("file", None, path=path, exchange_mic="xnas").read_actions()  # type: ignore[attr-defined]
    assert [
        (r["ticker"], r["exchange_mic"], r["ex_date"], r["kind"], r["ratio"], r["amount"])
        for r in table.to_pylist()
    ] == [
        ("MSFT", "XNAS", dt.date(1991, 6, 27), "split", 1.5, None),
        ("MSFT", "XNAS", dt.date(2003, 2, 18), "split", 2.0, None),
        ("MSFT", "XNAS", dt.date(2017, 11, 15), "dividend", None, 0.42),
    ]
    with pytest.raises(InvalidInputError, match=r"missing action column\(s\) kind"):
        to_actions(pa.table({"ticker": ["A"], "ex_date": ["2020-01-01"]}), exchange_mic="XNAS")
    with pytest.raises(InvalidInputError, match="no exchange_mic column: pass --exchange"):
        to_actions(
            pa.table({"ticker": ["A"], "ex_date": ["2020-01-01"], "kind": ["split"]}),
            exchange_mic=None,
        )


@pytest.mark.parametrize(
    ("text", "ratio"),
    [
        ("4.000000/1.000000", 4.0),
        ("3:2", 1.5),
        ("1/10", 0.1),
        ("2", 2.0),
        (2, 2.0),
        ("0/0", None),
        ("a/b", None),
        ("1/0", None),
        (None, None),
    ],
)
def test_split_ratio(text: Any, ratio: float | None) -> None:
    assert split_ratio(text) == ratio
