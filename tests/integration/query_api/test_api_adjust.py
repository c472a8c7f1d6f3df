"""Adjustment computed by us from corporate actions: every route, every basis, as of a date.

The MSFT sample is split- and dividend-adjusted. Multiplying it back by its public split
history (288x before 1987-09-21) gives an as-traded series; `adjust=splits` over that series
and the nine splits must give back the sample's closes (to the 10 decimals adjusted prices are
rounded to), on every route, in every format, from both engines and from the SQL views.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from litestar import Litestar
from litestar.testing import TestClient

import lake
from lake._adjust import round_prices
from tests.integration.query_api.conftest import bars_table, make_app

D = dt.date
#: MSFT's splits (ex-dates and ratios), as published by Microsoft investor relations.
MSFT_SPLITS = [
    (D(1987, 9, 21), 2.0),
    (D(1990, 4, 16), 2.0),
    (D(1991, 6, 27), 1.5),
    (D(1992, 6, 15), 1.5),
    (D(1994, 5, 23), 2.0),
    (D(1996, 12, 9), 2.0),
    (D(1998, 2, 23), 2.0),
    (D(1999, 3, 29), 2.0),
    (D(2003, 2, 18), 2.0),
]
#: A hand-computed dividend: 2.04 paid on 2020-01-06, the close before it 102:
#: earlier prices times 1 - 2.04 / 102 = 0.98.
DIV_DAYS = [D(2020, 1, 2), D(2020, 1, 3), D(2020, 1, 6), D(2020, 1, 7)]
DIV_CLOSES = [100.0, 102.0, 99.0, 100.0]
DIV_ALL = [98.0, 99.96, 99.0, 100.0]


def multiplier(day: dt.date) -> float:
    """How many of today's shares one share on `day` became."""
    m = 1.0
    for ex, ratio in MSFT_SPLITS:
        if day < ex:
            m *= ratio
    return m


def as_traded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        k = multiplier(r["date"])
        out.append({**r, **{p: r[p] * k for p in ("open", "high", "low", "close")}})
    return out


@pytest.fixture(scope="module")
def actions_lake(
    tmp_path_factory: pytest.TempPathFactory, msft_rows: list[dict[str, Any]]
) -> lake.LakeSettings:
    settings = lake.LakeSettings(lake_uri=str(tmp_path_factory.mktemp("adjust") / "lake"))
    lake.write_bars(settings, bars_table("MSFT", as_traded(msft_rows)), job_id="msft-raw")
    div_rows = [
        {"date": d, "open": c, "high": c, "low": c, "close": c, "volume": 1000}
        for d, c in zip(DIV_DAYS, DIV_CLOSES, strict=True)
    ]
    lake.write_bars(settings, bars_table("DIVCO", div_rows), job_id="divco")
    actions = pa.table(
        {
            "ticker": ["MSFT"] * len(MSFT_SPLITS) + ["DIVCO"],
            "exchange_mic": ["XNAS"] * (len(MSFT_SPLITS) + 1),
            "ex_date": pa.array([d for d, _ in MSFT_SPLITS] + [D(2020, 1, 6)], pa.date32()),
            "kind": ["split"] * len(MSFT_SPLITS) + ["dividend"],
            "ratio": [r for _, r in MSFT_SPLITS] + [None],
            "amount": [None] * len(MSFT_SPLITS) + [2.04],
            "currency": [None] * len(MSFT_SPLITS) + ["USD"],
            "source": ["test"] * (len(MSFT_SPLITS) + 1),
        }
    )
    assert lake.write_actions(settings, actions, job_id="actions-1") == (10, 0)
    return settings


@pytest.fixture
def api(actions_lake: lake.LakeSettings, hot_index: bool) -> Iterator[TestClient[Litestar]]:
    with TestClient(make_app(actions_lake, api_serving=hot_index)) as client:
        yield client


def expected_closes(msft_rows: list[dict[str, Any]]) -> dict[dt.date, float]:
    closes = [r["close"] for r in msft_rows]
    rounded = round_prices(pa.array(closes).to_numpy()).tolist()
    return dict(zip((r["date"] for r in msft_rows), rounded, strict=True))


def test_splits_basis_gives_back_the_sample_closes_in_csv_and_arrow(
    api: TestClient[Litestar], msft_rows: list[dict[str, Any]]
) -> None:
    want = expected_closes(msft_rows)
    r = api.get("/v1/eod/MSFT/history", params={"adjust": "splits", "format": "csv"})
    assert r.status_code == 200, r.text
    got = {
        D.fromisoformat(row["date"]): float(row["close"])
        for row in csv.DictReader(io.StringIO(r.text))
    }
    assert len(got) == 7983
    assert got == want
    r = api.get("/v1/eod/MSFT/history", params={"adjust": "splits", "format": "arrow"})
    table = ipc.open_stream(r.content).read_all()
    assert (
        dict(zip(table.column("date").to_pylist(), table.column("close").to_pylist(), strict=True))
        == want
    )


