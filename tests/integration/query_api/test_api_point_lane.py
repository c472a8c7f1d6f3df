"""The EoD point-lookup lane answers exactly what the handler would, or steps aside.

The lane reads `date`, `exchange` and `adjusted` from the raw query string when the hot
index holds the current version. Each lane-shaped request here is compared with the same
request made to take the long way (an extra `sort=asc`, the default, which the lane does
not read), and the lane's counter shows which way each one went.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

import lake
from query_api._hardening import SecuritySettings
from tests.integration.query_api.conftest import make_app

TYPE = "https://stockdata.dev/problems/"


@pytest.fixture
def lane_client(sample_lake: lake.LakeSettings, seeded: Engine) -> Iterator[TestClient[Litestar]]:
    app = make_app(sample_lake, engine=seeded, api_serving=True, api_lake_poll_seconds=3600)
    with TestClient(app) as test_client:
        yield test_client


def _lane_answers(client: TestClient[Litestar]) -> int:
    text = client.get("/metrics").text
    found = re.search(r"^stockdata_api_point_lane_total (\S+)$", text, re.M)
    assert found is not None
    return int(float(found.group(1)))


def _same_answer(lane: httpx.Response, long_way: httpx.Response) -> None:
    assert lane.status_code == long_way.status_code
    assert lane.headers["content-type"] == long_way.headers["content-type"]
    assert lane.content == long_way.content


@pytest.mark.parametrize(
    "query",
    [
        "date=2008-10-10",
        "date=2008-10-10&adjusted=true",
        "adjusted=false&date=2008-10-10",
        "date=2008-10-10&exchange=XNAS",
        "date=2008-10-10&exchange=xnas&adjusted=true",
        "date=2008-12-25",  # a holiday: no bar, an empty page
        "date=1980-01-02",  # before the ticker's first bar
    ],
)
def test_lane_answers_like_the_handler(lane_client: TestClient[Litestar], query: str) -> None:
    before = _lane_answers(lane_client)
    lane = lane_client.get(f"/v1/eod/msft?{query}")
    assert _lane_answers(lane_client) == before + 1
    long_way = lane_client.get(f"/v1/eod/msft?{query}&sort=asc")
    assert _lane_answers(lane_client) == before + 1
    assert lane.status_code == 200
    _same_answer(lane, long_way)


def test_lane_close_is_the_csv_close(lane_client: TestClient[Litestar]) -> None:
    body = lane_client.get("/v1/eod/MSFT?date=2008-10-10").json()
    assert [(b["date"], b["close"], b["volume"]) for b in body["data"]] == [
        ("2008-10-10", 18.029, 272368277)
    ]
    assert body["pagination"] == {"limit": 100, "offset": 0, "total": 1, "next_offset": None}


def test_lane_errors_are_the_handlers_problems(lane_client: TestClient[Litestar]) -> None:
    # the lane steps aside when it cannot answer: the handler's problem answer, every time
    before = _lane_answers(lane_client)
    lane = lane_client.get("/v1/eod/NOPE?date=2008-10-10")
    long_way = lane_client.get("/v1/eod/NOPE?date=2008-10-10&sort=asc")
    assert _lane_answers(lane_client) == before
    assert lane.status_code == long_way.status_code == 404
    assert lane.json()["type"] == long_way.json()["type"] == TYPE + "not-found"
    assert lane.json()["detail"] == long_way.json()["detail"] == "no data for symbol 'NOPE'"
    wrong_exchange = lane_client.get("/v1/eod/MSFT?date=2008-10-10&exchange=XNYS")
    assert wrong_exchange.status_code == 404
    assert wrong_exchange.json()["detail"] == "no data for MSFT on XNYS"


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("date=2008-13-01", 400, "invalid-input"),  # not a date
        ("date=2008-1-1", 400, "invalid-input"),  # not the strict ISO form
        ("date=2008-10-10&adjusted=maybe", 400, "invalid-input"),
        ("date=2008-10-10&exchange=XNASDAQ", 400, "invalid-input"),
        ("date=2008-10-10&limit=0", 400, "invalid-input"),
        ("date=2008-10-10&from=2008-10-01", 400, "invalid-range"),
        ("date=", 400, "invalid-input"),
    ],
)
def test_what_the_lane_does_not_read_goes_the_long_way(
    lane_client: TestClient[Litestar], query: str, status: int, code: str
) -> None:
    before = _lane_answers(lane_client)
    resp = lane_client.get(f"/v1/eod/MSFT?{query}")
    assert _lane_answers(lane_client) == before
    assert resp.status_code == status
    assert resp.json()["type"] == TYPE + code


def test_escaped_or_repeated_parameters_go_the_long_way(lane_client: TestClient[Litestar]) -> None:
    before = _lane_answers(lane_client)
    escaped = lane_client.get("/v1/eod/MSFT?date=2008%2D10%2D10")
    assert escaped.status_code == 200
    assert [b["close"] for b in escaped.json()["data"]] == [18.029]
    repeated = lane_client.get("/v1/eod/MSFT?date=2008-10-10&date=2008-10-10")
    assert _lane_answers(lane_client) == before
    # Litestar reads the first of a repeated scalar parameter
    assert repeated.status_code == 200
    assert [b["close"] for b in repeated.json()["data"]] == [18.029]


def test_lane_answers_allowed_hosts_and_gets_only(
    sample_lake: lake.LakeSettings, seeded: Engine
) -> None:
    security = SecuritySettings(rate_limit_per_minute=0, allowed_hosts=["api.stockdata.dev"])
    app = make_app(
        sample_lake,
        engine=seeded,
        api_serving=True,
        api_lake_poll_seconds=3600,
        security=security,
    )
    with TestClient(app, base_url="http://api.stockdata.dev") as client:
        before = _lane_answers(client)
        ok = client.get("/v1/eod/MSFT?date=2008-10-10")
        assert (ok.status_code, [b["close"] for b in ok.json()["data"]]) == (200, [18.029])
        assert ok.headers["x-content-type-options"] == "nosniff"
        assert _lane_answers(client) == before + 1
        # another Host: the host check (an app middleware) refuses it before any route
        for path in ("/v1/eod/MSFT?date=2008-10-10", "/v1/eod/MSFT?date=2008-10-10&sort=asc"):
            refused = client.get(path, headers={"Host": "evil.example"})
            assert refused.status_code == 400
            assert refused.json()["type"] == TYPE + "invalid-host"
        # the lane answers GET only; HEAD goes the long way: the GET's headers, no body
        head = client.head("/v1/eod/MSFT?date=2008-10-10")
        head_long_way = client.head("/v1/eod/MSFT?date=2008-10-10&sort=asc")
        assert head.status_code == head_long_way.status_code == 200
        assert head.content == head_long_way.content == b""
        assert head.headers["etag"] == ok.headers["etag"]
        assert _lane_answers(client) == before + 1
