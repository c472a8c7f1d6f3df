"""The background lake poller: a new Delta version is noticed without a request polling."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

from litestar import Litestar
from litestar.testing import TestClient

import lake
from tests.integration.query_api.conftest import make_app


def _served_version(client: TestClient[Litestar]) -> int:
    found = re.search(r"^stockdata_api_lake_version (\S+)$", client.get("/metrics").text, re.M)
    assert found is not None
    return int(float(found.group(1)))


def test_a_new_version_is_picked_up_in_the_background(tmp_path: Path) -> None:
    settings = lake.LakeSettings(lake_uri=str(tmp_path / "lake"))
    first = lake.synthetic_bars(["AAA"], date_from=dt.date(2024, 1, 2), date_to=dt.date(2024, 1, 5))
    lake.write_bars(settings, first, job_id="poll-1", today=dt.date(2026, 1, 1))
    app = make_app(settings, api_serving=True, api_lake_poll_seconds=0.2)
    with TestClient(app) as client:
        start = _served_version(client)
        second = lake.synthetic_bars(
            ["BBB"], date_from=dt.date(2024, 1, 2), date_to=dt.date(2024, 1, 5)
        )
        metrics = lake.write_bars(settings, second, job_id="poll-2", today=dt.date(2026, 1, 1))
        assert metrics.version is not None and metrics.version > start
        # /metrics reads the gauge the poller sets; it never polls the lake itself
        deadline = time.monotonic() + 20
        while _served_version(client) != metrics.version and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _served_version(client) == metrics.version
        # the new serving form is built in the background; the old one answers meanwhile
        resp = client.get("/v1/eod/BBB", params={"date": "2024-01-03"})
        while resp.status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.05)
            resp = client.get("/v1/eod/BBB", params={"date": "2024-01-03"})
        body = resp.json()
        assert body["lake_version"] == metrics.version
        assert [b["ticker"] for b in body["data"]] == ["BBB"]
