"""The cost of adjustment: `adjust=all` against `none` (and `splits`) on the API's reads.

`python -m bench adjust --tickers N` (default 1,000) writes N synthetic tickers x 20 years
through `write_bars` (the generator's splits and quarterly dividends become
`corporate_actions` rows), publishes the serving form, and times, in this process and at the
defaults (the serving form answers, as in production), the store calls the routes make:
a point lookup, a one-year range, one date for every ticker, a 21-session delta and movers,
each with every basis in the same run, interleaved so machine noise hits all alike. Also
times the DuckDB fallback (no serving form) for the point lookup and movers, and the
one-off cost of building the factors (once per lake or actions version).

Then the same reads over HTTP, as users see them: `stockdata serve` at its defaults on
loopback, (1) one request at a time on one keep-alive connection, `none` and `all` of the
same random key back to back (both miss the response cache), and (2) wrk at 16
connections over random keys, `none` and `all` runs alternated. Needs `wrk` on PATH.
Target (issue 14): `all` within 10% of `none`.
"""

from __future__ import annotations

import datetime as dt
import http.client
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

import lake
from bench._data import DATA, DATE_FROM, DATE_TO, cache_key, synthetic
from bench._report import write_section
from bench.run_api import CONNECTIONS, Server, _lua, wrk
from query_api import ApiSettings
from query_api._data import Adjust, EodStore

TODAY = dt.date(2025, 6, 1)
BASES = ("none", "splits", "all")


def _tickers() -> int:
    if "--tickers" in sys.argv:
        return int(sys.argv[sys.argv.index("--tickers") + 1])
    return 1000


def _lake(n: int) -> lake.LakeSettings:
    root = DATA / f"adjust_lake_{cache_key(n)}"
    settings = lake.LakeSettings(lake_uri=str(root))
    if (root / lake.EOD_TABLE / "_delta_log").exists():
        return settings
    shutil.rmtree(root, ignore_errors=True)
    bars = synthetic(n)
    years = pc.year(bars.column("trade_date"))
    for year in range(DATE_FROM.year, DATE_TO.year + 1):
        lake.write_bars(
            settings, bars.filter(pc.equal(years, year)), job_id=f"a-{year}", today=TODAY
        )
    return settings


