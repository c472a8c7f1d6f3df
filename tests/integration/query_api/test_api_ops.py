"""Catalog routes, the catalog being down, cache invalidation by a new lake version, health, metrics."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

import lake
from tests.integration.query_api.conftest import bars_table, make_app

TYPE = "https://stockdata.dev/problems/"


def test_exchanges_and_tickers(sample_lake: lake.LakeSettings, seeded: Engine) -> None:
    with TestClient(make_app(sample_lake, engine=seeded)) as c:
        exchanges = c.get("/v1/exchanges").json()["data"]
        mics = [e["mic"] for e in exchanges]
        assert "XNAS" in mics
        assert mics == sorted(mics)
        xnas = c.get("/v1/exchanges/xnas").json()
        assert (xnas["mic"], xnas["timezone"]) == ("XNAS", "America/New_York")
        missing = c.get("/v1/exchanges/ZZZZ")
        assert (missing.status_code, missing.json()["type"]) == (404, TYPE + "not-found")
        found = c.get("/v1/tickers", params={"q": "ms"}).json()
        assert [(t["symbol"], t["exchange_mic"]) for t in found["data"]] == [("MSFT", "XNAS")]
        page = c.get("/v1/tickers", params={"exchange": "XNAS", "limit": 1}).json()
        assert [t["symbol"] for t in page["data"]] == ["GOOG"]
        assert page["pagination"] == {"limit": 1, "offset": 0, "total": 2, "next_offset": 1}
        second = c.get("/v1/tickers", params={"exchange": "XNAS", "limit": 1, "offset": 1}).json()
        assert [t["symbol"] for t in second["data"]] == ["MSFT"]
        assert second["pagination"]["next_offset"] is None
        one = c.get("/v1/tickers/msft").json()
        assert (one["symbol"], one["exchange_mic"]) == ("MSFT", "XNAS")
        assert c.get("/v1/tickers/NOPE").json()["type"] == TYPE + "not-found"
        ready = c.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ok",
            "checks": {"catalog": {"status": "up"}, "lake": {"status": "up"}},
            "lake_version": 2,
            "engine": "serving",
        }


def test_eod_and_deltas_answer_with_the_catalog_down(sample_lake: lake.LakeSettings) -> None:
    with TestClient(make_app(sample_lake)) as c:  # the catalog URL refuses connections
        bar = c.get("/v1/eod/MSFT", params={"date": "2008-10-10"})
        assert bar.status_code == 200
        assert bar.json()["data"][0]["close"] == 18.029
        delta = c.get("/v1/eod/MSFT/delta", params={"days": 21, "date": "2008-10-10"})
        assert delta.json()["data"]["start_close"] == 22.926
        assert c.get("/eod/ticker/MSFT").status_code == 200
        movers = c.get("/v1/movers", params={"date": "2008-10-10", "days": 21, "order": "losers"})
        assert [m["ticker"] for m in movers.json()["data"]] == ["GOOG", "MSFT"]
        exchanges = c.get("/v1/exchanges")
        assert exchanges.status_code == 503
        assert exchanges.json()["type"] == TYPE + "catalog-unavailable"
        assert "unused" not in exchanges.text  # the password never leaks
        # the pod still answers reads: ready, and the catalog's state is reported
        ready = c.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "degraded",
            "checks": {
                "catalog": {"status": "down", "detail": "the catalog database cannot be reached"},
                "lake": {"status": "up"},
            },
            "lake_version": 2,
            "engine": "serving",
        }
        assert c.get("/health/live").json() == {"status": "ok"}


def test_lake_missing_is_a_503_and_not_ready(tmp_path: Path, seeded: Engine) -> None:
    settings = lake.LakeSettings(lake_uri=str(tmp_path / "empty"))
    with TestClient(make_app(settings, engine=seeded)) as c:
        resp = c.get("/v1/eod/MSFT")
        assert resp.status_code == 404
        assert resp.json()["type"] == TYPE + "not-found"
        ready = c.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json() == {
            "status": "unavailable",
            "checks": {
                "catalog": {"status": "up"},
                "lake": {"status": "down", "detail": "the lake cannot be read"},
            },
            "lake_version": None,
            "engine": "duckdb",
        }
        assert str(tmp_path) not in ready.text


@pytest.mark.parametrize("use_index", [True, False], ids=["serving", "duckdb"])
def test_a_new_lake_version_invalidates_the_cache(
    tmp_path: Path, sample_lake: lake.LakeSettings, seeded: Engine, use_index: bool
) -> None:
    root = Path(sample_lake.root)
    copy = tmp_path / "lake"
    shutil.copytree(root, copy)
    settings = lake.LakeSettings(lake_uri=str(copy))
    with TestClient(make_app(settings, engine=seeded, api_serving=use_index)) as c:
        first = c.get("/v1/eod/MSFT/latest")
        etag = first.headers["etag"]
        assert first.json()["data"]["date"] == "2017-11-10"
        assert first.json()["lake_version"] == 2
        cached = c.get("/v1/eod/MSFT/latest", headers={"If-None-Match": etag})
        assert cached.status_code == 304
        new_bar = {
            "date": dt.date(2017, 11, 13),
            "open": 83.66,
            "high": 83.94,
            "low": 83.46,
            "close": 83.93,
            "volume": 14_197_000,
        }
        lake.write_bars(
            settings, bars_table("MSFT", [new_bar]), job_id="next-day", today=dt.date(2017, 11, 14)
        )
        # The new version is answered once its serving form is published (a background
        # build); until then the previous form answers, with its own lake_version.
        deadline = time.monotonic() + 60
        fresh = c.get("/v1/eod/MSFT/latest", headers={"If-None-Match": etag})
        while fresh.status_code == 304 and time.monotonic() < deadline:
            time.sleep(0.05)
            fresh = c.get("/v1/eod/MSFT/latest", headers={"If-None-Match": etag})
        assert fresh.status_code == 200
        assert fresh.headers["etag"] != etag
        assert fresh.json()["lake_version"] == 3
        assert fresh.json()["data"]["date"] == "2017-11-13"
        assert fresh.json()["data"]["close"] == 83.93
        delta = c.get("/v1/eod/MSFT/delta", params={"days": 1}).json()["data"]
        assert (delta["start_close"], delta["end_close"]) == (83.87, 83.93)


def test_metrics_and_docs(sample_lake: lake.LakeSettings, seeded: Engine) -> None:
    with TestClient(make_app(sample_lake, engine=seeded)) as c:
        # A point lookup from the hot index enters the cache on its second request (the
        # doorkeeper): miss, miss, hit. A movers answer is cached at once: miss, hit.
        for _ in range(3):
            c.get("/v1/eod/MSFT", params={"date": "2008-10-10"})
        for _ in range(2):
            c.get("/v1/movers", params={"date": "2008-10-10", "days": 1})
        text = c.get("/metrics").text
        assert 'stockdata_api_cache_total{result="miss"} 3.0' in text
        assert 'stockdata_api_cache_total{result="hit"} 2.0' in text
        assert "stockdata_api_cache_hit_ratio 0.4" in text
        assert "stockdata_api_lake_version 2.0" in text
        assert (
            'stockdata_api_request_seconds_count{method="GET",route="/v1/eod/{symbol}",status="200"} 3.0'
            in text
        )
        assert 'stockdata_api_query_seconds_count{engine="serving",kind="bars"} 2.0' in text
        spec: dict[str, Any] = c.get("/docs/openapi.json").json()
        assert spec["openapi"].startswith("3.1")
        assert "/v1/eod/{symbol}/delta" in spec["paths"]
        docs = c.get("/docs")
        assert docs.status_code == 200
        assert "swagger-ui" in docs.text


@pytest.mark.parametrize("use_index", [True, False], ids=["serving", "duckdb"])
def test_adjusted_prices(tmp_path: Path, seeded: Engine, use_index: bool) -> None:
    settings = lake.LakeSettings(lake_uri=str(tmp_path / "lake"))
    days = [dt.date(2024, 1, d) for d in (2, 3, 4)]
    bars = bars_table(
        "ADJ",
        [
            {"date": d, "open": c, "high": c, "low": c, "close": c, "volume": 1000}
            for d, c in zip(days, [100.0, 102.0, 51.0], strict=True)
        ],
    )
    bars = bars.append_column("adj_close", pa.array([50.0, 51.0, 51.0]))
    bars = bars.append_column("adj_volume", pa.array([2000.0, 2000.0, 1000.0]))
    bars = bars.append_column("split_factor", pa.array([1.0, 1.0, 2.0]))
    lake.write_bars(settings, bars, job_id="adj", today=dt.date(2024, 1, 5))
    with TestClient(make_app(settings, engine=seeded, api_serving=use_index)) as c:
        raw = c.get("/v1/eod/ADJ", params={"from": "2024-01-02", "to": "2024-01-04"}).json()
        adj = c.get(
            "/v1/eod/ADJ", params={"from": "2024-01-02", "to": "2024-01-04", "adjusted": "true"}
        ).json()
        assert [b["close"] for b in raw["data"]] == [100.0, 102.0, 51.0]
        # ours, from the split the bars carry (2:1 on 2024-01-04), not the provider's columns
        assert [b["close"] for b in adj["data"]] == [50.0, 51.0, 51.0]
        assert [b["open"] for b in adj["data"]] == [50.0, 51.0, 51.0]
        assert [b["volume"] for b in adj["data"]] == [2000, 2000, 1000]
        assert [b["split_factor"] for b in adj["data"]] == [1.0, 1.0, 2.0]
        assert (raw["adjusted"], adj["adjusted"], adj["adjust"]) == (False, True, "all")
        d_raw = c.get("/v1/eod/ADJ/delta", params={"days": 2, "adjust": "none"}).json()["data"]
        d_default = c.get("/v1/eod/ADJ/delta", params={"days": 2}).json()["data"]
        d_adj = c.get("/v1/eod/ADJ/delta", params={"days": 2, "adjusted": "true"}).json()["data"]
        assert (d_raw["start_close"], d_raw["pct_change"]) == (100.0, -49.0)
        assert (d_default["start_close"], d_default["pct_change"]) == (50.0, 2.0)
        assert (d_adj["start_close"], d_adj["pct_change"]) == (50.0, 2.0)