def test_splits_basis_on_point_range_latest_and_cross_section_routes(
    api: TestClient[Litestar], msft_rows: list[dict[str, Any]]
) -> None:
    want = expected_closes(msft_rows)
    for ex, _ in MSFT_SPLITS:
        # the session before the ex-date and the ex-date itself
        before = max(d for d in want if d < ex)
        for day in (before, ex):
            body = api.get(
                "/v1/eod/MSFT", params={"date": day.isoformat(), "adjust": "splits"}
            ).json()
            assert body["data"][0]["close"] == want[day], day
            assert body["adjust"] == "splits" and body["adjusted"] is True
        page = api.get(
            "/v1/eod/MSFT",
            params={"from": before.isoformat(), "to": ex.isoformat(), "adjust": "splits"},
        ).json()
        assert [b["close"] for b in page["data"]] == [want[before], want[ex]]
        day = api.get("/v1/eod", params={"date": ex.isoformat(), "adjust": "splits"}).json()
        assert [(b["ticker"], b["close"]) for b in day["data"]] == [("MSFT", want[ex])]
    latest = api.get("/v1/eod/MSFT/latest", params={"adjust": "splits"}).json()
    assert latest["data"]["close"] == want[D(2017, 11, 10)] == 83.87
    # as traded by default: the 1986 close times 288
    raw = api.get("/v1/eod/MSFT", params={"date": "1986-03-13"}).json()
    assert raw["adjust"] == "none" and raw["adjusted"] is False
    assert raw["data"][0]["close"] == 0.07533 * 288


def test_sql_views_agree_with_the_api(
    actions_lake: lake.LakeSettings, msft_rows: list[dict[str, Any]]
) -> None:
    want = expected_closes(msft_rows)
    con = lake.connect(actions_lake)
    try:
        got = dict(
            con.execute(
                "SELECT trade_date, close FROM eod_split_adjusted WHERE ticker = 'MSFT'"
            ).fetchall()
        )
        divco = con.execute(
            "SELECT close FROM eod_adjusted WHERE ticker = 'DIVCO' ORDER BY trade_date"
        ).fetchall()
        actions = con.execute(
            "SELECT ex_date, kind, ratio FROM corporate_actions WHERE ticker = 'MSFT' "
            "ORDER BY ex_date"
        ).fetchall()
        factor = con.execute(
            "SELECT price_factor, prev_close FROM action_factors WHERE ticker = 'DIVCO'"
        ).fetchall()
    finally:
        con.close()
    assert got == want
    assert [c for (c,) in divco] == DIV_ALL
    assert actions == [(d, "split", r) for d, r in MSFT_SPLITS]
    assert factor == [(1 - 2.04 / 102.0, 102.0)]


def test_a_one_session_delta_across_each_split_is_the_real_move(
    api: TestClient[Litestar], msft_rows: list[dict[str, Any]]
) -> None:
    want = expected_closes(msft_rows)
    days = sorted(want)
    for ex, ratio in MSFT_SPLITS:
        before = days[days.index(ex) - 1]
        d = api.get("/v1/eod/MSFT/delta", params={"days": 1, "date": ex.isoformat()}).json()
        assert d["adjust"] == "splits"
        real = round((want[ex] / want[before] - 1) * 100, 6)
        assert d["data"]["start_close"] == want[before]
        assert d["data"]["pct_change"] == real
        assert abs(real) < 15  # a split is not a move
        raw = api.get(
            "/v1/eod/MSFT/delta", params={"days": 1, "date": ex.isoformat(), "adjust": "none"}
        ).json()
        traded = {r["date"]: r["close"] for r in as_traded(msft_rows)}
        assert raw["data"]["pct_change"] == round((traded[ex] / traded[before] - 1) * 100, 6)


def test_delta_series_and_movers_never_report_a_split(
    api: TestClient[Litestar], msft_rows: list[dict[str, Any]]
) -> None:
    want = expected_closes(msft_rows)
    series = api.get(
        "/v1/eod/MSFT/delta",
        params={"days": 1, "series": "true", "from": "2003-02-13", "to": "2003-02-20"},
    ).json()
    pct = {r["end_date"]: r["pct_change"] for r in series["data"]}
    assert pct["2003-02-18"] == round((want[D(2003, 2, 18)] / want[D(2003, 2, 14)] - 1) * 100, 6)
    losers = api.get(
        "/v1/movers", params={"date": "2003-02-18", "days": 1, "order": "losers"}
    ).json()
    assert losers["adjust"] == "splits" and losers["data"] == []  # MSFT rose 1.5% that day
    gainers = api.get("/v1/movers", params={"date": "2003-02-18", "days": 1}).json()
    assert [(g["ticker"], g["pct_change"]) for g in gainers["data"]] == [
        ("MSFT", pct["2003-02-18"])
    ]
    raw = api.get(
        "/v1/movers",
        params={"date": "2003-02-18", "days": 1, "order": "losers", "adjust": "none"},
    ).json()
    assert [g["ticker"] for g in raw["data"]] == ["MSFT"]
    traded = {r["date"]: r["close"] for r in as_traded(msft_rows)}
    assert raw["data"][0]["pct_change"] == round(
        (traded[D(2003, 2, 18)] / traded[D(2003, 2, 14)] - 1) * 100, 6
    )