def _interleaved(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median microseconds of each function, called in turn `rounds` times."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e6)
    out = {}
    for name, ts in times.items():
        ts.sort()
        out[name] = ts[len(ts) // 2]
    return out


def _reads(
    store: EodStore,
    version: int | None,
    keys: list[tuple[str, dt.date]],
    dates: list[dt.date],
    n: int,
    rng: random.Random,
) -> dict[str, Callable[[str], Callable[[], Any]]]:
    """Each read the routes make, by basis."""
    how = {b: Adjust(b) for b in BASES}  # type: ignore[arg-type]

    def point(basis: str) -> Callable[[], Any]:
        def run() -> Any:
            t, d = rng.choice(keys)
            bars, _ = store.bars(
                t,
                exchange="XNYS",
                version=version,
                date_from=d,
                date_to=d,
                adjust=how[basis],
                limit=1,
                offset=0,
                order="asc",
            )
            return bars.rows()

        return run

    def year(basis: str) -> Callable[[], Any]:
        def run() -> Any:
            t, d = rng.choice(keys)
            bars, _ = store.bars(
                t,
                exchange="XNYS",
                version=version,
                date_from=d - dt.timedelta(days=365),
                date_to=d,
                adjust=how[basis],
                limit=1000,
                offset=0,
                order="asc",
            )
            return bars.rows()

        return run

    def on_date(basis: str) -> Callable[[], Any]:
        def run() -> Any:
            bars, _ = store.on_date(
                rng.choice(dates),
                exchange=None,
                version=version,
                adjust=how[basis],
                limit=n,
                offset=0,
            )
            return bars.rows()

        return run

    def delta(basis: str) -> Callable[[], Any]:
        def run() -> Any:
            t, d = rng.choice(keys)
            return store.delta(
                t, exchange="XNYS", version=version, days=21, day=d, adjust=how[basis]
            )

        return run

    def movers(basis: str) -> Callable[[], Any]:
        def run() -> Any:
            return store.movers(
                rng.choice(dates[30:]),
                days=21,
                exchange=None,
                version=version,
                limit=10,
                order="gainers",
                adjust=how[basis],
            )

        return run

    return {
        "point lookup": point,
        "one-year range": year,
        "one date, every ticker": on_date,
        "21-session delta": delta,
        "movers (21 sessions)": movers,
    }


def _store(settings: lake.LakeSettings, *, serving: bool) -> EodStore:
    store = EodStore(settings, ApiSettings(api_serving=serving, api_lake_poll_seconds=3600.0))
    store.version()
    if serving:
        deadline = time.monotonic() + 900
        while store.engine() != "serving":
            if time.monotonic() > deadline:
                raise RuntimeError("the serving form did not map")
            time.sleep(0.2)
            store.version()
    return store


#: HTTP reads: route template by name ({t} ticker, {d} date).
HTTP_READS = {
    "point lookup": "/v1/eod/{t}?date={d}&exchange=XNYS",
    "one-year range": "/v1/eod/{t}?from={y}&to={d}&exchange=XNYS&limit=1000",
    "21-session delta": "/v1/eod/{t}/delta?days=21&date={d}&exchange=XNYS",
    "movers (21 sessions)": "/v1/movers?date={d}&days=21&limit=10",
}


def _path(template: str, t: str, d: dt.date, basis: str) -> str:
    y = d - dt.timedelta(days=365)
    return template.format(t=t, d=d.isoformat(), y=y.isoformat()) + f"&adjust={basis}"


def _http(
    settings: lake.LakeSettings, keys: list[tuple[str, dt.date]], dates: list[dt.date]
) -> dict[str, dict[str, float]]:
    """Per read: sequential p50 (ms) of none and all, interleaved per key; wrk req/s and p50
    at 16 connections, none and all alternated twice."""
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-adjust-") as work:
        server = Server(settings, server="granian", workdir=Path(work))
        try:
            server.wait_ready(index=True)
            for read, template in HTTP_READS.items():
                # a fresh keep-alive connection per read: the server closes idle ones
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                pool = [(t, d) for t, d in keys if read != "movers (21 sessions)" or d >= dates[30]]
                if read == "movers (21 sessions)":
                    pool = [("", d) for d in dates[30:]]
                times: dict[str, list[float]] = {"none": [], "all": []}
                for t, d in pool[:1500]:
                    for basis in ("none", "all"):
                        t0 = time.perf_counter()
                        conn.request("GET", _path(template, t, d, basis))
                        resp = conn.getresponse()
                        resp.read()
                        times[basis].append((time.perf_counter() - t0) * 1000)
                        if resp.status != 200:
                            raise RuntimeError(f"{read} {basis}: HTTP {resp.status}")
                conn.close()
                got = {f"seq_{b}": sorted(v)[len(v) // 2] for b, v in times.items()}
                # disjoint key slices per run (and a fifth to warm up both bases): the
                # response cache never answers a run from an earlier run's keys
                slices = [pool[i::5] for i in range(5)]

                def script(
                    b: str, keys: list[tuple[str, dt.date]], tag: str, template: str = template
                ) -> Path:
                    paths = [_path(template, t, d, b) for t, d in keys]
                    return _lua(paths, Path(work) / f"{tag}-{b}.lua")

                for b in ("none", "all"):
                    wrk(
                        server.port,
                        script(b, slices[4], "warm"),
                        connections=CONNECTIONS,
                        duration="2s",
                    )
                rps: dict[str, list[float]] = {"none": [], "all": []}
                p50s: dict[str, list[float]] = {"none": [], "all": []}
                for r in range(2):
                    order = ("none", "all") if r == 0 else ("all", "none")
                    for i, b in enumerate(order):
                        run = script(b, slices[2 * r + i], f"r{r}")
                        res = wrk(server.port, run, connections=CONNECTIONS, duration="6s")
                        if res["non2xx"]:
                            raise RuntimeError(f"{read} {b}: {res['non2xx']:.0f} non-2xx")
                        rps[b].append(res["rps"])
                        p50s[b].append(res["p50"])
                for b in ("none", "all"):
                    got[f"rps_{b}"] = sum(rps[b]) / len(rps[b])
                    got[f"p50_{b}"] = sum(p50s[b]) / len(p50s[b])
                out[read] = got
                print(read, "http", {k: round(v, 3) for k, v in got.items()}, flush=True)
        finally:
            server.stop()
    return out


def main() -> None:
    n = _tickers()
    settings = _lake(n)
    lake.publish(settings)
    con = lake.connect(settings)
    rows = int(con.execute("SELECT count(*) FROM eod").fetchone()[0])  # type: ignore[index]
    kinds = dict(con.execute("SELECT kind, count(*) FROM corporate_actions GROUP BY 1").fetchall())
    keys = con.execute("SELECT ticker, trade_date FROM eod USING SAMPLE 3000 ROWS").fetchall()
    cold = con.execute(
        "SELECT ticker, trade_date FROM eod WHERE trade_date >= DATE '2006-01-01' "
        "USING SAMPLE 100000 ROWS"
    ).fetchall()
    con.close()
    dates = sorted({d for _, d in keys})
    rng = random.Random(3)

    results: dict[str, dict[str, float]] = {}
    build: dict[str, float] = {}
    for engine in ("serving", "duckdb"):
        store = _store(settings, serving=engine == "serving")
        t0 = time.perf_counter()
        store.adjustment()
        build[engine] = time.perf_counter() - t0
        makers = _reads(store, store.current_version(), keys, dates, n, rng)

        rounds_of = {
            "point lookup": 2000,
            "one-year range": 1000,
            "one date, every ticker": 100,
            "21-session delta": 2000,
            "movers (21 sessions)": 200,
        }
        for read, make in makers.items():
            rounds = rounds_of[read] if engine == "serving" else max(20, rounds_of[read] // 10)
            if engine == "duckdb" and read not in ("point lookup", "movers (21 sessions)"):
                continue
            got = _interleaved({b: make(b) for b in BASES}, rounds)
            results[f"{read} ({engine})"] = got
            print(read, engine, {k: round(v, 1) for k, v in got.items()}, flush=True)
        store.close()

    lines = [
        f"{n:,} synthetic tickers x 20 years = {rows:,} bars; "
        f"{kinds.get('split', 0):,} splits and {kinds.get('dividend', 0):,} dividends in "
        "`corporate_actions` (the generator's, recorded by `write_bars`). Store calls in "
        "process (what a route does before encoding), median microseconds, the three bases "
        "interleaved in one run. Target: `all` within 10% of `none`.",
        "",
        "| read (engine) | none µs | splits µs | all µs | all / none |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, got in results.items():
        ratio = got["all"] / got["none"]
        lines.append(
            f"| {name} | {got['none']:,.1f} | {got['splits']:,.1f} | {got['all']:,.1f} | "
            f"{ratio:.2f}{'' if ratio <= 1.10 else ' (missed)'} |"
        )
    lines += [
        "",
        "Factors built once per (eod_prices, corporate_actions) version, by the "
        f"`action_factors` view: {build['serving']:.2f} s (serving engine's store), "
        f"{build['duckdb']:.2f} s (DuckDB engine's). The `serving` rows are the production "
        "defaults; the `duckdb` rows are the fallback while a form is being published.",
    ]
    web = _http(settings, cold, sorted({d for _, d in cold}))
    lines += [
        "",
        "Over HTTP (`stockdata serve` at its defaults, granian, loopback): sequential = one "
        "keep-alive connection, `none` then `all` of the same random key, 1,500 keys per read "
        "(distinct keys: the response cache seldom answers), p50 ms; wrk = "
        f"{CONNECTIONS} connections, random keys from a disjoint fifth of 100,000 per run "
        "(so no run is answered from an earlier run's cache), `none`/`all` then `all`/`none`, "
        "6 s each, mean req/s.",
        "",
        "| read | sequential none ms | all ms | all / none | wrk none req/s | all req/s | "
        "none / all |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for read, got in web.items():
        seq = got["seq_all"] / got["seq_none"]
        thr = got["rps_none"] / got["rps_all"]
        lines.append(
            f"| {read} | {got['seq_none']:.3f} | {got['seq_all']:.3f} | {seq:.2f}"
            f"{'' if seq <= 1.10 else ' (missed)'} | {got['rps_none']:,.0f} | "
            f"{got['rps_all']:,.0f} | {thr:.2f}{'' if thr <= 1.10 else ' (missed)'} |"
        )
    missed = [
        f"{read} ({how})"
        for read, got in web.items()
        for how, ratio in (
            ("one at a time", got["seq_all"] / got["seq_none"]),
            ("16 connections", got["rps_none"] / got["rps_all"]),
        )
        if ratio > 1.10
    ]
    lines += [
        "",
        (
            "**Over HTTP the target is met** on every read."
            if not missed
            else f"**Over HTTP the target is met except for: {', '.join(missed)}.**"
        )
        + " In process (the first table, the store call alone) it is missed: 1.2-1.8x of a "
        "9-850 µs call, since the factor lookup (one `searchsorted` of the rows' (series, "
        "day) keys over every action), the gather and the rounding pass are a fixed few "
        "microseconds per row set. Over HTTP the rest of a request dwarfs that, except where "
        "the answer itself grows: adjusted prices carry up to 10 decimals, so an adjusted "
        "one-year range is a longer JSON body to encode than the as-traded one (16% more bytes "
        "over 200 random ranges of this lake, measured when this text was written).",
    ]
    write_section(f"Adjustment cost ({n:,} tickers)", "\n".join(lines))


if __name__ == "__main__":
    main()
