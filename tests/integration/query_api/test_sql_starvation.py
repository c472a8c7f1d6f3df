"""Slow SQL cannot starve health or catalog routes: `stockdata serve` under 44 slow queries.

The issue's attack: 44 concurrent slow queries from one client (within its burst) held every
thread of the shared pool, and `/health/ready` and catalog routes timed out for 34 s. Here
the server runs one SQL worker; the queries are genuinely slow (a cross join over range()
that runs far past the 60 s time limit), so all of them are still pending while the probe
and a catalog route answer. No timing is asserted: only the order of answers.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from sqlalchemy.engine import Engine

import lake
from tests import _services

SLOW_SQL = (
    "SELECT count(*) AS n FROM range(1000000000) a, range(1000000) b WHERE a.range + b.range < 0"
)
CONCURRENT = 44
WORKERS = 1
QUEUE = 4 * WORKERS  # query_api._app.SQL_QUEUE_PER_WORKER


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid` (the SQL workers, whatever session they run in)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _request(
    port: int, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_slow_sql_leaves_health_and_catalog_routes_answering(
    tmp_path: Path, sample_lake: lake.LakeSettings, pg_url: str, seeded: Engine
) -> None:
    port = _services.free_port()
    env = {
        **os.environ,
        "STOCKDATA_HOME": str(tmp_path),
        "STOCKDATA_LAKE_URI": sample_lake.root,
        "STOCKDATA_DATABASE_URL": pg_url.replace("+psycopg", ""),
        "STOCKDATA_SQL_WORKERS": str(WORKERS),
        "STOCKDATA_SQL_TIMEOUT_SECONDS": "60",
        "STOCKDATA_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        # one API worker: the SQL gate's capacity is per worker process
        [sys.executable, "-m", "stockdata", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    pool = ThreadPoolExecutor(max_workers=CONCURRENT)
    try:
        _services.wait_for_port(port, timeout=60, proc=proc)
        assert _request(port, "GET", "/health/ready")[0] == 200
        body = json.dumps({"sql": SLOW_SQL}).encode()
        slow: list[Future[tuple[int, dict[str, object]]]] = [
            pool.submit(_request, port, "POST", "/v1/sql", body) for _ in range(CONCURRENT)
        ]
        # What cannot run or wait is refused at once: wait for exactly those answers.
        refused = CONCURRENT - WORKERS - QUEUE
        deadline = time.monotonic() + 120
        while sum(f.done() for f in slow) < refused and time.monotonic() < deadline:
            time.sleep(0.05)
        done = [f.result() for f in slow if f.done()]
        assert [(status, body["type"]) for status, body in done] == [
            (503, "https://stockdata.dev/problems/sql-busy")
        ] * refused
        assert done[0][1]["detail"] == (
            "all 1 SQL workers are busy and 4 queries are waiting; retry shortly"
        )

        ready = _request(port, "GET", "/health/ready")
        exchanges = _request(port, "GET", "/v1/exchanges")
        live = _request(port, "GET", "/health/live")
        point = _request(port, "GET", "/v1/eod/MSFT?date=2008-10-10")
        still_pending = sum(not f.done() for f in slow)

        assert (ready[0], ready[1]["status"]) == (200, "ok")
        assert exchanges[0] == 200
        assert "XNAS" in [e["mic"] for e in exchanges[1]["data"]]  # type: ignore[union-attr,index]
        assert live == (200, {"status": "ok"})
        assert (point[0], point[1]["data"][0]["close"]) == (200, 18.029)  # type: ignore[index]
        assert still_pending == WORKERS + QUEUE
    finally:
        # the server and every SQL worker it started, each by its own id
        for pid in [proc.pid, *_descendants(proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        pool.shutdown(wait=True, cancel_futures=True)
