"""EoD bars, deltas, movers and formats against the real MSFT sample in a real Delta lake."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from litestar import Litestar
from litestar.testing import TestClient

import lake
from tests.integration.query_api.conftest import bars_table, make_app

PROBLEM = "application/problem+json"
TYPE = "https://stockdata.dev/problems/"


def _row(rows: list[dict[str, Any]], day: str) -> dict[str, Any]:
    return next(r for r in rows if r["date"] == dt.date.fromisoformat(day))


@pytest.mark.parametrize("day", ["1986-03-13", "2000-01-03", "2008-10-10", "2017-11-10"])
def test_close_on_a_date_is_the_csv_close(
    client: TestClient[Litestar], msft_rows: list[dict[str, Any]], day: str
) -> None:
    expected = _row(msft_rows, day)
    resp = client.get("/v1/eod/MSFT", params={"date": day})
    assert resp.status_code == 200
    body = resp.json()
    assert body["pagination"] == {"limit": 100, "offset": 0, "total": 1, "next_offset": None}
    [bar] = body["data"]
    assert bar["date"] == day
    assert bar["ticker"] == "MSFT"
    assert bar["exchange_mic"] == "XNAS"
    assert (bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"]) == (
        expected["open"],
        expected["high"],
        expected["low"],
        expected["close"],
        expected["volume"],
    )


def test_lowercase_symbol_and_latest(
    client: TestClient[Litestar], msft_rows: list[dict[str, Any]]
) -> None:
    last = msft_rows[-1]
    for url in ("/v1/eod/msft/latest", "/eod/ticker/MSFT", "/v1/eod/MSFT"):
        resp = client.get(url)
        assert resp.status_code == 200, url
        data = resp.json()["data"]
        bar = data[0] if isinstance(data, list) else data
        assert (bar["date"], bar["close"]) == ("2017-11-10", last["close"])


def test_21_session_change_ending_2008_10_10(
    client: TestClient[Litestar], msft_rows: list[dict[str, Any]]
) -> None:
    end = next(i for i, r in enumerate(msft_rows) if r["date"] == dt.date(2008, 10, 10))
    start = end - 21
    s, e = msft_rows[start]["close"], msft_rows[end]["close"]
    resp = client.get("/v1/eod/MSFT/delta", params={"days": 21, "date": "2008-10-10"})
    assert resp.status_code == 200
    assert resp.json()["data"] == {
        "ticker": "MSFT",
        "exchange_mic": "XNAS",
        "days": 21,
        "start_date": msftdate(msft_rows, start),
        "start_close": s,
        "end_date": "2008-10-10",
        "end_close": e,
        "change": round(e - s, 10),
        "pct_change": round((e / s - 1) * 100, 6),
        "reason": None,
    }
    assert msftdate(msft_rows, start) == "2008-09-11"
    assert (s, e) == (22.926, 18.029)


def msftdate(rows: list[dict[str, Any]], i: int) -> str:
    return str(rows[i]["date"].isoformat())


def test_delta_on_a_holiday_ends_at_the_previous_session(client: TestClient[Litestar]) -> None:
    # 2008-10-11 is a Saturday: the change ends at Friday's close.
    resp = client.get("/v1/eod/MSFT/delta", params={"days": 21, "date": "2008-10-11"})
    assert resp.json()["data"]["end_date"] == "2008-10-10"
    assert resp.json()["data"]["start_date"] == "2008-09-11"


def test_no_bar_on_the_start_session_gives_null_with_a_reason(
    client: TestClient[Litestar],
) -> None:
    # MSFT's first bar is 1986-03-13; five XNAS sessions before 1986-03-14 is 1986-03-07.
    resp = client.get("/v1/eod/MSFT/delta", params={"days": 5, "date": "1986-03-14"})
    assert resp.status_code == 200
    assert resp.json()["data"] == {
        "ticker": "MSFT",
        "exchange_mic": "XNAS",
        "days": 5,
        "start_date": None,
        "start_close": None,
        "end_date": "1986-03-14",
        "end_close": 0.07533,
        "change": None,
        "pct_change": None,
        "reason": "no bar on the start session 1986-03-07",
    }


def test_delta_series_is_the_rolling_change(
    client: TestClient[Litestar], msft_rows: list[dict[str, Any]]
) -> None:
    resp = client.get(
        "/v1/eod/MSFT/delta",
        params={"days": 21, "series": "true", "from": "2008-10-06", "to": "2008-10-10"},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["pagination"]["total"] == 5
    idx = {r["date"]: i for i, r in enumerate(msft_rows)}
    for item in body["data"]:
        e = idx[dt.date.fromisoformat(item["end_date"])]
        s = e - 21
        assert item["start_date"] == msftdate(msft_rows, s)
        assert item["start_close"] == msft_rows[s]["close"]
        assert item["pct_change"] == round(
            (msft_rows[e]["close"] / msft_rows[s]["close"] - 1) * 100, 6
        )
    assert [i["end_date"] for i in body["data"]] == [
        "2008-10-06",
        "2008-10-07",
        "2008-10-08",
        "2008-10-09",
        "2008-10-10",
    ]


def test_pagination_of_a_range(
    client: TestClient[Litestar], msft_rows: list[dict[str, Any]]
) -> None:
    october = [r for r in msft_rows if dt.date(2008, 10, 1) <= r["date"] <= dt.date(2008, 10, 31)]
    resp = client.get(
        "/v1/eod/MSFT", params={"from": "2008-10-01", "to": "2008-10-31", "limit": 5, "offset": 5}
    )
    body = resp.json()
    assert body["pagination"] == {"limit": 5, "offset": 5, "total": len(october), "next_offset": 10}
    assert len(october) == 23
    assert [b["date"] for b in body["data"]] == [r["date"].isoformat() for r in october[5:10]]
    assert [b["close"] for b in body["data"]] == [r["close"] for r in october[5:10]]
    desc = client.get(
        "/v1/eod/MSFT",
        params={"from": "2008-10-01", "to": "2008-10-31", "limit": 3, "sort": "desc"},
    ).json()
    assert [b["date"] for b in desc["data"]] == ["2008-10-31", "2008-10-30", "2008-10-29"]
    last = client.get(
        "/v1/eod/MSFT", params={"from": "2008-10-01", "to": "2008-10-31", "limit": 5, "offset": 20}
    ).json()
    assert last["pagination"]["next_offset"] is None
    assert len(last["data"]) == 3


def test_csv_and_arrow_parse_back_to_the_json_rows(client: TestClient[Litestar]) -> None:
    params = {"from": "2008-10-01", "to": "2008-10-31", "limit": 50}
    rows = client.get("/v1/eod/MSFT", params=params).json()["data"]
    as_csv = client.get("/v1/eod/MSFT", params=params, headers={"Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(r["date"], float(r["close"]), int(r["volume"])) for r in parsed] == [
        (r["date"], r["close"], r["volume"]) for r in rows
    ]
    same = client.get("/v1/eod/MSFT", params={**params, "format": "csv"})
    assert same.text == as_csv.text
    arrow = client.get(
        "/v1/eod/MSFT", params=params, headers={"Accept": "application/vnd.apache.arrow.stream"}
    )
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = ipc.open_stream(pa.BufferReader(arrow.content)).read_all()
    assert table.num_rows == 23
    assert table.column("close").to_pylist() == [r["close"] for r in rows]
    assert [d.isoformat() for d in table.column("date").to_pylist()] == [r["date"] for r in rows]


def test_every_ticker_on_a_date(
    client: TestClient[Litestar], msft_rows: list[dict[str, Any]]
) -> None:
    body = client.get("/v1/eod", params={"date": "2008-10-10"}).json()
    assert [(b["ticker"], b["close"]) for b in body["data"]] == [
        ("GOOG", 332.0),
        ("MSFT", _row(msft_rows, "2008-10-10")["close"]),
    ]
    assert client.get("/v1/eod", params={"date": "2008-10-11"}).json()["data"] == []
    arrow = client.get("/v1/eod", params={"date": "2008-10-10", "format": "arrow"})
    assert ipc.open_stream(pa.BufferReader(arrow.content)).read_all().column(
        "ticker"
    ).to_pylist() == ["GOOG", "MSFT"]


@pytest.mark.parametrize(
    ("url", "params", "status", "code"),
    [
        ("/v1/eod/MS$FT", {}, 400, "invalid-input"),
        ("/v1/eod/NOPE", {}, 404, "not-found"),
        ("/v1/eod/MSFT", {"date": "2008-13-40"}, 400, "invalid-input"),
        ("/v1/eod/MSFT", {"date": "10/10/2008"}, 400, "invalid-input"),
        ("/v1/eod/MSFT", {"from": "2008-10-10", "to": "2008-10-01"}, 400, "invalid-range"),
        ("/v1/eod/MSFT", {"from": "1980-01-01", "to": "2010-01-01"}, 400, "range-too-large"),
        ("/v1/eod/MSFT", {"limit": 0}, 400, "invalid-input"),
        ("/v1/eod/MSFT", {"limit": 5001}, 400, "invalid-input"),
        ("/v1/eod/MSFT", {"format": "xml"}, 400, "unsupported-format"),
        ("/v1/eod/MSFT/delta", {"days": 0}, 400, "invalid-input"),
        ("/v1/eod/MSFT/delta", {}, 400, "invalid-input"),
        (
            "/v1/movers",
            {"date": "2008-10-10", "days": 5, "order": "sideways"},
            400,
            "invalid-input",
        ),
        ("/v1/nothing-here", {}, 404, "not-found"),
    ],
)
def test_bad_requests_are_problems(
    client: TestClient[Litestar], url: str, params: dict[str, Any], status: int, code: str
) -> None:
    resp = client.get(url, params=params)
    assert resp.status_code == status
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["type"] == TYPE + code
    assert body["status"] == status
    assert body["instance"] == url
    assert "Traceback" not in resp.text


def test_wrong_method_is_a_405_problem(client: TestClient[Litestar]) -> None:
    resp = client.post("/v1/eod/MSFT")
    assert resp.status_code == 405
    assert resp.json()["type"] == TYPE + "method-not-allowed"


def test_etag_and_304(client: TestClient[Litestar]) -> None:
    first = client.get("/v1/eod/MSFT", params={"date": "2008-10-10"})
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=30"
    again = client.get(
        "/v1/eod/MSFT", params={"date": "2008-10-10"}, headers={"If-None-Match": etag}
    )
    assert again.status_code == 304
    assert again.content == b""
    other = client.get(
        "/v1/eod/MSFT", params={"date": "2008-10-09"}, headers={"If-None-Match": etag}
    )
    assert other.status_code == 200
    assert other.headers["etag"] != etag


def test_request_id_is_echoed(client: TestClient[Litestar]) -> None:
    resp = client.get("/v1/eod/NOPE", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["x-request-id"] == "abc-123"
    assert resp.json()["request_id"] == "abc-123"
    fresh = client.get("/health/live")
    assert len(fresh.headers["x-request-id"]) == 32


def test_legacy_delta_route(client: TestClient[Litestar], msft_rows: list[dict[str, Any]]) -> None:
    resp = client.get("/eod/ticker/MSFT/delta/5")
    assert resp.status_code == 200
    s, e = msft_rows[-6], msft_rows[-1]
    assert resp.json()["data"]["start_date"] == s["date"].isoformat()
    assert resp.json()["data"]["pct_change"] == round((e["close"] / s["close"] - 1) * 100, 6)


# -- movers on a hand-made set -----------------------------------------------------------------

MOVERS = {
    # ticker: closes on 2024-01-02, 03, 04, 05
    "AAA": [10.0, 11.0, 12.0, 13.0],  # +18.181818% over 2 sessions ending 01-05
    "BBB": [20.0, 20.0, 10.0, 15.0],  # -25%
    "CCC": [5.0, 5.0, 5.0, 5.5],  # +10%
    "DDD": [8.0, 8.0, 10.0, 12.0],  # +50%
    "EEE": [None, None, 30.0, 31.0],  # no bar on the start session 01-03: left out
}


@pytest.fixture
def movers_client(tmp_path: Any, seeded: Any) -> Any:
    settings = lake.LakeSettings(lake_uri=str(tmp_path / "lake"))
    days = [dt.date(2024, 1, d) for d in (2, 3, 4, 5)]
    rows = []
    for ticker, closes in MOVERS.items():
        part = [
            {"date": d, "open": c, "high": c, "low": c, "close": c, "volume": 100}
            for d, c in zip(days, closes, strict=True)
            if c is not None
        ]
        rows.append(bars_table(ticker, part, mic="XNYS" if ticker == "CCC" else "XNAS"))
    lake.write_bars(settings, pa.concat_tables(rows), job_id="movers", today=dt.date(2024, 1, 6))
    return settings


@pytest.mark.parametrize("use_index", [True, False], ids=["serving", "duckdb"])
def test_movers_order(movers_client: lake.LakeSettings, seeded: Any, use_index: bool) -> None:
    app = make_app(movers_client, engine=seeded, api_serving=use_index)
    with TestClient(app) as c:
        gainers = c.get("/v1/movers", params={"date": "2024-01-05", "days": 2}).json()
        assert [(m["rank"], m["ticker"], m["pct_change"]) for m in gainers["data"]] == [
            (1, "DDD", 50.0),
            (2, "AAA", 18.181818),
            (3, "CCC", 10.0),
        ]  # gainers rose: BBB fell, it is not among them
        assert gainers["data"][0]["start_date"] == "2024-01-03"
        assert gainers["data"][0]["start_close"] == 8.0
        losers = c.get(
            "/v1/movers", params={"date": "2024-01-05", "days": 2, "order": "losers", "limit": 2}
        ).json()
        assert [(m["ticker"], m["pct_change"]) for m in losers["data"]] == [("BBB", -25.0)]
        xnas = c.get("/v1/movers", params={"date": "2024-01-05", "days": 2, "exchange": "xnas"})
        assert [m["ticker"] for m in xnas.json()["data"]] == ["DDD", "AAA"]
        one = c.get("/v1/movers", params={"date": "2024-01-05", "days": 1}).json()
        assert [m["ticker"] for m in one["data"]] == ["BBB", "DDD", "CCC", "AAA", "EEE"]