def test_dividend_basis_all_by_hand(api: TestClient[Litestar]) -> None:
    def closes(**params: str) -> list[float]:
        r = api.get("/v1/eod/DIVCO", params={"from": "2020-01-01", "to": "2020-01-31", **params})
        assert r.status_code == 200, r.text
        return [b["close"] for b in r.json()["data"]]

    assert closes() == DIV_CLOSES
    assert closes(adjust="splits") == DIV_CLOSES
    assert closes(adjust="all") == DIV_ALL
    assert closes(adjusted="true") == DIV_ALL  # the alias
    assert closes(adjusted="false") == DIV_CLOSES
    # as of the day before the ex-date the dividend was not known; on it, it was
    assert closes(adjust="all", adjust_as_of="2020-01-03") == DIV_CLOSES
    assert closes(adjust="all", adjust_as_of="2020-01-06") == DIV_ALL
    volumes = api.get("/v1/eod/DIVCO", params={"date": "2020-01-02", "adjust": "all"}).json()
    assert volumes["data"][0]["volume"] == 1000  # a cash dividend leaves volume alone
    # total return over the ex-date: (100 / 99.96 - 1) over 2 sessions
    d = api.get(
        "/v1/eod/DIVCO/delta", params={"days": 2, "date": "2020-01-07", "adjust": "all"}
    ).json()
    assert d["data"]["start_close"] == 99.96
    assert d["data"]["pct_change"] == round((100 / 99.96 - 1) * 100, 6)


def test_as_of_before_and_after_a_split(api: TestClient[Litestar]) -> None:
    def close(as_of: str) -> float:
        r = api.get(
            "/v1/eod/MSFT", params={"date": "1986-03-13", "adjust": "splits", "adjust_as_of": as_of}
        )
        assert r.status_code == 200, r.text
        assert r.json()["adjust_as_of"] == as_of
        return float(r.json()["data"][0]["close"])

    raw = 0.07533 * 288
    assert close("1987-09-20") == round_prices(pa.array([raw]).to_numpy())[0]
    assert close("1987-09-21") == round_prices(pa.array([raw / 2]).to_numpy())[0]
    assert close("1995-01-01") == round_prices(pa.array([raw / 18]).to_numpy())[0]
    assert close("2020-01-01") == 0.07533


def test_volume_is_multiplied_by_the_split_ratio(
    api: TestClient[Litestar], msft_rows: list[dict[str, Any]]
) -> None:
    raw = api.get("/v1/eod/MSFT", params={"date": "1987-09-18"}).json()["data"][0]["volume"]
    adj = api.get("/v1/eod/MSFT", params={"date": "1987-09-18", "adjust": "splits"}).json()
    assert adj["data"][0]["volume"] == raw * 288


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"adjust": "splits", "adjusted": "true"}, "invalid-adjust"),
        ({"adjust_as_of": "2000-01-01"}, "invalid-adjust"),
        ({"adjust": "none", "adjust_as_of": "2000-01-01"}, "invalid-adjust"),
    ],
)
def test_contradictory_adjustment_is_a_400(
    api: TestClient[Litestar], params: dict[str, str], code: str
) -> None:
    r = api.get("/v1/eod/MSFT", params={"date": "2000-01-03", **params})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith(code)


@pytest.mark.parametrize("value", ["SPLITS", "total", "", "1", "none;drop"])
def test_unknown_basis_is_a_400(api: TestClient[Litestar], value: str) -> None:
    r = api.get("/v1/eod/MSFT", params={"date": "2000-01-03", "adjust": value})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    r = api.get(
        "/v1/movers", params={"date": "2000-01-03", "days": 1, "adjust_as_of": "2000-13-01"}
    )
    assert r.status_code == 400


