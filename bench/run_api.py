"""Query API benchmark: the real server on loopback, wrk at 16 connections, random keys.

`python -m bench api` serves 5,000 synthetic tickers x 20 years (~25M rows); `--small` (or
STOCKDATA_BENCH_SMALL=1) serves 500 tickers. Every route is measured in the same run as the
server's trivial JSON route (`/health/live`, the framework floor). Needs `wrk` on PATH
(`apt-get install -y wrk`). Bars are generated once into bench/.data/ (gitignored).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import lake
from bench._data import DATA, DATE_FROM, DATE_TO, cache_key, synthetic
from bench._report import write_section

TODAY = dt.date(2025, 6, 1)
CONNECTIONS = 16
DURATION = "10s"
WARMUP = "5s"
#: The server and wrk on separate cores (when `taskset` and two cores are there), so the
#: load generator does not preempt the server: tail latency measures the server.
SERVER_CPU, WRK_CPU = 1, 0
#: The warm working set (the response cache holds 20,000 entries) and the cold key space
#: (random keys from the whole lake: the cache seldom helps).
WARM_KEYS, COLD_KEYS = 20_000, 400_000


def _pinned(cpu: int) -> list[str]:
    import shutil

    if shutil.which("taskset") and (os.cpu_count() or 1) > max(SERVER_CPU, WRK_CPU):
        return ["taskset", "-c", str(cpu)]
    return []


DEAD_DB = "postgresql://bench:unused@127.0.0.1:1/none"


def _lake(n: int) -> tuple[lake.LakeSettings, pa.Table]:
    root = DATA / f"api_lake_{cache_key(n)}"
    settings = lake.LakeSettings(lake_uri=str(root))
    keys_path = DATA / f"api_keys_{cache_key(n)}.parquet"
    if (root / lake.EOD_TABLE / "_delta_log").exists() and keys_path.exists():
        return settings, pq.read_table(keys_path)
    shutil.rmtree(root, ignore_errors=True)
    bars = synthetic(n)
    years = pc.year(bars.column("trade_date"))
    t0 = time.perf_counter()
    for year in range(DATE_FROM.year, DATE_TO.year + 1):
        batch = bars.filter(pc.equal(years, year))
        lake.write_bars(settings, batch, job_id=f"api-bench-{year}", today=TODAY)
    print(f"wrote the lake in {time.perf_counter() - t0:.1f} s", flush=True)
    keys = bars.select(["ticker", "trade_date"])
    pq.write_table(keys, keys_path)
    return settings, keys


def _sample_keys(keys: pa.Table, k: int, *, seed: int = 11) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    idx = [rng.randrange(keys.num_rows) for _ in range(k)]
    picked = keys.take(pa.array(idx)).to_pylist()
    return [(r["ticker"], r["trade_date"].isoformat()) for r in picked]


def _lua(paths: list[str], out: Path) -> Path:
    body = ",\n".join(json.dumps(p) for p in paths)
    out.write_text(
        "local paths = {\n" + body + "\n}\n"
        "local n = #paths\n"
        # each wrk thread has its own Lua state: one seed per thread, or every thread would
        # replay the same key sequence (and the cache would answer all but the first)
        "local threads = 0\n"
        "function setup(thread)\n"
        "  threads = threads + 1\n"
        "  thread:set('thread_id', threads)\n"
        "end\n"
        "function init(args)\n"
        "  math.randomseed(7919 * thread_id)\n"
        "end\n"
        "request = function()\n"
        "  return wrk.format('GET', paths[math.random(n)])\n"
        "end\n"
    )
    return out


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(port: int, script: Path, *, connections: int, duration: str) -> dict[str, float]:
    """Requests/s, p50, p99 (ms), non-2xx count of one wrk run."""
    out = subprocess.run(
        [
            *_pinned(WRK_CPU),
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{duration}",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "non2xx": float(bad.group(1)) if bad else 0.0}


class Server:
    """`stockdata serve` in its own process group on a free loopback port."""

    def __init__(
        self,
        settings: lake.LakeSettings,
        *,
        server: str,
        workdir: Path,
        hot_index: bool = True,
        workers: int = 1,
    ) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        env = {
            **os.environ,
            "STOCKDATA_HOME": str(workdir),
            "STOCKDATA_LAKE_URI": settings.root,
            "STOCKDATA_DATABASE_URL": DEAD_DB,
            "STOCKDATA_DATABASE_CONNECT_TIMEOUT": "1",
            "STOCKDATA_RATE_LIMIT_PER_MINUTE": "0",
            "STOCKDATA_SQL_WORKERS": "1",
            "STOCKDATA_API_STALENESS_SECONDS": "300",
            "STOCKDATA_API_HOT_INDEX": "true" if hot_index else "false",
            "STOCKDATA_API_HOT_INDEX_MAX_ROWS": "60000000",
        }
        self.proc = subprocess.Popen(
            [
                *_pinned(SERVER_CPU),
                sys.executable,
                "-m",
                "stockdata",
                # the production default: INFO, one JSON access-log event per request (to
                # /dev/null here; a pipe to the container runtime in production)
                "--log-level",
                "INFO",
                "serve",
                "--port",
                str(self.port),
                "--server",
                server,
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def wait_ready(self, *, index: bool, timeout: float = 900) -> float:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                status, body = self.get("/metrics")
            except OSError:
                time.sleep(0.5)
                continue
            if status == 200 and (
                not index or re.search(rb"stockdata_api_hot_index_rows [1-9]", body)
            ):
                return time.perf_counter() - t0
            time.sleep(0.5)
        raise TimeoutError("the server did not become ready")

    def cache_counts(self) -> dict[str, float]:
        """The server's response-cache lookups so far, by result (hit, miss, not_modified)."""
        _, body = self.get("/metrics")
        found = re.findall(rb'^stockdata_api_cache_total\{result="(\w+)"\} (\S+)$', body, re.M)
        return {k.decode(): float(v) for k, v in found}

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _sequential(server: Server, paths: list[str]) -> dict[str, float]:
    """One keep-alive connection, one request at a time: service time without queueing."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    times = []
    for p in paths:
        t0 = time.perf_counter()
        conn.request("GET", p)
        resp = conn.getresponse()
        resp.read()
        times.append((time.perf_counter() - t0) * 1000)
        if resp.status != 200:
            raise RuntimeError(f"{p}: {resp.status}")
    conn.close()
    times.sort()
    return {"p50": times[len(times) // 2], "p99": times[int(len(times) * 0.99) - 1]}


def main() -> None:
    small = "--small" in sys.argv or os.environ.get("STOCKDATA_BENCH_SMALL") == "1"
    n = 500 if small else 5_000
    settings, keys = _lake(n)
    rows = keys.num_rows
    pairs = _sample_keys(keys, WARM_KEYS)
    cold = _sample_keys(keys, COLD_KEYS, seed=12)
    dates = sorted({d for _, d in pairs})
    work = DATA / "api_run"
    work.mkdir(parents=True, exist_ok=True)
    scripts = {
        "floor": _lua(["/health/live"], work / "floor.lua"),
        "eod": _lua([f"/v1/eod/{t}?date={d}" for t, d in pairs], work / "eod.lua"),
        "eod_cold": _lua([f"/v1/eod/{t}?date={d}" for t, d in cold], work / "eod_cold.lua"),
        "delta": _lua(
            [f"/v1/eod/{t}/delta?days=21&date={d}" for t, d in pairs], work / "delta.lua"
        ),
        "movers": _lua(
            [f"/v1/movers?date={d}&days=21&limit=10" for d in dates[:2000]], work / "movers.lua"
        ),
    }
    results: dict[str, Any] = {}
    rng = random.Random(3)

    # The production server choice: the floor route on granian and on uvicorn.
    for name in ("uvicorn", "granian"):
        # Only the floor is measured on uvicorn: it does not need the index.
        srv = Server(settings, server=name, workdir=work, hot_index=name == "granian")
        try:
            ready = srv.wait_ready(index=name == "granian")
            if name == "granian":
                results["startup_s"] = ready
            # warm-up, discarded: the first seconds after start-up (the freed index build,
            # the first polls) are not the steady state the figures describe
            wrk(srv.port, scripts["floor"], connections=CONNECTIONS, duration=WARMUP)
            results[f"floor_{name}"] = wrk(
                srv.port, scripts["floor"], connections=CONNECTIONS, duration=DURATION
            )
            if name != "granian":
                continue
            for route in ("eod_cold", "eod", "delta", "movers"):
                before = srv.cache_counts()
                results[route] = wrk(
                    srv.port, scripts[route], connections=CONNECTIONS, duration=DURATION
                )
                after = srv.cache_counts()
                looked = sum(after.values()) - sum(before.values())
                hits = looked - (after.get("miss", 0) - before.get("miss", 0))
                results[route]["hit_ratio"] = hits / looked if looked else 0.0
            results["floor_again"] = wrk(
                srv.port, scripts["floor"], connections=CONNECTIONS, duration=DURATION
            )
            seq_delta = [f"/v1/eod/{t}/delta?days=21&date={d}" for t, d in rng.sample(pairs, 2000)]
            seq_movers = [f"/v1/movers?date={d}&days=21&limit=10" for d in rng.sample(dates, 200)]
            seq_eod = [f"/v1/eod/{t}?date={d}" for t, d in rng.sample(pairs, 2000)]
            results["seq_eod"] = _sequential(srv, seq_eod)
            results["seq_delta"] = _sequential(srv, seq_delta)
            results["seq_movers"] = _sequential(srv, seq_movers)
        finally:
            srv.stop()
    print(json.dumps(results, indent=2), flush=True)
    _report(results, n=n, rows=rows, small=small)


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _report(r: dict[str, Any], *, n: int, rows: int, small: bool) -> None:
    floor = (r["floor_granian"]["rps"] + r["floor_again"]["rps"]) / 2
    cold, warm, delta, movers = r["eod_cold"], r["eod"], r["delta"], r["movers"]
    pinned = bool(_pinned(SERVER_CPU))
    lines = [
        f"`python -m bench api{' --small' if small else ''}`: {n:,} synthetic tickers x 20 years "
        f"({rows:,} rows, {DATE_FROM}..{DATE_TO}) in a local Delta lake; `stockdata serve` "
        "(granian, 1 worker, log level INFO as in production: one JSON access-log event per "
        "request, to /dev/null; rate limit off, auth none) on loopback; "
        f"wrk 4.1 with {CONNECTIONS} connections, {DURATION} per route after a {WARMUP} "
        "warm-up on the floor route"
        + (
            f", the server pinned to CPU {SERVER_CPU} and wrk to CPU {WRK_CPU} (`taskset`)"
            if pinned
            else ", server and wrk sharing the cores"
        )
        + f". Cold keys: random (ticker, session) pairs from {COLD_KEYS:,} drawn over the "
        f"whole lake, so the {WARM_KEYS:,}-entry response cache seldom holds the answer; warm "
        f"keys: {WARM_KEYS:,} pairs, a working set the cache holds (a one-bar answer from the "
        "hot index enters the cache on its second request, so a 10 s run answers about a "
        "third to a half of warm lookups from it). `hit` is the share of requests answered "
        "from the response cache during that run (from /metrics). The ratios to the floor "
        "(same run, same server) are the comparable numbers.",
        "",
        f"Server start to hot index ready: {r['startup_s']:.1f} s.",
        "",
        "| route (16 connections) | req/s | p50 ms | p99 ms | non-2xx | hit |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, key in (
        ("floor: `GET /health/live` (granian)", "floor_granian"),
        ("floor: `GET /health/live` (uvicorn)", "floor_uvicorn"),
        ("EoD point lookup `GET /v1/eod/{symbol}?date=D`, cold keys", "eod_cold"),
        ("EoD point lookup, warm keys", "eod"),
        ("delta `GET /v1/eod/{symbol}/delta?days=21&date=D`, warm keys", "delta"),
        ("movers, all tickers `GET /v1/movers?date=D&days=21`", "movers"),
        ("floor again (granian, after the data routes)", "floor_again"),
    ):
        x = r[key]
        hit = f"{x['hit_ratio']:.0%}" if "hit_ratio" in x else "-"
        lines.append(
            f"| {label} | {x['rps']:,.0f} | {x['p50']:.2f} | {x['p99']:.2f} | "
            f"{x['non2xx']:.0f} | {hit} |"
        )
    cold_share, warm_share = cold["rps"] / floor, warm["rps"] / floor
    lines += [
        "",
        "| one request at a time (keep-alive, no queueing) | p50 ms | p99 ms |",
        "| --- | ---: | ---: |",
        f"| EoD point lookup | {r['seq_eod']['p50']:.2f} | {r['seq_eod']['p99']:.2f} |",
        f"| delta, 21 sessions | {r['seq_delta']['p50']:.2f} | {r['seq_delta']['p99']:.2f} |",
        f"| movers, all {n:,} tickers | {r['seq_movers']['p50']:.2f} | "
        f"{r['seq_movers']['p99']:.2f} |",
        "",
        "Targets (judged on the cold keys):",
        f"- EoD point-lookup throughput >= 70% of the floor: {cold_share:.0%} of "
        f"{floor:,.0f} req/s (mean of the two granian floor runs) "
        f"{_verdict(cold_share >= 0.7)}; warm keys {warm_share:.0%}.",
        f"- EoD p99 <= 5 ms at 16 connections: {cold['p99']:.2f} ms "
        f"{_verdict(cold['p99'] <= 5)}; warm keys {warm['p99']:.2f} ms.",
        f"- delta p50 <= 2 ms: {r['seq_delta']['p50']:.2f} ms one at a time "
        f"{_verdict(r['seq_delta']['p50'] <= 2)}; {delta['p50']:.2f} ms at 16 connections "
        "(that figure includes queueing behind 15 other requests).",
        f"- movers p50 <= 20 ms: {r['seq_movers']['p50']:.2f} ms one at a time "
        f"{_verdict(r['seq_movers']['p50'] <= 20)}; {movers['p50']:.2f} ms at 16 connections.",
        "",
        "Server choice: granian vs uvicorn on the floor route in this run (see "
        "docs/adr/0004-query-api.md).",
    ]
    write_section("Query API", "\n".join(lines))


if __name__ == "__main__":
    main()
