"""`stockdata serve --workers 2`: one serving form for the pod, /metrics counts every worker."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import lake
from tests import _services

ROUTE = 'stockdata_api_request_seconds_count{method="GET",route="/v1/eod/{symbol}",status="200"}'


def _get(port: int, path: str) -> tuple[int, bytes]:
    # a new connection each time: the server hands connections to either worker
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _count(port: int) -> float:
    status, body = _get(port, "/metrics")
    assert status == 200
    found = re.search(rf"^{re.escape(ROUTE)} (\S+)$", body.decode(), re.M)
    return float(found.group(1)) if found else 0.0


def test_two_workers_share_one_form_and_their_counts(
    tmp_path: Path, sample_lake: lake.LakeSettings, pg_url: str
) -> None:
    copy = tmp_path / "lake"
    shutil.copytree(sample_lake.root, copy, ignore=shutil.ignore_patterns("serving"))
    port = _services.free_port()
    env = {
        **os.environ,
        "STOCKDATA_HOME": str(tmp_path),
        "STOCKDATA_LAKE_URI": str(copy),
        "STOCKDATA_DATABASE_URL": pg_url.replace("+psycopg", ""),
        "STOCKDATA_SQL_WORKERS": "1",
        "STOCKDATA_API_WORKERS": "2",
    }
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stockdata", "--log-json", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    try:
        _services.wait_for_port(port, timeout=120, proc=proc)
        requests = 40
        for i in range(requests):
            day = f"2008-10-{6 + i % 5:02d}"
            status, _ = _get(port, f"/v1/eod/MSFT?date={day}")
            assert status == 200
        # Each worker writes its counts every second, and a scrape reads the other's file:
        # scrape until several in a row (answered by either worker) add up, never above.
        deadline = time.monotonic() + 60
        seen = [_count(port) for _ in range(6)]
        while seen != [float(requests)] * 6 and time.monotonic() < deadline:
            assert max(seen) <= requests
            time.sleep(0.2)
            seen = [_count(port) for _ in range(6)]
        assert seen == [float(requests)] * 6
        # the form is built in the background by one worker; DuckDB answers until then
        engines = set()
        while time.monotonic() < deadline:
            engines = {json.loads(_get(port, "/health/ready")[1])["engine"] for _ in range(6)}
            if engines == {"serving"}:
                break
            time.sleep(0.2)
        assert engines == {"serving"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    events = [
        json.loads(line)
        for line in stderr.read_text().splitlines()
        if line.startswith("{") and '"serving_form_' in line
    ]
    built = [e for e in events if e["event"] == "serving_form_built"]
    mapped = [e for e in events if e["event"] == "serving_form_mapped"]
    assert (len(built), len(mapped)) == (1, 2)  # one build for the pod, each worker maps it
    assert lake.published_versions(copy / "serving") == [2]
