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


def _access_events(stderr: Path) -> list[dict[str, object]]:
    events = []
    for line in stderr.read_text().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "request":
                events.append(event)
    return events


@pytest.mark.parametrize(
    ("server", "log_level"), [("granian", None), ("uvicorn", None), ("granian", "WARNING")]
)
def test_serve_answers_on_loopback(
    tmp_path: Path,
    sample_lake: lake.LakeSettings,
    pg_url: str,
    server: str,
    log_level: str | None,
) -> None:
    port = _services.free_port()
    env = {
        **os.environ,
        "STOCKDATA_HOME": str(tmp_path),
        "STOCKDATA_LAKE_URI": sample_lake.root,
        "STOCKDATA_DATABASE_URL": pg_url.replace("+psycopg", ""),
        "STOCKDATA_SQL_WORKERS": "1",
        "STOCKDATA_API_WORKERS": "1",  # two workers: test_api_workers.py
    }
    env.pop("STOCKDATA_LOG_LEVEL", None)
    level = ["--log-level", log_level] if log_level else []
    stderr = tmp_path / "stderr.log"
    args = ["serve", "--port", str(port), "--server", server]
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stockdata", *level, "--log-json", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
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
    # The worker process logs as the command line said: an access event per request at INFO
    # (the default), none at WARNING.
    events = _access_events(stderr)
    if log_level == "WARNING":
        assert events == []
    else:
        assert [(e["path"], e["status"], e["level"]) for e in events] == [
            ("/v1/eod/MSFT", 200, "info"),
            ("/eod/ticker/MSFT/delta/21", 200, "info"),
            ("/health/ready", 200, "info"),
        ]
