"""Query API benchmark: the real server on loopback, wrk at 16 connections, random keys.

`python -m bench api --tickers N` serves N synthetic tickers x 20 years (default 5,000: ~25M
rows; `--small` or STOCKDATA_BENCH_SMALL=1: 500). The same routes are measured on the default
read path (the serving form, one worker per core) and on DuckDB over Delta (serving off), plus
the serving form's build time, start to serving, bytes per row, RSS per worker (private and
shared) and the time to serve a new version after a daily append. Every route is measured in the same run as the
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
        serving: bool = True,
        workers: int | None = None,
        pinned: bool = True,
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
            "STOCKDATA_API_SERVING": "true" if serving else "false",
        }
        if workers is not None:
            env["STOCKDATA_API_WORKERS"] = str(workers)
        self.proc = subprocess.Popen(
            [
                *(_pinned(SERVER_CPU) if pinned else []),
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
                not index or re.search(rb'stockdata_api_read_engine\{engine="serving"\} 1', body)
            ):
                return time.perf_counter() - t0
            time.sleep(0.5)
        raise TimeoutError("the server did not become ready")

    def cache_counts(self) -> dict[str, float]:
        """The server's response-cache lookups so far, by result (hit, miss, not_modified)."""
        _, body = self.get("/metrics")
        found = re.findall(rb'^stockdata_api_cache_total\{result="(\w+)"\} (\S+)$', body, re.M)
        return {k.decode(): float(v) for k, v in found}

    def rss(self) -> list[dict[str, Any]]:
        """Per process of the server (itself and its descendants): its role, private and
        shared RSS in MB."""
        out = []
        for pid in [self.proc.pid, *_descendants(self.proc.pid)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            fields = dict(
                (k, float(v.split()[0]) / 1024)
                for k, _, v in (line.partition(":") for line in status.splitlines())
                if k in ("RssAnon", "RssFile", "RssShmem", "VmRSS")
            )
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            if "python" not in cmdline:
                continue
            role = (
                "supervisor"
                if pid == self.proc.pid
                else "sql worker"
                if "_sandbox_worker" in cmdline
                else "api worker"
            )
            out.append({"role": role, **fields})
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for kid in kids:
            found.append(int(kid))
            todo.append(int(kid))
    return found


def _tickers() -> tuple[int, bool]:
    if "--tickers" in sys.argv:
        return int(sys.argv[sys.argv.index("--tickers") + 1]), False
    small = "--small" in sys.argv or os.environ.get("STOCKDATA_BENCH_SMALL") == "1"
    return (500 if small else 5_000), small


def _append_day(settings: lake.LakeSettings, n: int) -> tuple[int, str]:
    """A daily append: one new session for every ticker, through write_bars."""
    day = dt.date(2025, 1, 2)
    bars = lake.synthetic_bars([f"T{i:05d}" for i in range(n)], date_from=day, date_to=day, seed=7)
    written = lake.write_bars(
        settings, bars, job_id=f"api-bench-append-{time.time_ns()}", today=TODAY
    )
    assert written.version is not None
    return int(written.version), day.isoformat()


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
    n, small = _tickers()
    settings, keys = _lake(n)
    rows = keys.num_rows
    pairs = _sample_keys(keys, WARM_KEYS)
    cold = _sample_keys(keys, COLD_KEYS, seed=12)
    dates = sorted({d for _, d in pairs})
    work = DATA / "api_run"
    work.mkdir(parents=True, exist_ok=True)
    year = [(t, d) for t, d in pairs if d.startswith("2015")][:1] or pairs[:1]
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
        "on_date": _lua([f"/v1/eod?date={d}&limit=5000" for d in dates[:2000]], work / "on.lua"),
        "year": _lua(
            [f"/v1/eod/{t}?from=2015-01-01&to=2015-12-31&limit=5000" for t, _ in pairs[:2000]],
            work / "year.lua",
        ),
    }
    del year
    results: dict[str, Any] = {}
    rng = random.Random(3)

    # The serving form of the lake's version, built as `lake publish` would after ingest.
    shutil.rmtree(settings.serving_root, ignore_errors=True)
    t0 = time.perf_counter()
    published = lake.publish(settings)
    assert published is not None
    results["build_s"] = time.perf_counter() - t0
    results["bytes_per_row"] = published.bytes_per_row

    seq_delta = [f"/v1/eod/{t}/delta?days=21&date={d}" for t, d in rng.sample(pairs, 2000)]
    seq_movers = [f"/v1/movers?date={d}&days=21&limit=10" for d in rng.sample(dates, 200)]
    seq_eod = [f"/v1/eod/{t}?date={d}" for t, d in rng.sample(pairs, 2000)]
    seq_on = [f"/v1/eod?date={d}&limit=5000" for d in rng.sample(dates, 50)]
    # uvicorn: the floor only (the server choice); granian: every route on each read path.
    for name, engine in (("uvicorn", "serving"), ("granian", "serving"), ("granian", "duckdb")):
        srv = Server(settings, server=name, workdir=work, serving=engine == "serving")
        tag = f"{name}_{engine}"
        try:
            ready = srv.wait_ready(index=engine == "serving")
            results[f"startup_{tag}"] = ready
            wrk(srv.port, scripts["floor"], connections=CONNECTIONS, duration=WARMUP)
            results[f"floor_{tag}"] = wrk(
                srv.port, scripts["floor"], connections=CONNECTIONS, duration=DURATION
            )
            if name != "granian":
                continue
            routes = ("eod_cold", "eod", "delta", "movers", "on_date", "year")
            for route in routes if engine == "serving" else ("eod_cold", "delta"):
                before = srv.cache_counts()
                results[f"{route}_{engine}"] = x = wrk(
                    srv.port, scripts[route], connections=CONNECTIONS, duration=DURATION
                )
                after = srv.cache_counts()
                looked = sum(after.values()) - sum(before.values())
                hits = looked - (after.get("miss", 0) - before.get("miss", 0))
                x["hit_ratio"] = hits / looked if looked else 0.0
            results[f"floor_again_{tag}"] = wrk(
                srv.port, scripts["floor"], connections=CONNECTIONS, duration=DURATION
            )
            results[f"seq_eod_{engine}"] = _sequential(srv, seq_eod)
            results[f"seq_delta_{engine}"] = _sequential(srv, seq_delta[:500])
            results[f"seq_movers_{engine}"] = _sequential(
                srv, seq_movers if engine == "serving" else seq_movers[:20]
            )
            if engine == "serving":
                results["seq_on_date"] = _sequential(srv, seq_on)
                results["rss"] = srv.rss()
                # a daily append: time until an answer comes from the new version
                version, day = _append_day(settings, n)
                t0 = time.perf_counter()
                probe = f"/v1/eod/T00000?date={day}"
                while time.perf_counter() - t0 < 900:
                    status, body = srv.get(probe)
                    if status == 200 and json.loads(body)["lake_version"] == version:
                        break
                    time.sleep(0.2)
                results["new_version_s"] = time.perf_counter() - t0
                results["rss_after_new_version"] = srv.rss()
        finally:
            srv.stop()
    # The default worker count (one per core; unpinned, so both cores): the form's pages are
    # shared by the workers, what each holds privately is its own.
    srv = Server(settings, server="granian", workdir=work, serving=True, pinned=False)
    try:
        srv.wait_ready(index=True)
        for route in ("eod_cold", "movers", "on_date", "year"):
            wrk(srv.port, scripts[route], connections=CONNECTIONS, duration=DURATION)
        results["rss_default_workers"] = srv.rss()
    finally:
        srv.stop()
    print(json.dumps(results, indent=2), flush=True)
    _report(results, n=n, rows=rows, small=small)


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _report(r: dict[str, Any], *, n: int, rows: int, small: bool) -> None:
    floor = (r["floor_granian_serving"]["rps"] + r["floor_again_granian_serving"]["rps"]) / 2
    cold = r["eod_cold_serving"]
    pinned = bool(_pinned(SERVER_CPU))
    workers = [p for p in r["rss_default_workers"] if p["role"] == "api worker"]

    def mem(procs: list[dict[str, Any]]) -> str:
        return "; ".join(
            f"{p['role']} private {p.get('RssAnon', 0):.0f}, shared {p.get('RssFile', 0):.0f}"
            for p in procs
        )

    lines = [
        f"`python -m bench api --tickers {n}`: {n:,} synthetic tickers x 20 years "
        f"({rows:,} rows, {DATE_FROM}..{DATE_TO}) in a local Delta lake; `stockdata serve` "
        f"with default settings (granian, one worker per core: pinned to one core for the "
        f"route runs, so 1 worker; {len(workers)} in the memory run; log level "
        "INFO, one JSON access-log event per request to /dev/null; rate limit off, auth none) "
        f"on loopback; wrk 4.1 with {CONNECTIONS} connections, {DURATION} per route after a "
        f"{WARMUP} warm-up on the floor route"
        + (
            f", the server pinned to CPU {SERVER_CPU} and wrk to CPU {WRK_CPU} (`taskset`)"
            if pinned
            else ", server and wrk sharing the cores"
        )
        + f". Cold keys: random (ticker, session) pairs from {COLD_KEYS:,} drawn over the "
        f"whole lake; warm keys: {WARM_KEYS:,} pairs the response cache can hold. `serving` is "
        "the default read path (the memory-mapped serving form, docs/adr/0007-serving-form.md); "
        "`duckdb` the same server with STOCKDATA_API_SERVING=false (DuckDB over Delta). The "
        "ratios to the floor (same run, same server) are the comparable numbers.",
        "",
        f"- serving form build (`lake publish`): {r['build_s']:.1f} s, "
        f"{r['bytes_per_row']:.1f} bytes per row on disk",
        f"- start to serving, form published: {r['startup_granian_serving']:.1f} s; "
        f"DuckDB only: {r['startup_granian_duckdb']:.1f} s",
        f"- a daily append ({n:,} rows) answered from its new version after "
        f"{r['new_version_s']:.1f} s",
        "- RSS in MB (private = anonymous memory; shared = file pages, mostly the mapped "
        "form, counted in every process that touched them but held once by the page cache), "
        f"pinned server (1 worker) after every route: {mem(r['rss'])}; after the new version: "
        f"{mem(r['rss_after_new_version'])}; default workers ({len(workers)}, unpinned) after "
        f"cold lookups, movers, one-date and one-year runs: {mem(r['rss_default_workers'])}",
        "",
        "| route (16 connections) | engine | req/s | p50 ms | p99 ms | non-2xx | hit |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, key in (
        ("floor: `GET /health/live` (uvicorn)", "floor_uvicorn_serving"),
        ("floor: `GET /health/live` (granian)", "floor_granian_serving"),
        ("EoD point lookup `GET /v1/eod/{symbol}?date=D`, cold keys", "eod_cold_serving"),
        ("EoD point lookup, cold keys", "eod_cold_duckdb"),
        ("EoD point lookup, warm keys", "eod_serving"),
        ("delta `GET /v1/eod/{symbol}/delta?days=21&date=D`", "delta_serving"),
        ("delta", "delta_duckdb"),
        ("movers, all tickers `GET /v1/movers?date=D&days=21`", "movers_serving"),
        ("one date, all tickers `GET /v1/eod?date=D&limit=5000`", "on_date_serving"),
        ("one year of one ticker `GET /v1/eod/{symbol}?from=..&to=..`", "year_serving"),
        ("floor again (granian, after the data routes)", "floor_again_granian_serving"),
    ):
        x = r[key]
        hit = f"{x['hit_ratio']:.0%}" if "hit_ratio" in x else "-"
        engine = "duckdb" if key.endswith("duckdb") else "serving"
        lines.append(
            f"| {label} | {engine} | {x['rps']:,.0f} | {x['p50']:.2f} | {x['p99']:.2f} | "
            f"{x['non2xx']:.0f} | {hit} |"
        )
    lines += [
        "",
        "| one request at a time (keep-alive, no queueing) | engine | p50 ms | p99 ms |",
        "| --- | --- | ---: | ---: |",
    ]
    for label, key in (
        ("EoD point lookup", "seq_eod"),
        ("delta, 21 sessions", "seq_delta"),
        (f"movers, all {n:,} tickers", "seq_movers"),
    ):
        for engine in ("serving", "duckdb"):
            x = r[f"{key}_{engine}"]
            lines.append(f"| {label} | {engine} | {x['p50']:.2f} | {x['p99']:.2f} |")
    lines.append(
        f"| one date, all tickers (JSON) | serving | {r['seq_on_date']['p50']:.2f} | "
        f"{r['seq_on_date']['p99']:.2f} |"
    )
    share = cold["rps"] / floor
    lines += [
        "",
        "Targets (issue 12; judged at 20,000 tickers):",
        f"- cold point lookups >= 70% of the floor: {share:.0%} of {floor:,.0f} req/s "
        f"{_verdict(share >= 0.7)}; p99 <= 5 ms: {cold['p99']:.2f} ms "
        f"{_verdict(cold['p99'] <= 5)}.",
        f"- delta p50 <= 1 ms one at a time: {r['seq_delta_serving']['p50']:.2f} ms "
        f"{_verdict(r['seq_delta_serving']['p50'] <= 1)}; movers p50 <= 10 ms: "
        f"{r['seq_movers_serving']['p50']:.2f} ms "
        f"{_verdict(r['seq_movers_serving']['p50'] <= 10)}; one date (JSON) p50 <= 50 ms: "
        f"{r['seq_on_date']['p50']:.2f} ms {_verdict(r['seq_on_date']['p50'] <= 50)}.",
        f"- start to serving <= 5 s: {r['startup_granian_serving']:.1f} s "
        f"{_verdict(r['startup_granian_serving'] <= 5)}; new version <= 60 s: "
        f"{r['new_version_s']:.1f} s {_verdict(r['new_version_s'] <= 60)}; build <= 120 s: "
        f"{r['build_s']:.1f} s {_verdict(r['build_s'] <= 120)}; <= 64 bytes per row: "
        f"{_verdict(r['bytes_per_row'] <= 64)}.",
    ]
    write_section(f"Query API ({n:,} tickers)" if not small else "Query API", "\n".join(lines))


if __name__ == "__main__":
    main()
