"""What a data answer carries on the wire, its access-log event and its metrics, exactly.

The responder sends encoded answers as prebuilt ASGI messages and the request middleware binds
its logger and metric children once: these tests pin the headers, log fields and counters that
the cheaper path must keep producing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from litestar import Litestar
from litestar.testing import TestClient

import lake
from catalog import DatabaseSettings
from query_api import create_app
from query_api._hardening import API_CSP, SecuritySettings
from tests.integration.query_api.conftest import DEAD_DATABASE_URL, api_settings

SECURITY = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-site"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=()"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ("content-security-policy", API_CSP),
]


def _app(sample_lake: lake.LakeSettings, *, hot_index: bool) -> Litestar:
    return create_app(
        api_settings(api_serving=hot_index),
        lake_settings=sample_lake,
        database_settings=DatabaseSettings(
            database_url=DEAD_DATABASE_URL, database_connect_timeout=1
        ),
        sql=False,
        security_settings=SecuritySettings(rate_limit_per_minute=600, rate_limit_burst=60),
        access_logs=True,
    )


@pytest.fixture(params=[True, False], ids=["serving", "duckdb"])
def wire(sample_lake: lake.LakeSettings, request: pytest.FixtureRequest) -> Iterator[Any]:
    with (
        structlog.testing.capture_logs() as logs,
        TestClient(_app(sample_lake, hot_index=bool(request.param))) as client,
    ):
        yield client, logs


def _names(headers: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in headers]


def test_json_answer_headers_exactly(wire: Any) -> None:
    client, _ = wire
    resp = client.get(
        "/v1/eod/MSFT", params={"date": "2008-10-10"}, headers={"X-Request-ID": "req-1"}
    )
    assert resp.status_code == 200
    headers = [(k.decode(), v.decode()) for k, v in resp.headers.raw]
    etag = resp.headers["etag"]
    assert etag.startswith('"v') and etag.endswith('"')
    assert headers == [
        ("etag", etag),
        ("cache-control", "public, max-age=30"),
        ("vary", "Accept, Accept-Encoding, Authorization, X-API-Key"),
        ("content-type", "application/json"),
        ("content-length", str(len(resp.content))),
        ("ratelimit-limit", "600"),
        ("ratelimit-remaining", "59"),
        ("ratelimit-reset", "1"),
        ("ratelimit-policy", "600;w=60;burst=60"),
        *SECURITY,
        ("x-request-id", "req-1"),
    ]
    assert resp.json()["data"][0]["close"] == 18.029


def test_csv_and_not_modified_headers(wire: Any) -> None:
    client, _ = wire
    params = {"date": "2008-10-10", "format": "csv"}
    as_csv = client.get("/v1/eod/MSFT", params=params)
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert as_csv.headers["content-length"] == str(len(as_csv.content))
    assert as_csv.text.splitlines()[1].startswith('"MSFT","XNAS",2008-10-10,')
    again = client.get(
        "/v1/eod/MSFT", params=params, headers={"If-None-Match": as_csv.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""
    names = _names([(k.decode(), v.decode()) for k, v in again.headers.raw])
    assert "content-type" not in names
    assert names[:3] == ["etag", "cache-control", "vary"]
    assert names.count("x-request-id") == 1
    assert names.count("content-security-policy") == 1


def test_access_log_and_metrics(wire: Any, request: pytest.FixtureRequest) -> None:
    client, logs = wire
    for _ in range(3):
        client.get("/v1/eod/MSFT", params={"date": "2008-10-10"}, headers={"X-Request-ID": "r-7"})
    client.get("/v1/eod/NOPE", headers={"X-Request-ID": "r-8"})
    events = [e for e in logs if e["event"] == "request"]
    assert [(e["method"], e["path"], e["route"], e["status"], e["request_id"]) for e in events] == [
        *[("GET", "/v1/eod/MSFT", "/v1/eod/{symbol}", 200, "r-7")] * 3,
        ("GET", "/v1/eod/NOPE", "/v1/eod/{symbol}", 404, "r-8"),
    ]
    assert all(e["log_level"] == "info" and e["client"] == "testclient" for e in events)
    text = client.get("/metrics").text
    assert (
        'stockdata_api_request_seconds_count{method="GET",route="/v1/eod/{symbol}",'
        'status="200"} 3.0' in text
    )
    assert (
        'stockdata_api_request_seconds_count{method="GET",route="/v1/eod/{symbol}",'
        'status="404"} 1.0' in text
    )
    # From the hot index a point lookup is cached on its second request (miss, miss, hit);
    # from DuckDB on its first (miss, hit, hit). The unknown symbol is a miss either way.
    hot = request.node.callspec.params["wire"]
    misses, hits = (3, 1) if hot else (2, 2)
    assert f'stockdata_api_cache_total{{result="miss"}} {misses}.0' in text
    assert f'stockdata_api_cache_total{{result="hit"}} {hits}.0' in text
    assert 'stockdata_api_cache_total{result="not_modified"} 0.0' in text
