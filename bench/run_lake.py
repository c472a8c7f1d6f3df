"""Lake layout benchmark: our layout vs ticker partitions, unpinned scans, pandas and Polars.

`python -m bench lake` runs 5,000 tickers x 20 years (~25M rows); `STOCKDATA_BENCH_SMALL=1`
(or `python -m bench.run_lake --small`) runs 500 tickers for a quick look. The synthetic
bars are generated once into bench/.data/ (gitignored).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

import lake
from bench._data import DATA, DATE_FROM, DATE_TO, SEED, synthetic
from bench._report import p50, pct, timed, write_section

TODAY = dt.date(2025, 6, 1)
CROSS_DATE = dt.date(2024, 6, 14)
WINDOWS = lake.DELTA_WINDOWS


def _backfill(settings: lake.LakeSettings, bars: pa.Table) -> tuple[float, int]:
    """Write year by year (one job per year, the backfill path); returns (seconds, rows)."""
    import pyarrow.compute as pc

    years = pc.year(bars.column("trade_date"))
    t0 = time.perf_counter()
    for year in range(DATE_FROM.year, DATE_TO.year + 1):
        batch = bars.filter(pc.equal(years, year))
        lake.write_bars(settings, batch, job_id=f"backfill-{year}", today=TODAY)
    return time.perf_counter() - t0, bars.num_rows


def _cross_sql(source: str, day: dt.date) -> str:
    lags = ", ".join(
        f"close - lag(close, {k}) OVER w AS change_{k}, "
        f"close / lag(close, {k}) OVER w - 1 AS pct_{k}"
        for k in WINDOWS
    )
    return (
        f"SELECT * FROM (SELECT ticker, trade_date, close, {lags} FROM {source} "
        f"WHERE trade_date BETWEEN DATE '{day - dt.timedelta(days=400)}' AND DATE '{day}' "
        "WINDOW w AS (PARTITION BY ticker ORDER BY trade_date)) "
        f"WHERE trade_date = DATE '{day}'"
    )


def _polars_cross(uri: str, day: dt.date) -> Any:
    import polars as pl

    lf = pl.scan_delta(uri).filter(
        pl.col("trade_date").is_between(day - dt.timedelta(days=400), day)
    )
    exprs = []
    for k in WINDOWS:
        prev = pl.col("close").shift(k).over("ticker", order_by="trade_date")
        exprs += [
            (pl.col("close") - prev).alias(f"change_{k}"),
            (pl.col("close") / prev - 1).alias(f"pct_{k}"),
        ]
    return (
        lf.select("ticker", "trade_date", "close", *exprs)
        .filter(pl.col("trade_date") == day)
        .collect()
    )


def _pandas_cross(uri: str, day: dt.date) -> Any:
    from deltalake import DeltaTable

    df = (
        DeltaTable(uri)
        .to_pandas(
            columns=["ticker", "trade_date", "close"],
            filters=[("trade_date", ">=", day - dt.timedelta(days=400)), ("trade_date", "<=", day)],
        )
        .sort_values(["ticker", "trade_date"])
    )
    g = df.groupby("ticker")["close"]
    for k in WINDOWS:
        prev = g.shift(k)
        df[f"change_{k}"] = df["close"] - prev
        df[f"pct_{k}"] = df["close"] / prev - 1
    return df[df["trade_date"] == day]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    small = "--small" in args or os.environ.get("STOCKDATA_BENCH_SMALL") == "1"
    n = 500 if small else 5000
    bars = synthetic(n)
    tickers = sorted(set(bars.column("ticker").unique().to_pylist()))
    run = DATA / "lake_run"
    shutil.rmtree(run, ignore_errors=True)
    ours = lake.LakeSettings(lake_uri=str(run / "ours"), home=run)
    hive = lake.LakeSettings(lake_uri=str(run / "hive"), home=run)
    figures: dict[str, float] = {}

    # -- writes ----------------------------------------------------------------------
    seconds, count = _backfill(ours, bars)
    figures["backfill"] = count / seconds
    print(f"backfill {count:,} rows in {seconds:.1f} s = {count / seconds:,.0f} rows/s", flush=True)
    from deltalake import write_deltalake

    from lake._write import _with_lineage, writer_properties

    t0 = time.perf_counter()
    checked = lake.validate(bars, today=TODAY)
    full = _with_lineage(
        checked.good, job_id="hive", granularity="year", now=dt.datetime.now(dt.UTC)
    )
    write_deltalake(
        hive.table_uri(lake.EOD_TABLE),
        full,
        partition_by=["ticker"],
        writer_properties=writer_properties(hive),
        configuration=lake.TABLE_CONFIGURATION,
    )
    hive_rate = count / (time.perf_counter() - t0)
    del full, checked
    print(f"hive write {hive_rate:,.0f} rows/s", flush=True)

    daily_ms = []
    for k, day in enumerate((dt.date(2025, 1, 2), dt.date(2025, 1, 3), dt.date(2025, 1, 6))):
        batch = lake.synthetic_bars(tickers, date_from=day, date_to=day, seed=SEED)
        t0 = time.perf_counter()
        lake.write_bars(ours, batch, job_id=f"daily-{k}", today=TODAY)
        daily_ms.append((time.perf_counter() - t0) * 1000)
    figures["daily"] = p50(daily_ms)
    print(f"daily append {p50(daily_ms):.1f} ms", flush=True)
    t0 = time.perf_counter()
    lake.optimize(ours)
    figures["optimize"] = time.perf_counter() - t0
    print(f"optimize after the daily appends {figures['optimize']:.1f} s", flush=True)

    # -- reads -----------------------------------------------------------------------
    rng = random.Random(1)
    reader = lake.LakeReader(ours, poll_seconds=3600)
    hive_reader = lake.LakeReader(hive, poll_seconds=3600)
    uri = ours.table_uri(lake.EOD_TABLE)
    con_plain = lake.connect(ours)

    def pick() -> tuple[str, dt.date]:
        return rng.choice(tickers), DATE_FROM + dt.timedelta(days=rng.randrange(7000))

    def point(q: Callable[[str, str], Any]) -> Callable[[], Any]:
        def go() -> Any:
            t, d = pick()
            return q(t, str(d))

        return go

    import polars as pl
    from deltalake import DeltaTable

    def pl_point(t: str, d: str) -> Any:
        return (
            pl.scan_delta(uri)
            .filter((pl.col("ticker") == t) & (pl.col("trade_date") == dt.date.fromisoformat(d)))
            .collect()
        )

    def pd_point(t: str, d: str) -> Any:
        return DeltaTable(uri).to_pandas(
            filters=[("ticker", "=", t), ("trade_date", "=", dt.date.fromisoformat(d))]
        )

    def year_range(q: Callable[[str, str, str], Any]) -> Callable[[], Any]:
        def go() -> Any:
            t = rng.choice(tickers)
            y = rng.randrange(DATE_FROM.year, DATE_TO.year + 1)
            return q(t, f"{y}-01-01", f"{y}-12-31")

        return go

    def history(q: Callable[[str], Any]) -> Callable[[], Any]:
        return lambda: q(rng.choice(tickers))

    duck_point = "SELECT * FROM {src} WHERE ticker = ? AND trade_date = CAST(? AS DATE)"
    duck_range = (
        "SELECT * FROM {src} WHERE ticker = ? AND trade_date BETWEEN CAST(? AS DATE) "
        "AND CAST(? AS DATE)"
    )
    duck_hist = "SELECT * FROM {src} WHERE ticker = ? ORDER BY trade_date"
    scan = f"delta_scan('{uri}')"

    def ours_q(sql: str, r: lake.LakeReader = reader) -> Callable[..., Any]:
        return lambda *p: r.connection().execute(sql.format(src="eod"), list(p)).to_arrow_table()

    def scan_q(sql: str) -> Callable[..., Any]:
        return lambda *p: con_plain.execute(sql.format(src=scan), list(p)).to_arrow_table()

    def pl_range(t: str, a: str, b: str) -> Any:
        return (
            pl.scan_delta(uri)
            .filter(
                (pl.col("ticker") == t)
                & pl.col("trade_date").is_between(
                    dt.date.fromisoformat(a), dt.date.fromisoformat(b)
                )
            )
            .collect()
        )

    def pd_range(t: str, a: str, b: str) -> Any:
        return DeltaTable(uri).to_pandas(
            filters=[
                ("ticker", "=", t),
                ("trade_date", ">=", dt.date.fromisoformat(a)),
                ("trade_date", "<=", dt.date.fromisoformat(b)),
            ]
        )

    def pl_hist(t: str) -> Any:
        return pl.scan_delta(uri).filter(pl.col("ticker") == t).sort("trade_date").collect()

    def pd_hist(t: str) -> Any:
        return DeltaTable(uri).to_pandas(filters=[("ticker", "=", t)]).sort_values("trade_date")

    cross_ours = _cross_sql("eod", CROSS_DATE)
    cross_scan = _cross_sql(scan, CROSS_DATE)
    cases: list[tuple[str, str, Callable[[], Any], int]] = [
        (
            "point lookup",
            "ours: year partitions, sorted, pinned (LakeReader)",
            point(ours_q(duck_point)),
            200,
        ),
        (
            "point lookup",
            "(a) partitioned by ticker, pinned",
            point(ours_q(duck_point, hive_reader)),
            100,
        ),
        ("point lookup", "(b) unpinned delta_scan", point(scan_q(duck_point)), 30),
        ("point lookup", "(c) Polars scan_delta", point(pl_point), 30),
        ("point lookup", "(c) pandas (deltalake to_pandas)", point(pd_point), 30),
        ("1-year range", "ours", year_range(ours_q(duck_range)), 100),
        (
            "1-year range",
            "(a) partitioned by ticker",
            year_range(ours_q(duck_range, hive_reader)),
            50,
        ),
        ("1-year range", "(b) unpinned delta_scan", year_range(scan_q(duck_range)), 30),
        ("1-year range", "(c) Polars", year_range(pl_range), 20),
        ("1-year range", "(c) pandas", year_range(pd_range), 20),
        ("full history", "ours", history(ours_q(duck_hist)), 50),
        ("full history", "(a) partitioned by ticker", history(ours_q(duck_hist, hive_reader)), 30),
        ("full history", "(b) unpinned delta_scan", history(scan_q(duck_hist)), 20),
        ("full history", "(c) Polars", history(pl_hist), 10),
        ("full history", "(c) pandas", history(pd_hist), 10),
        (
            "cross-section 1/5/21/63/252",
            "ours: eod, six dates' partitions, LakeReader.cross_section",
            lambda: reader.cross_section(CROSS_DATE, exchange_mic="XNYS"),
            30,
        ),
        (
            "cross-section 1/5/21/63/252",
            "window over ticker-sorted eod (pinned)",
            lambda: reader.connection().execute(cross_ours).to_arrow_table(),
            5,
        ),
        (
            "cross-section 1/5/21/63/252",
            "(a) partitioned by ticker",
            lambda: hive_reader.connection().execute(cross_ours).to_arrow_table(),
            5,
        ),
        (
            "cross-section 1/5/21/63/252",
            "(b) unpinned delta_scan",
            lambda: con_plain.execute(cross_scan).to_arrow_table(),
            5,
        ),
        ("cross-section 1/5/21/63/252", "(c) Polars", lambda: _polars_cross(uri, CROSS_DATE), 5),
        ("cross-section 1/5/21/63/252", "(c) pandas", lambda: _pandas_cross(uri, CROSS_DATE), 3),
    ]
    results: dict[tuple[str, str], tuple[float, float]] = {}
    for query, variant, fn, repeat in cases:
        ms = timed(fn, repeat=repeat, warmup=2)
        results[(query, variant)] = (p50(ms), pct(ms, 99))
        print(
            f"{query:<30} {variant:<55} p50 {p50(ms):8.1f} ms  p99 {pct(ms, 99):8.1f} ms",
            flush=True,
        )
    info = lake.table_info(ours)
    hive_info = lake.table_info(hive)
    reader.close()
    hive_reader.close()
    con_plain.close()

    targets = {
        "point lookup": 5.0,
        "cross-section 1/5/21/63/252": 50.0,
    }
    load = os.getloadavg()
    busy = load[1] > (os.cpu_count() or 1)
    lines = [
        f"Load average at the end of the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        f"(1/5/15 min) on {os.cpu_count()} cores"
        + (
            ": other work shared the machine, so absolute figures are inflated; the "
            "comparisons were measured in the same run."
            if busy
            else " (the benchmark's own work; the machine was otherwise idle)."
        ),
        "",
        f"`python -m bench lake{' --small' if small else ''}`: {len(tickers):,} synthetic tickers "
        f"x {DATE_FROM.year}-{DATE_TO.year} ({count:,} rows) on local disk. Ours: `eod_prices` "
        f"partitioned by year ({info.files} files, {info.bytes / 2**20:.0f} MiB), rows sorted by "
        f"(ticker, trade_date), {ours.lake_row_group_rows:,}-row groups, stats on ticker and "
        f"trade_date, read through `LakeReader` (pinned snapshot). (a) is the literal layout "
        f"partitioned by ticker ({hive_info.files:,} files), also pinned.",
        "",
        "| write | figure | target | verdict |",
        "|---|---|---|---|",
        f"| backfill (year batches through `write_bars`) | {figures['backfill']:,.0f} rows/s | "
        f"≥ 2,000,000 rows/s | {'pass' if figures['backfill'] >= 2e6 else 'miss'} |",
        f"| (a) ticker-partitioned write, same rows | {hive_rate:,.0f} rows/s | | |",
        f"| daily append of {len(tickers):,} rows (p50 of 3) | {figures['daily']:.0f} ms | ≤ 100 ms | "
        f"{'pass' if figures['daily'] <= 100 else 'miss'} |",
        "",
        "| query | variant | p50 ms | p99 ms | target | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for (query, variant), (m50, m99) in results.items():
        target = targets.get(query)
        polars = results.get((query, "(c) Polars"), (float("inf"), 0.0))[0]
        verdict = ""
        if variant.startswith("ours"):
            ok = (target is None or m50 <= target) and m50 <= polars
            verdict = "pass" if ok else "miss"
        tgt = (
            f"≤ {target:g} ms p50, ≤ Polars"
            if target and variant.startswith("ours")
            else ("≤ Polars" if variant.startswith("ours") else "")
        )
        lines.append(f"| {query} | {variant} | {m50:.1f} | {m99:.1f} | {tgt} | {verdict} |")
    body = "\n".join(lines)
    print(body)
    if not small:
        write_section("Lake", body)
    else:
        (DATA / "lake_small.md").write_text(body + "\n")


if __name__ == "__main__":
    main()
