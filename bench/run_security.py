"""API security costs: the SQL sandbox vs in-process DuckDB, JWT checks, the hardening middlewares.

`python -m bench.run_security` (or `python -m bench security`). Small data (the MSFT sample):
these figures are per-request overheads, not scans.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import tempfile
import time
from pathlib import Path

import anyio
import duckdb
import pyarrow as pa

import lake
from bench._report import p50, pct, timed, write_section

SAMPLES = Path(__file__).resolve().parent.parent / "stockdata" / "samples"
POINT = "select close from eod where ticker = 'MSFT' and trade_date = '2008-10-10'"
WINDOW = (
    "select trade_date, close - lag(close, 21) over (order by trade_date) as d21 "
    "from eod where ticker = 'MSFT' order by trade_date desc limit 10"
)


def _lake(root: Path) -> lake.LakeSettings:
    with (SAMPLES / "MSFT.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    bars = pa.table(
        {
            "ticker": ["MSFT"] * len(rows),
            "exchange_mic": ["XNAS"] * len(rows),
            "trade_date": [dt.date.fromisoformat(r["Date"]) for r in rows],
            "open": [float(r["Open"]) for r in rows],
            "high": [float(r["High"]) for r in rows],
            "low": [float(r["Low"]) for r in rows],
            "close": [float(r["Close"]) for r in rows],
            "volume": [int(r["Volume"]) for r in rows],
        }
    )
    settings = lake.LakeSettings(lake_uri=str(root))
    lake.write_bars(settings, bars, job_id="bench-security")
    return settings


def _row(name: str, ms: list[float]) -> str:
    return f"| {name} | {p50(ms):.3f} | {pct(ms, 99):.3f} |"


def _sandbox(settings: lake.LakeSettings) -> list[str]:
    from query_api._sandbox import SqlSandbox, SqlSettings, StatementChecker
    from stockdata.errors import ResourceLimitError

    con = lake.connect(settings, threads=1)
    snap = duckdb.connect(config={"threads": 1})
    snap.execute("SET GLOBAL parquet_metadata_cache = true")
    for stmt in lake.snapshot_views_sql(lake.local_snapshot(settings)):
        snap.execute(stmt)
    checker = StatementChecker(max_length=20_000)
    lines = [
        "| operation | p50 ms | p99 ms |",
        "| --- | --- | --- |",
    ]
    with SqlSandbox(settings, SqlSettings(sql_timeout_seconds=2.0)) as box:
        box.run("select 1")
        for label, sql in (("point lookup", POINT), ("21-session window, 10 rows", WINDOW)):
            cursor = con.cursor()

            def direct_run(sql: str = sql, c: duckdb.DuckDBPyConnection = cursor) -> object:
                return c.execute(sql).to_arrow_table()

            def sandbox_run(sql: str = sql) -> object:
                return box.run(sql)

            snap_cursor = snap.cursor()

            def snapshot_run(sql: str = sql, c: duckdb.DuckDBPyConnection = snap_cursor) -> object:
                return c.execute(sql).to_arrow_table()

            direct = timed(direct_run, repeat=300)
            over_files = timed(snapshot_run, repeat=300)
            sandboxed = timed(sandbox_run, repeat=300)
            lines.append(
                _row(f"{label}: in-process DuckDB, delta extension (no isolation)", direct)
            )
            lines.append(
                _row(f"{label}: in-process DuckDB over the snapshot's Parquet files", over_files)
            )
            lines.append(_row(f"{label}: sandbox (check + confined worker + Arrow IPC)", sandboxed))
        lines.append(
            _row("statement check alone", timed(lambda: checker.check(WINDOW), repeat=1000))
        )
        recoveries = []
        for _ in range(3):
            t0 = time.perf_counter()
            with contextlib.suppress(ResourceLimitError):
                box.run("select count(*) from eod a, eod b, eod c")
            killed = time.perf_counter()
            box.run(POINT)
            recoveries.append((time.perf_counter() - killed) * 1000)
            assert killed - t0 >= 2.0
        lines.append(_row("after a timeout kill: next query (includes worker restart)", recoveries))
    checker.close()
    con.close()
    snap.close()
    return lines


def _jwt() -> list[str]:
    import jwt as pyjwt

    from query_api._auth import AuthSettings, build_authenticator
    from tests.stubs.jwks import AUDIENCE, ISSUER, JwksServer

    lines = []
    with JwksServer() as idp:
        auth = build_authenticator(
            AuthSettings(
                auth_mode="jwt", jwt_jwks_url=idp.jwks_url, jwt_audience=AUDIENCE, jwt_issuer=ISSUER
            ),
            engine=None,
        )
        token = idp.token(extra={"https://stockdata.dev/role": "analyst"})
        headers = {"authorization": f"Bearer {token}"}
        client = pyjwt.PyJWKClient(idp.jwks_url, cache_keys=True)

        async def ours(n: int) -> list[float]:
            out = []
            for _ in range(n):
                t0 = time.perf_counter()
                await auth.authenticate(headers)
                out.append((time.perf_counter() - t0) * 1000)
            return out

        def pyjwk() -> None:
            key = client.get_signing_key_from_jwt(token)
            pyjwt.decode(token, key.key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)

        anyio.run(ours, 50)
        ours_ms = anyio.run(ours, 2000)
        theirs_ms = timed(pyjwk, repeat=2000)
        lines.append(_row("JWT RS256 check, our JwksCache (cached key)", ours_ms))
        lines.append(_row("JWT RS256 check, PyJWT PyJWKClient (cached key)", theirs_ms))
    return lines


def _middleware() -> list[str]:
    from litestar import Litestar, get
    from litestar.testing import TestClient

    from query_api._hardening import (
        RateLimitMiddleware,
        SecurityHeadersMiddleware,
        SecuritySettings,
    )

    @get("/ping", sync_to_thread=False)
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    settings = SecuritySettings(rate_limit_per_minute=10_000_000, rate_limit_burst=10_000_000)
    bare = Litestar([ping])
    hardened = Litestar(
        [ping], middleware=[SecurityHeadersMiddleware(settings), RateLimitMiddleware(settings)]
    )
    lines = []
    for label, app in (("no hardening", bare), ("security headers + rate limit", hardened)):
        with TestClient(app) as client:

            def fn(c: TestClient[Litestar] = client) -> object:
                return c.get("/ping")

            lines.append(
                _row(f"GET /ping in-process (TestClient), {label}", timed(fn, repeat=2000))
            )
    return lines


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-security-") as tmp:
        settings = _lake(Path(tmp) / "lake")
        lines = _sandbox(settings)
    lines += _jwt()
    lines += _middleware()
    body = (
        "`python -m bench.run_security`: MSFT sample (7,983 rows) in a local Delta lake, one "
        "sandbox worker (1 DuckDB thread), sequential calls. Each row is measured in the same "
        "run as its alternative.\n\n" + "\n".join(lines)
    )
    write_section("API security (SQL sandbox, JWT, middlewares)", body)
    print(body)


if __name__ == "__main__":
    main()