def test_an_action_recorded_later_adjusts_history_without_new_bars(
    tmp_path: Path, hot_index: bool
) -> None:
    settings = lake.LakeSettings(lake_uri=str(tmp_path / "lake"))
    rows = [
        {"date": d, "open": c, "high": c, "low": c, "close": c, "volume": 1000}
        for d, c in zip(DIV_DAYS, DIV_CLOSES, strict=True)
    ]
    lake.write_bars(settings, bars_table("DIVCO", rows), job_id="bars")
    version = lake.open_table(settings, lake.EOD_TABLE).version()  # type: ignore[union-attr]
    with TestClient(make_app(settings, api_serving=hot_index)) as client:

        def closes() -> list[float]:
            r = client.get(
                "/v1/eod/DIVCO", params={"from": "2020-01-01", "to": "2020-01-31", "adjust": "all"}
            )
            return [b["close"] for b in r.json()["data"]]

        assert closes() == DIV_CLOSES
        lake.write_actions(
            settings,
            pa.table(
                {
                    "ticker": ["DIVCO"],
                    "exchange_mic": ["XNAS"],
                    "ex_date": pa.array([D(2020, 1, 6)], pa.date32()),
                    "kind": ["dividend"],
                    "amount": [2.04],
                }
            ),
            job_id="later",
        )
        assert closes() == DIV_ALL
    assert lake.open_table(settings, lake.EOD_TABLE).version() == version  # type: ignore[union-attr]


def test_adjusted_views_through_the_sql_sandbox(actions_lake: lake.LakeSettings) -> None:
    with TestClient(make_app(actions_lake, sql=True)) as client:
        r = client.post(
            "/v1/sql",
            json={
                "sql": "SELECT a.trade_date, a.close AS adjusted, e.close AS traded "
                "FROM eod_split_adjusted a JOIN eod e USING (ticker, exchange_mic, trade_date) "
                "WHERE a.ticker = 'MSFT' AND a.trade_date IN ('1986-03-13', '2003-02-18') "
                "ORDER BY 1"
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [
            ["1986-03-13", 0.07533, 0.07533 * 288],
            ["2003-02-18", 18.777, 18.777],
        ]
        r = client.post(
            "/v1/sql",
            json={"sql": "SELECT kind, count(*) FROM corporate_actions GROUP BY 1 ORDER BY 1"},
        )
        assert r.json()["rows"] == [["dividend", 1], ["split", 9]]
        r = client.post(
            "/v1/sql",
            json={
                "sql": "SELECT close FROM eod_adjusted WHERE ticker = 'DIVCO' ORDER BY trade_date"
            },
        )
        assert [c for (c,) in r.json()["rows"]] == DIV_ALL


def test_actions_route_lists_them_with_their_factors(api: TestClient[Litestar]) -> None:
    r = api.get("/v1/actions/MSFT")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(a["ex_date"], a["kind"], a["ratio"], a["price_factor"]) for a in body["data"]] == [
        (d.isoformat(), "split", ratio, 1 / ratio) for d, ratio in MSFT_SPLITS
    ]
    assert body["actions_version"] == 1
    ranged = api.get("/v1/actions/MSFT", params={"from": "1990-01-01", "to": "1992-12-31"}).json()
    assert [a["ex_date"] for a in ranged["data"]] == ["1990-04-16", "1991-06-27", "1992-06-15"]
    div = api.get("/v1/actions/divco", params={"kind": "dividend"}).json()["data"]
    assert [(a["amount"], a["prev_close"], a["price_factor"], a["volume_factor"]) for a in div] == [
        (2.04, 102.0, 1 - 2.04 / 102.0, 1.0)
    ]
    assert api.get("/v1/actions/DIVCO", params={"kind": "split"}).json()["data"] == []
    csv_text = api.get("/v1/actions/MSFT", params={"format": "csv", "to": "1987-12-31"}).text
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [(r["ticker"], r["ex_date"], r["kind"], float(r["ratio"])) for r in rows] == [
        ("MSFT", "1987-09-21", "split", 2.0)
    ]
    arrow = ipc.open_stream(api.get("/v1/actions/MSFT", params={"format": "arrow"}).content)
    assert arrow.read_all().column("ratio").to_pylist() == [r for _, r in MSFT_SPLITS]


@pytest.mark.parametrize(
    ("url", "params", "status", "problem"),
    [
        ("/v1/actions/NOPE", {}, 404, "not-found"),
        ("/v1/actions/MSFT", {"kind": "merger"}, 400, "invalid-input"),
        ("/v1/actions/MSFT", {"from": "2000-01-02", "to": "2000-01-01"}, 400, "invalid-range"),
        ("/v1/actions/MSFT", {"from": "2000-13-01"}, 400, "invalid-input"),
        ("/v1/actions/MSFT", {"limit": "3"}, 400, "unknown-parameter"),
        ("/v1/actions/MS%27FT", {}, 400, "invalid-input"),
    ],
)
def test_actions_route_bad_input(
    api: TestClient[Litestar], url: str, params: dict[str, str], status: int, problem: str
) -> None:
    r = api.get(url, params=params)
    assert r.status_code == status, r.text
    assert r.json()["type"] == f"https://stockdata.dev/problems/{problem}"
