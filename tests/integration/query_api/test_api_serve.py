"""`stockdata serve` on loopback: a real ASGI server process answering from the real lake."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import lake
from tests import _services


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_serve_answers_on_loopback(
    tmp_path: Path, sample_lake: lake.LakeSettings, pg_url: str, server: str
) -> None:
    port = _services.free_port()
    env = {
        **os.environ,
        "STOCKDATA_HOME": str(tmp_path),
        "STOCKDATA_LAKE_URI": sample_lake.root,
        "STOCKDATA_DATABASE_URL": pg_url.replace("+psycopg", ""),
        "STOCKDATA_SQL_WORKERS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "stockdata", "serve", "--port", str(port), "--server", server],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _services.wait_for_port(port, timeout=60, proc=proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/v1/eod/MSFT?date=2008-10-10")
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 200
        assert body["data"][0]["close"] == 18.029
        assert resp.getheader("x-content-type-options") == "nosniff"
        conn.request("GET", "/eod/ticker/MSFT/delta/21")
        legacy = conn.getresponse()
        assert (legacy.status, json.loads(legacy.read())["data"]["days"]) == (200, 21)
        conn.request("GET", "/health/ready")
        ready = conn.getresponse()
        assert (ready.status, json.loads(ready.read())["status"]) == (200, "ok")
        conn.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
