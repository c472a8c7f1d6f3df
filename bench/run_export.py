"""Downloads benchmark: whole-lake streams (rows/s, server peak RSS), `stockdata export`, and
gzip of a one-year JSON answer (ratio, time) next to the point-lookup path.

`python -m bench export` streams the 5,000-ticker x 20-year lake (~25M rows) of the API
benchmark; `--small` (or STOCKDATA_BENCH_SMALL=1) uses 50 tickers. The server is `stockdata
serve` on loopback without the hot index (downloads never use it), so its resident memory
before the download is the baseline the stream is measured against.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import lake
from bench._data import DATA, DATE_FROM, DATE_TO
from bench._report import p50, timed, write_section
from bench.run_api import Server, _lake

SAMPLES = Path(__file__).resolve().parents[1] / "stockdata" / "samples"


def _rss_kib(pid: int) -> int:
    """Resident memory of `pid` and its children (the server's worker) in KiB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _download(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, int]:
    """(bytes, status) of one GET, read in 1 MiB chunks and dropped."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        size = 0
        while chunk := resp.read(1 << 20):
            size += len(chunk)
        return size, resp.status
    finally:
        conn.close()


def _stream(server: Server, path: str, rows: int) -> dict[str, float]:
    peak = 0
    done = threading.Event()
    pid = server.proc.pid

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_kib(pid))
            time.sleep(0.05)

    before = _rss_kib(pid)
    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    size, status = _download(server.port, path)
    seconds = time.perf_counter() - t0
    done.set()
    watcher.join()
    if status != 200:
        raise RuntimeError(f"{path}: {status}")
    return {
        "rows": rows,
        "bytes": size,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "rss_before_mib": before / 1024,
        "rss_peak_mib": max(peak, before) / 1024,
    }


def _export_cli(settings: lake.LakeSettings, out: Path) -> dict[str, float]:
    env = {**os.environ, "STOCKDATA_LAKE_URI": settings.root, "STOCKDATA_HOME": str(out.parent)}
    args = [sys.executable, "-m", "stockdata", "--log-level", "WARNING", "export", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*args, "--force"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _rss_kib(proc.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"stockdata export failed: {stderr.strip()}")
    rows = int(stdout.split()[1])
    return {
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "peak_rss_mib": peak / 1024,
        "bytes": out.stat().st_size,
    }


def _sample_lake(root: Path) -> lake.LakeSettings:
    import csv
    import datetime as dt

    import pyarrow as pa

    settings = lake.LakeSettings(lake_uri=str(root / "lake"))
    with (SAMPLES / "MSFT.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    lake.write_bars(
        settings,
        pa.table(
            {
                "ticker": ["MSFT"] * len(rows),
                "exchange_mic": ["XNAS"] * len(rows),
                "trade_date": pa.array(
                    [dt.date.fromisoformat(r["Date"]) for r in rows], pa.date32()
                ),
                **{
                    k.lower(): [float(r[k]) for r in rows] for k in ("Open", "High", "Low", "Close")
                },
                "volume": pa.array([int(r["Volume"]) for r in rows], pa.int64()),
            }
        ),
        job_id="bench-msft",
    )
    return settings


def _compression(workdir: Path) -> dict[str, float]:
    """A one-year JSON page (MSFT 2008, 253 bars) with and without gzip, and point lookups."""
    settings = _sample_lake(workdir)
    srv = Server(settings, server="granian", workdir=workdir)
    try:
        srv.wait_ready(index=True)
        year = "/v1/eod/MSFT?from=2008-01-01&to=2008-12-31&limit=300"
        point = "/v1/eod/MSFT?date=2008-10-10"
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)

        def get(path: str, coding: str) -> bytes:
            conn.request("GET", path, headers={"Accept-Encoding": coding})
            resp = conn.getresponse()
            return resp.read()

        plain = get(year, "identity")
        zipped = get(year, "gzip")
        assert gzip.decompress(zipped) == plain
        level6 = timed(
            lambda: zlib.compressobj(6, zlib.DEFLATED, 31).compress(plain), repeat=200, warmup=5
        )
        out = {
            "json_bytes": len(plain),
            "gzip_bytes": len(zipped),
            "ratio": len(plain) / len(zipped),
            "gzip_ms": p50(level6),
            "get_identity_ms": p50(timed(lambda: get(year, "identity"), repeat=300, warmup=20)),
            "get_gzip_ms": p50(timed(lambda: get(year, "gzip"), repeat=300, warmup=20)),
            "point_identity_ms": p50(timed(lambda: get(point, "identity"), repeat=2000, warmup=50)),
            "point_gzip_ms": p50(timed(lambda: get(point, "gzip"), repeat=2000, warmup=50)),
        }
        conn.close()
        return out
    finally:
        srv.stop()


def main() -> None:
    small = "--small" in sys.argv or os.environ.get("STOCKDATA_BENCH_SMALL") == "1"
    n = 50 if small else 5_000
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="stockdata-bench-gzip-") as tmp:
        results["gzip"] = _compression(Path(tmp))
    settings, keys = _lake(n)
    rows = keys.num_rows
    work = DATA / "export_run"
    work.mkdir(parents=True, exist_ok=True)
    srv = Server(settings, server="granian", workdir=work, serving=False)
    try:
        srv.wait_ready(index=False)
        # warm-up, discarded: the first read attaches the snapshot and fills DuckDB's caches
        _download(srv.port, f"/v1/eod?from={DATE_FROM}&to={DATE_FROM.replace(month=3)}&format=csv")
        span = f"from={DATE_FROM}&to={DATE_TO}"
        for fmt in ("csv", "arrow", "parquet"):
            results[f"stream_{fmt}"] = _stream(srv, f"/v1/eod?{span}&format={fmt}", rows)
    finally:
        srv.stop()
    results["cli_parquet"] = _export_cli(settings, work / "all.parquet")
    print(json.dumps(results, indent=2), flush=True)
    _report(results, n=n, rows=rows, small=small)


def _report(r: dict[str, Any], *, n: int, rows: int, small: bool) -> None:
    g = r["gzip"]
    lines = [
        f"`python -m bench export{' --small' if small else ''}`: {n:,} synthetic tickers x 20 "
        f"years ({rows:,} rows) in a local Delta lake; `stockdata serve` (granian, 1 worker, "
        "hot index off) on loopback; one request per format for every bar of every ticker "
        f"(`/v1/eod?from={DATE_FROM}&to={DATE_TO}&format=...`), read and dropped by the client.",
        "",
        "| download | rows/s | bytes | server RSS before → peak |",
        "| --- | ---: | ---: | ---: |",
    ]
    for fmt in ("csv", "arrow", "parquet"):
        s = r[f"stream_{fmt}"]
        lines.append(
            f"| {fmt} stream | {s['rows_per_s']:,.0f} | {s['bytes']:,} | "
            f"{s['rss_before_mib']:,.0f} → {s['rss_peak_mib']:,.0f} MiB |"
        )
    c = r["cli_parquet"]
    lines += [
        f"| `stockdata export` (Parquet file) | {c['rows_per_s']:,.0f} | {c['bytes']:,} | "
        f"peak {c['peak_rss_mib']:,.0f} MiB |",
        "",
        f"gzip (level 6) of a one-year JSON page (MSFT 2008, 253 bars): {g['json_bytes']:,} → "
        f"{g['gzip_bytes']:,} bytes (ratio {g['ratio']:.1f}), {g['gzip_ms']:.2f} ms to compress "
        "once (kept with the cached answer); sequential GET p50 "
        f"{g['get_identity_ms']:.2f} ms identity vs {g['get_gzip_ms']:.2f} ms gzip (cache hits). "
        f"Point lookups (below 1,400 bytes, never compressed): p50 {g['point_identity_ms']:.3f} ms "
        f"without vs {g['point_gzip_ms']:.3f} ms with `Accept-Encoding: gzip`.",
    ]
    write_section("Downloads and compression", "\n".join(lines))
