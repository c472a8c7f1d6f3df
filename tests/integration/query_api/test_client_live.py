"""`stockdata.client.Client` against a live uvicorn server on loopback over the sample lake."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import uvicorn
from litestar import Litestar
from sqlalchemy.engine import Engine

import catalog
import lake
from catalog import Role
from query_api import create_app
from query_api._auth import AuthSettings
from query_api._hardening import SecuritySettings
from stockdata.client import ApiError, Client
from tests import _services
from tests.integration.query_api.conftest import api_settings, bars_table, make_app

MSFT_ROWS = 7_983


@contextlib.contextmanager
def _serve(app: Litestar) -> Iterator[str]:
    """`app` on a free loopback port until the test (module) is done."""
    port = _services.free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {port}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


@pytest.fixture(scope="module")
def base_url(sample_lake: lake.LakeSettings) -> Iterator[str]:
    """The API without a catalog (EoD reads need the lake only), SQL on, no rate limit."""
    with _serve(make_app(sample_lake, sql=True)) as url:
        yield url


def test_eod_whole_history_in_one_request(base_url: str) -> None:
    with Client(base_url) as api:
        msft = api.eod("MSFT")
        assert isinstance(msft, pd.DataFrame)
        assert len(msft) == MSFT_ROWS
        assert str(msft["date"].iloc[0]) == "1986-03-13"
        assert msft["close"].iloc[-1] == 83.87
        assert api.counts == {"ok": 1, "not_modified": 0, "retried": 0}
        year = api.eod("msft", start="2008-01-01", end="2008-12-31")
        assert len(year) == 253


def test_pages_are_followed_and_etags_revalidated(base_url: str) -> None:
    with Client(base_url, page_size=1000) as api:
        msft = api.eod("MSFT")
        assert len(msft) == MSFT_ROWS
        assert msft["date"].is_monotonic_increasing and msft["date"].is_unique
        assert api.counts["ok"] == 8  # ceil(7983 / 1000) pages
        again = api.eod("MSFT")
        assert api.counts == {"ok": 8, "not_modified": 8, "retried": 0}
        pd.testing.assert_frame_equal(again, msft)


def test_polars_frames_for_every_kind_of_read(base_url: str) -> None:
    with Client(base_url, frame="polars") as api:
        day = api.eod_on("2008-10-10")
        assert isinstance(day, pl.DataFrame)
        assert day.select("ticker", "close").rows() == [("GOOG", 332.0), ("MSFT", 18.029)]
        point = api.delta("MSFT", 21, date="2008-10-10")
        assert point.select("start_date", "start_close", "pct_change").rows()[0][1:] == (
            22.926,
            -21.360028,
        )
        series = api.delta("MSFT", 21, start="2008-10-01", end="2008-10-10")
        assert series.height == 8
        assert series["end_close"][-1] == 18.029
        movers = api.movers("2008-10-10", 5, order="losers")
        assert movers["rank"].to_list() == [1, 2]
        # 5 sessions to 2008-10-10: MSFT 22.072 -> 18.029 (-18.3%), GOOG 386.91 -> 332 (-14.2%)
        assert movers["ticker"].to_list() == ["MSFT", "GOOG"]
        counted = api.sql("SELECT count(*) AS n FROM eod WHERE ticker = 'MSFT'")
        assert counted["n"].to_list() == [MSFT_ROWS]


@pytest.fixture(scope="module")
def actions_url(
    tmp_path_factory: pytest.TempPathFactory, msft_rows: list[dict[str, Any]]
) -> Iterator[str]:
    """MSFT with its 2003 split and a dividend on 2017-11-09 (the day after a close of 84.56)."""
    settings = lake.LakeSettings(lake_uri=str(tmp_path_factory.mktemp("client-actions")))
    lake.write_bars(settings, bars_table("MSFT", msft_rows), job_id="client-msft")
    actions = pa.table(
        {
            "ticker": ["MSFT", "MSFT"],
            "exchange_mic": ["XNAS", "XNAS"],
            "ex_date": [dt.date(2003, 2, 18), dt.date(2017, 11, 9)],
            "kind": ["split", "dividend"],
            "ratio": [2.0, None],
            "amount": [None, 0.42],
            "currency": [None, "USD"],
        }
    )
    assert lake.write_actions(settings, actions, job_id="client-actions") == (2, 0)
    with _serve(make_app(settings)) as url:
        yield url


def test_actions_and_every_basis(actions_url: str) -> None:
    dividend = 1 - 0.42 / 84.56
    with Client(actions_url, frame="polars") as api:
        acts = api.actions("MSFT")
        assert acts.select("ex_date", "kind", "ratio", "amount", "prev_close").rows() == [
            (dt.date(2003, 2, 18), "split", 2.0, None, 18.172),
            (dt.date(2017, 11, 9), "dividend", None, 0.42, 84.56),
        ]
        assert acts["price_factor"].to_list() == [0.5, pytest.approx(dividend, abs=1e-15)]
        only = api.actions("MSFT", kind="dividend")
        assert only["kind"].to_list() == ["dividend"]
        both = api.actions("msft", "2003-01-01", "2017-12-31", kind=["split", "dividend"])
        assert both.height == 2
        assert api.actions("MSFT", end="2003-02-17").is_empty()

        day = {"start": "2003-02-14", "end": "2003-02-14"}
        assert api.eod("MSFT", **day)["close"].to_list() == [18.172]
        assert api.eod("MSFT", **day, adjust="splits")["close"].to_list() == [9.086]
        assert api.eod("MSFT", **day, adjust="all")["close"].to_list() == [
            round(18.172 * 0.5 * dividend, 10)
        ]
        # as of the day before the split's ex-date, nothing was known yet
        assert api.eod("MSFT", **day, adjust="all", adjust_as_of="2003-02-17")[
            "close"
        ].to_list() == [18.172]


def test_errors_are_raised_with_the_problem_type(base_url: str) -> None:
    with Client(base_url) as api:
        with pytest.raises(ApiError) as missing:
            api.eod("NOPE")
        assert (missing.value.status, missing.value.type) == (
            404,
            "https://stockdata.dev/problems/not-found",
        )
        with pytest.raises(ApiError) as contradictory:
            api.eod("MSFT", adjust="splits", adjusted=True)
        assert contradictory.value.status == 400
        assert contradictory.value.type == "https://stockdata.dev/problems/invalid-adjust"
        assert contradictory.value.detail == "pass adjust or its alias adjusted, not both"


def test_429_retry_after_is_waited_out(sample_lake: lake.LakeSettings) -> None:
    """Three requests a minute, a burst of one: the second request, sent right after the
    first, is refused for up to 20 s (unless the first took 20 s), then let through."""
    security = SecuritySettings(rate_limit_per_minute=3, rate_limit_burst=1)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    with _serve(make_app(sample_lake, security=security)) as url:
        with Client(url, sleep=sleep) as api:
            first = api.eod_on("2008-10-10")
            second = api.eod_on("2008-10-09")
        assert (len(first), len(second)) == (2, 2)
        assert api.counts["retried"] == len(waits) >= 1
        assert all(1 <= w <= 20 for w in waits)


def test_api_key_is_sent(sample_lake: lake.LakeSettings, seeded: Engine) -> None:
    with catalog.session_scope(seeded) as session:
        _, key = catalog.create_api_key(session, name="notebook", role=Role.READER)
    app: Any = create_app(
        api_settings(),
        lake_settings=sample_lake,
        engine=seeded,
        auth_settings=AuthSettings(auth_mode="api-key"),
        sql=False,
        security_settings=SecuritySettings(rate_limit_per_minute=0),
        access_logs=False,
    )
    with _serve(app) as url:
        with Client(url, api_key=key) as api:
            assert len(api.eod("GOOG", start="2013-01-01")) == 41
        with Client(url) as anonymous, pytest.raises(ApiError) as refused:
            anonymous.eod("GOOG")
        assert refused.value.status == 401
