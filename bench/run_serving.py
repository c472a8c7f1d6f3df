"""Serving-form candidates side by side, in process (docs/adr/0007-serving-form.md).

`python -m bench serving --tickers N` (default 200) builds, from one synthetic lake written
through `write_bars`: (a) the serving form (memory-mapped NumPy columns, lake/_serving.py),
(b) a native DuckDB file sorted by (ticker, exchange_mic, trade_date) with an ART index
on the key, (c) the old per-process HotIndex, and times, in this process, a point lookup,
a 21-session delta's two reads, one date for all tickers, and movers' two cross-sections,
beside DuckDB over Delta. Reports build seconds, bytes per row on disk (or in memory).
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pyarrow.compute as pc

import lake
from bench._data import DATA, DATE_FROM, DATE_TO, cache_key, synthetic
from bench._report import write_section
from query_api._index import HotIndex
from query_api._serving import ServingForm

TODAY = dt.date(2025, 6, 1)


def _tickers() -> int:
    if "--tickers" in sys.argv:
        return int(sys.argv[sys.argv.index("--tickers") + 1])
    return 200


def _lake(n: int) -> lake.LakeSettings:
    root = DATA / f"serving_lake_{cache_key(n)}"
    settings = lake.LakeSettings(lake_uri=str(root))
    if (root / lake.EOD_TABLE / "_delta_log").exists():
        return settings
    shutil.rmtree(root, ignore_errors=True)
    bars = synthetic(n)
    years = pc.year(bars.column("trade_date"))
    for year in range(DATE_FROM.year, DATE_TO.year + 1):
        lake.write_bars(
            settings, bars.filter(pc.equal(years, year)), job_id=f"s-{year}", today=TODAY
        )
    return settings


def _time(fn: Callable[[], Any], repeat: int) -> float:
    """Median microseconds of `fn` over `repeat` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e6)
    times.sort()
    return times[len(times) // 2]


def main() -> None:
    n = _tickers()
    settings = _lake(n)
    shutil.rmtree(settings.serving_root, ignore_errors=True)
    con = lake.connect(settings)
    rows = int(con.execute("SELECT count(*) FROM eod").fetchone()[0])  # type: ignore[index]
    keys = con.execute("SELECT ticker, trade_date FROM eod USING SAMPLE 2000 ROWS").fetchall()
    dates = sorted({d for _, d in keys})
    rng = random.Random(5)
    results: dict[str, dict[str, float]] = {}

    # (a) the serving form
    t0 = time.perf_counter()
    published = lake.publish(settings)
    assert published is not None
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    form = ServingForm(published.path)
    open_s = time.perf_counter() - t0

    def form_point() -> Any:
        t, d = rng.choice(keys)
        p = form.point(form.sid_of[t, "XNYS"], d)
        return form.rows_at(np.asarray([p]), scale=None)

    def form_delta() -> Any:
        t, d = rng.choice(keys)
        sid = form.sid_of[t, "XNYS"]
        end = form.last_on_or_before(sid, d)
        return end, form.point(sid, d - dt.timedelta(days=30))

    def form_on_date() -> Any:
        pos = form.on_date(rng.choice(dates), None)
        return form.rows_at(pos, scale=None)

    def form_movers() -> Any:
        d = rng.choice(dates)
        a, b = form.on_date(d, None), form.on_date(d - dt.timedelta(days=30), None)
        return form.closes_at(a, scale=None), form.closes_at(b, scale=None)

    results["serving form (mmap NumPy)"] = {
        "build_s": build,
        "open_ms": open_s * 1000,
        "bytes_per_row": published.bytes_per_row,
        "point_us": _time(form_point, 2000),
        "delta_us": _time(form_delta, 2000),
        "on_date_us": _time(form_on_date, 50),
        "movers_us": _time(form_movers, 50),
    }

    # (b) a native DuckDB file with an ART index
    path = DATA / f"serving_{cache_key(n)}.duckdb"
    path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    out = duckdb.connect(str(path))
    sorted_bars = con.execute(
        "SELECT ticker, exchange_mic, trade_date, open, high, low, close, volume, adj_open, "
        "adj_high, adj_low, adj_close, adj_volume, split_factor, dividend, currency, source "
        "FROM eod ORDER BY ticker, exchange_mic, trade_date"
    ).to_arrow_table()
    out.register("sorted_bars", sorted_bars)
    out.execute("CREATE TABLE bars AS SELECT * FROM sorted_bars")
    out.unregister("sorted_bars")
    del sorted_bars
    out.execute("CREATE UNIQUE INDEX bars_key ON bars (ticker, exchange_mic, trade_date)")
    out.execute("CHECKPOINT")
    out.close()
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    db = duckdb.connect(str(path), read_only=True)
    open_s = time.perf_counter() - t0

    def db_point() -> Any:
        t, d = rng.choice(keys)
        return db.execute(
            "SELECT * FROM bars WHERE ticker = ? AND exchange_mic = 'XNYS' AND trade_date = ?",
            [t, d],
        ).fetchall()

    def db_delta() -> Any:
        t, d = rng.choice(keys)
        return db.execute(
            "SELECT close FROM bars WHERE ticker = ? AND exchange_mic = 'XNYS' "
            "AND trade_date IN (?, ?)",
            [t, d, d - dt.timedelta(days=30)],
        ).fetchall()

    def db_on_date() -> Any:
        return db.execute(
            "SELECT * FROM bars WHERE trade_date = ? ORDER BY ticker", [rng.choice(dates)]
        ).fetchall()

    def db_movers() -> Any:
        d = rng.choice(dates)
        return db.execute(
            "SELECT ticker, trade_date, close FROM bars WHERE trade_date IN (?, ?)",
            [d, d - dt.timedelta(days=30)],
        ).fetchall()

    results["DuckDB file + ART index"] = {
        "build_s": build,
        "open_ms": open_s * 1000,
        "bytes_per_row": path.stat().st_size / rows,
        "point_us": _time(db_point, 500),
        "delta_us": _time(db_delta, 500),
        "on_date_us": _time(db_on_date, 20),
        "movers_us": _time(db_movers, 20),
    }
    db.close()

    # (c) the old per-process HotIndex (in private memory; bytes per row = its arrays)
    t0 = time.perf_counter()
    index = HotIndex.build(con.cursor(), version=published.version)
    build = time.perf_counter() - t0
    held = index.table.nbytes + index._rows.nbytes + index.keys.nbytes + index.days.nbytes

    def hot_point() -> Any:
        t, d = rng.choice(keys)
        return index.point_row(index.sid_of[t, "XNYS"], d, adjusted=False)

    results["HotIndex (per process, in memory)"] = {
        "build_s": build,
        "open_ms": build * 1000,
        "bytes_per_row": held / rows,
        "point_us": _time(hot_point, 2000),
        "delta_us": float("nan"),
        "on_date_us": float("nan"),
        "movers_us": float("nan"),
    }

    # DuckDB over Delta (the fallback)
    def delta_point() -> Any:
        t, d = rng.choice(keys)
        return con.execute(
            "SELECT * FROM eod WHERE ticker = ? AND exchange_mic = 'XNYS' AND trade_date = ?",
            [t, d],
        ).fetchall()

    def delta_movers() -> Any:
        d = rng.choice(dates)
        return con.execute(
            "SELECT ticker, trade_date, close FROM eod WHERE trade_date IN (?, ?)",
            [d, d - dt.timedelta(days=30)],
        ).fetchall()

    results["DuckDB over Delta"] = {
        "build_s": 0.0,
        "open_ms": float("nan"),
        "bytes_per_row": float("nan"),
        "point_us": _time(delta_point, 100),
        "delta_us": float("nan"),
        "on_date_us": float("nan"),
        "movers_us": _time(delta_movers, 10),
    }
    con.close()
    _report(results, n=n, rows=rows)


def _fmt(x: float, digits: int = 1) -> str:
    return "-" if x != x else f"{x:,.{digits}f}"


def _report(r: dict[str, dict[str, float]], *, n: int, rows: int) -> None:
    lines = [
        f"`python -m bench serving --tickers {n}`: {n:,} synthetic tickers x 20 years "
        f"({rows:,} rows), one process, median of repeated calls with random keys; the "
        "times are the engine's read alone (no HTTP, no JSON). Point: one bar as a Python "
        "tuple; delta: the two reads of an N-session change; one date: every ticker's bar "
        "that day as tuples; movers: the closes of every ticker on two dates.",
        "",
        "| candidate | build s | open ms | bytes/row | point µs | delta µs | one date µs "
        "| movers µs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, x in r.items():
        lines.append(
            f"| {name} | {_fmt(x['build_s'], 2)} | {_fmt(x['open_ms'], 1)} | "
            f"{_fmt(x['bytes_per_row'])} | {_fmt(x['point_us'])} | {_fmt(x['delta_us'])} | "
            f"{_fmt(x['on_date_us'], 0)} | {_fmt(x['movers_us'], 0)} |"
        )
    text = "\n".join(lines)
    print(text, flush=True)
    write_section("Serving-form candidates", text)


if __name__ == "__main__":
    main()
