"""The serving form answers exactly what DuckDB over Delta answers, byte for byte.

Two apps over the same lake, one reading the memory-mapped serving form and one DuckDB,
get every kind of read (bars by date, range, latest, one date for all tickers, deltas
point and series, movers, the legacy routes) in every format, and must send the same bytes.
On the real MSFT/GOOG samples and on a synthetic lake with gaps, corporate actions and two
exchanges. Then the form's own life: a version published once, a build killed midway.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

import lake
from query_api import create_app
from query_api._hardening import SecuritySettings
from query_api._serving import ServingForm
from tests.integration.query_api.conftest import api_settings, bars_table, make_app

SAMPLE_REQUESTS = [
    "/v1/eod/MSFT?date=2008-10-10",
    "/v1/eod/MSFT?date=2008-10-10&adjusted=true",
    "/v1/eod/MSFT?date=2008-12-25",
    "/v1/eod/GOOG?from=2008-09-01&to=2008-10-10",
    "/v1/eod/GOOG?from=2008-09-01&to=2008-10-10&sort=desc&limit=7&offset=3",
    "/v1/eod/MSFT?from=2008-09-01&to=2008-10-10&format=csv",
    "/v1/eod/MSFT?from=2008-09-01&to=2008-10-10&format=arrow",
    "/v1/eod/MSFT/latest",
    "/v1/eod/GOOG/latest?format=csv",
    "/v1/eod?date=2008-10-10",
    "/v1/eod?date=2008-10-10&format=csv",
    "/v1/eod?date=2008-10-10&format=arrow",
    "/v1/eod?date=2008-10-10&exchange=XNAS&limit=1&offset=1",
    "/v1/eod/MSFT/delta?days=21&date=2008-10-10",
    "/v1/eod/MSFT/delta?days=5&date=1986-03-14",
    "/v1/eod/MSFT/delta?days=21",
    "/v1/eod/GOOG/delta?days=5&date=2004-08-20",
    "/v1/eod/MSFT/delta?days=21&series=true&from=2008-09-01&to=2008-10-10",
    "/v1/eod/GOOG/delta?days=5&series=true&from=2004-08-01&to=2004-09-10&limit=9&offset=2",
    "/v1/eod/MSFT/delta?days=21&series=true&from=2008-09-01&to=2008-10-10&format=csv",
    "/v1/eod/MSFT/delta?days=21&series=true&from=2008-09-01&to=2008-10-10&format=arrow",
    "/v1/movers?date=2008-10-10&days=21",
    "/v1/movers?date=2008-10-10&days=21&order=losers",
    "/v1/movers?date=2008-10-13&days=1&format=csv",
    "/eod/ticker/MSFT",
    "/eod/ticker/GOOG/delta/21",
    "/v1/eod/NOPE?date=2008-10-10",
]


def _engine(client: TestClient[Litestar]) -> str:
    found = re.search(
        r'^stockdata_api_read_engine\{engine="(\w+)"\} 1\.0$', client.get("/metrics").text, re.M
    )
    assert found is not None
    return found.group(1)


def _same_bytes(settings: lake.LakeSettings, seeded: Engine, requests: list[str]) -> None:
    with (
        TestClient(make_app(settings, engine=seeded, api_serving=True)) as serving,
        TestClient(make_app(settings, engine=seeded, api_serving=False)) as duck,
    ):
        assert (_engine(serving), _engine(duck)) == ("serving", "duckdb")
        for path in requests:
            a, b = serving.get(path), duck.get(path)
            assert (path, a.status_code, a.headers["content-type"]) == (
                path,
                b.status_code,
                b.headers["content-type"],
            )
            if a.headers["content-type"].startswith("application/problem+json"):
                # the same problem; only the request id differs
                pa_, pb = a.json(), b.json()
                pa_.pop("request_id"), pb.pop("request_id")
                assert (path, pa_) == (path, pb)
            else:
                assert (path, a.content) == (path, b.content)
        # every read above came from the form in the one and DuckDB in the other
        metrics = serving.get("/metrics").text
        duck_reads = re.findall(
            r'^stockdata_api_query_seconds_count\{engine="duckdb",kind="(\w+)"\} (\S+)$',
            metrics,
            re.M,
        )
        # (downloads stream through DuckDB by design: batch by batch, any size)
        assert [k for k, count in duck_reads if float(count) != 0 and k != "stream"] == []
        assert [
            kind
            for kind, _ in re.findall(
                r'^stockdata_api_query_seconds_count\{engine="serving",kind="(\w+)"\} (\S+)$',
                metrics,
                re.M,
            )
        ] != []


def test_both_read_paths_send_the_same_bytes_on_the_samples(
    sample_lake: lake.LakeSettings, seeded: Engine
) -> None:
    _same_bytes(sample_lake, seeded, SAMPLE_REQUESTS)


@pytest.fixture(scope="module")
def gap_lake(tmp_path_factory: pytest.TempPathFactory) -> lake.LakeSettings:
    """Synthetic bars (adjusted fields, splits, dividends) on XNYS and XNAS, with gaps:
    GAP misses every 7th session, HOLE a whole fortnight, LATE starts in March."""
    settings = lake.LakeSettings(lake_uri=str(tmp_path_factory.mktemp("gaps") / "lake"))
    span = {"date_from": dt.date(2023, 1, 3), "date_to": dt.date(2024, 6, 28), "seed": 3}
    full = lake.synthetic_bars(["AAA", "BBB", "GAP", "HOLE"], **span)
    keep = np.ones(full.num_rows, dtype=bool)
    tickers = np.asarray(full.column("ticker").to_pylist())
    days = np.asarray(full.column("trade_date").to_pylist())
    gap = np.flatnonzero(tickers == "GAP")
    keep[gap[::7]] = False
    hole = (tickers == "HOLE") & (days >= dt.date(2024, 2, 1)) & (days <= dt.date(2024, 2, 14))
    keep[hole] = False
    bars = full.filter(pa.array(keep))
    late = lake.synthetic_bars(
        ["LATE", "NAS"], exchange_mic="XNAS", date_from=dt.date(2024, 3, 1), date_to=span["date_to"]
    )
    lake.write_bars(settings, bars, job_id="gaps-1", today=dt.date(2024, 7, 1))
    lake.write_bars(settings, late, job_id="gaps-2", today=dt.date(2024, 7, 1))
    return settings


GAP_REQUESTS = [
    *(
        f"/v1/eod/{t}?date={d}{adj}"
        for t in ("AAA", "GAP", "HOLE", "LATE")
        for d in ("2024-02-06", "2024-03-01", "2023-01-03")
        for adj in ("", "&adjusted=true")
    ),
    "/v1/eod/GAP?from=2023-06-01&to=2023-09-30&adjusted=true",
    "/v1/eod/GAP?from=2023-06-01&to=2023-09-30&adjusted=true&format=csv",
    "/v1/eod/BBB?from=2023-01-01&to=2024-06-30&adjusted=true&limit=5000&format=arrow",
    "/v1/eod/HOLE?from=2024-01-20&to=2024-02-20&sort=desc",
    "/v1/eod/LATE/latest?adjusted=true",
    "/v1/eod?date=2024-02-06",
    "/v1/eod?date=2024-03-04&adjusted=true",
    "/v1/eod?date=2024-03-04&exchange=XNAS&format=csv",
    "/v1/eod?date=2024-03-04&adjusted=true&format=arrow",
    *(
        f"/v1/eod/{t}/delta?days={n}&date={d}{adj}"
        for t in ("AAA", "GAP", "HOLE", "LATE")
        for n in (1, 5, 21)
        for d in ("2024-02-20", "2024-03-05", "2024-02-10")
        for adj in ("", "&adjusted=true")
    ),
    "/v1/eod/GAP/delta?days=5&series=true&from=2023-03-01&to=2023-05-31&limit=100",
    "/v1/eod/HOLE/delta?days=5&series=true&from=2024-02-01&to=2024-03-15&adjusted=true",
    "/v1/eod/LATE/delta?days=3&series=true&from=2024-03-01&to=2024-03-20",
    "/v1/eod/GAP/delta?days=5&series=true&from=2023-03-01&to=2023-05-31&format=csv",
    *(
        f"/v1/movers?date={d}&days={n}&order={o}{x}"
        for d in ("2024-02-20", "2024-03-08", "2024-02-10")
        for n in (1, 5, 21)
        for o in ("gainers", "losers")
        for x in ("", "&exchange=XNYS", "&adjusted=true")
    ),
    "/v1/movers?date=2024-03-08&days=5&format=csv",
    "/eod/ticker/GAP",
    "/eod/ticker/HOLE/delta/21",
]


def test_both_read_paths_send_the_same_bytes_on_a_lake_with_gaps(
    gap_lake: lake.LakeSettings, seeded: Engine
) -> None:
    _same_bytes(gap_lake, seeded, GAP_REQUESTS)


def test_a_gap_on_the_start_session_is_reported_on_every_route(
    gap_lake: lake.LakeSettings, seeded: Engine
) -> None:
    # HOLE has no bar from 2024-02-01 to 02-14; 5 XNYS sessions before 02-20 is 02-12.
    with TestClient(make_app(gap_lake, engine=seeded)) as c:
        point = c.get("/v1/eod/HOLE/delta", params={"days": 5, "date": "2024-02-20"}).json()
        assert point["data"]["start_date"] is None
        assert point["data"]["reason"] == "no bar on the start session 2024-02-12"
        series = c.get(
            "/v1/eod/HOLE/delta",
            params={"days": 5, "series": "true", "from": "2024-02-20", "to": "2024-02-20"},
        ).json()
        assert [(r["end_date"], r["reason"]) for r in series["data"]] == [
            ("2024-02-20", "no bar on the start session 2024-02-12")
        ]
        movers = c.get("/v1/movers", params={"date": "2024-02-20", "days": 5}).json()
        losers = c.get(
            "/v1/movers", params={"date": "2024-02-20", "days": 5, "order": "losers"}
        ).json()
        listed = [m["ticker"] for m in movers["data"] + losers["data"]]
        assert "HOLE" not in listed
        assert all(m["pct_change"] > 0 for m in movers["data"])
        assert all(m["pct_change"] < 0 for m in losers["data"])
        assert all(m["start_date"] == "2024-02-12" for m in movers["data"] + losers["data"])


def test_the_form_holds_every_bar_exactly(gap_lake: lake.LakeSettings) -> None:
    published = lake.publish(gap_lake)
    assert published is not None
    form = ServingForm(published.path)
    con = lake.connect(gap_lake)
    expected = con.execute(
        "SELECT ticker, exchange_mic, trade_date, open, high, low, close, volume, adj_open, "
        "adj_high, adj_low, adj_close, adj_volume, split_factor, dividend, currency, source "
        "FROM eod ORDER BY ticker, exchange_mic, trade_date"
    ).to_arrow_table()
    con.close()
    assert form.rows == expected.num_rows == published.rows
    pos = np.arange(form.rows, dtype=np.int64)
    for name in ("adj_open", "adj_high", "adj_low", "adj_close", "adj_volume", "dividend"):
        want = expected.column(name).to_numpy()
        got = form.optional(name, pos)
        assert np.array_equal(got, want, equal_nan=True), name
    for name in ("open", "high", "low", "close"):
        assert np.array_equal(form.price(name, pos), expected.column(name))
    assert form.volumes(pos).tolist() == expected.column("volume").to_pylist()
    assert published.bytes_per_row <= 64
    # the point lookup's scalar path reads the same bars as the vectorised one
    sample = np.arange(0, form.rows, 37, dtype=np.int64)
    factors = np.linspace(0.25, 1.0, sample.size)
    ratios = 1 / factors
    for scale in (None, (factors, ratios)):
        many = form.rows_at(sample, scale=scale)
        one = [
            form.row(int(p), scale=None if scale is None else (scale[0][i], scale[1][i]))
            for i, p in enumerate(sample.tolist())
        ]
        assert one == many
        if scale is not None:
            assert [r[6] for r in many] == lake.apply_prices(
                form.price("close", sample), factors
            ).tolist()


def _publish_cmd(settings: lake.LakeSettings, home: Path) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "STOCKDATA_HOME": str(home), "STOCKDATA_LAKE_URI": settings.root}
    return [sys.executable, "-m", "stockdata", "lake", "publish"], env


@pytest.fixture
def fresh_lake(tmp_path: Path) -> lake.LakeSettings:
    settings = lake.LakeSettings(lake_uri=str(tmp_path / "lake"))
    bars = lake.synthetic_bars(
        [f"T{i:02d}" for i in range(40)],
        date_from=dt.date(2015, 1, 2),
        date_to=dt.date(2024, 6, 28),
    )
    lake.write_bars(settings, bars, job_id="kill", today=dt.date(2024, 7, 1))
    return settings


def test_a_build_killed_midway_leaves_no_form_and_is_rebuilt(
    fresh_lake: lake.LakeSettings, tmp_path: Path
) -> None:
    root = fresh_lake.serving_root
    cmd, env = _publish_cmd(fresh_lake, tmp_path)
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if root.exists() and any(root.glob(".tmp-*")):
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.001)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # Whenever the kill landed: a version directory is a whole form or does not exist.
    for entry in root.glob("v*"):
        assert lake.read_manifest(entry) is not None
    # What a build killed after writing part of its files leaves, made certain here.
    partial = root / ".tmp-v1-999999"
    partial.mkdir(parents=True, exist_ok=True)
    (partial / "days.npy").write_bytes(b"\x93NUMPY half a file")
    assert lake.published_versions(root) in ([], [1])
    result = lake.publish(fresh_lake)
    assert result is not None
    assert (result.version, result.rows, result.series) == (1, 95520, 40)
    assert sorted(p.name for p in root.iterdir() if p.name != ".lock") == ["v1"]
    assert lake.published_versions(root) == [1]
    again = lake.publish(fresh_lake)
    assert again is not None and not again.built


def test_publish_cli_and_a_second_version(fresh_lake: lake.LakeSettings, tmp_path: Path) -> None:
    cmd, env = _publish_cmd(fresh_lake, tmp_path)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.startswith("built serving form of version 1 at ")
    assert "95520 rows, 40 series" in out.stdout
    manifest = json.loads((fresh_lake.serving_root / "v1" / "manifest.json").read_text())
    assert (manifest["version"], manifest["rows"]) == (1, 95520)
    more = lake.synthetic_bars(["NEW"], date_from=dt.date(2024, 7, 1), date_to=dt.date(2024, 7, 3))
    lake.write_bars(fresh_lake, more, job_id="next", today=dt.date(2024, 7, 4))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.startswith("built serving form of version 2 at ")
    assert lake.published_versions(fresh_lake.serving_root) == [1, 2]
    bad = subprocess.run(
        [*cmd, "--version", "99"], env=env, capture_output=True, text=True, timeout=300
    )
    assert (bad.returncode, bad.stderr) == (
        1,
        "error: eod_prices has no version 99: the latest is 2\n",
    )


def test_without_a_form_duckdb_answers_and_a_new_version_is_never_stale(
    fresh_lake: lake.LakeSettings, tmp_path: Path, seeded: Engine
) -> None:
    # A serving directory that cannot be created: no form can be built, DuckDB answers.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    broken = fresh_lake.model_copy(update={"lake_serving_dir": str(blocker / "serving")})
    app = create_app(
        api_settings(api_serving_grace_seconds=0.0),
        lake_settings=broken,
        engine=seeded,
        sql=False,
        security_settings=SecuritySettings(rate_limit_per_minute=0),
        access_logs=False,
    )
    with TestClient(app) as c:
        first = c.get("/v1/eod/T00", params={"date": "2024-06-28"})
        assert (first.status_code, first.json()["lake_version"]) == (200, 1)
        assert first.json()["data"][0]["date"] == "2024-06-28"
        assert c.get("/health/ready").json()["engine"] == "duckdb"
        # With no grace, a new version is answered at once (DuckDB until a form exists).
        more = lake.synthetic_bars(
            ["NEW"], date_from=dt.date(2024, 7, 1), date_to=dt.date(2024, 7, 3)
        )
        lake.write_bars(fresh_lake, more, job_id="next", today=dt.date(2024, 7, 4))
        fresh = c.get("/v1/eod/NEW", params={"date": "2024-07-02"})
        assert (fresh.status_code, fresh.json()["lake_version"]) == (200, 2)
        assert [b["ticker"] for b in fresh.json()["data"]] == ["NEW"]


@pytest.fixture(scope="module")
def tie_lake(tmp_path_factory: pytest.TempPathFactory) -> lake.LakeSettings:
    """Movers that tie or nearly tie once adjusted, where ranking by an estimate and
    adjusting only the leaders (the serving form's way) could differ from adjusting every
    row (DuckDB's): the same +10% at 10 and at 20 with the same dividend factor inside the
    window, sub-cent prices the 10-decimal rounding moves, flat closes a dividend turns into
    a gain, a split and a reverse split that adjust to flat, on two exchanges."""
    settings = lake.LakeSettings(lake_uri=str(tmp_path_factory.mktemp("ties") / "lake"))
    days = [
        dt.date(2024, 3, 1) + dt.timedelta(days=i)
        for i in range(40)
        if (dt.date(2024, 3, 1) + dt.timedelta(days=i)).weekday() < 5
        and dt.date(2024, 3, 1) + dt.timedelta(days=i) != dt.date(2024, 3, 29)  # Good Friday
    ]
    jump = days[10]  # closes move on this session; the dividends go ex on it too

    def rows(before: float, after: float) -> list[dict[str, object]]:
        return [
            {"date": d, **dict.fromkeys(("open", "high", "low", "close"), c), "volume": 100}
            for d in days
            for c in [before if d < jump else after]
        ]

    spec: dict[str, tuple[str, float, float, str | None, float | None]] = {}
    for i in range(5):
        spec[f"TEN{i}"] = ("XNAS", 10.0, 11.0, "dividend", 0.1)  # factor 0.99
        spec[f"TWO{i}"] = ("XNAS", 20.0, 22.0, "dividend", 0.2)  # factor 0.99
        spec[f"PEN{i}"] = ("XNAS", 0.0003 + i * 1e-7, 0.0004, "dividend", 0.000003)
        spec[f"FLT{i}"] = ("XNYS", 50.0, 50.0, "dividend", 0.5 + i * 0.01)
        spec[f"NIL{i}"] = ("XNYS", 30.0, 30.0, None, None)
    # the estimate ranks PENA first (+100.0000933%), but its adjusted start rounds to
    # 0.0002999999, and exactly it gains 100.0000667%, behind MIDB's 100.00008%
    spec["PENA"] = ("XNAS", 0.0003, 0.0006, "dividend", 1.4e-10)
    spec["MIDB"] = ("XNAS", 3.0, 6.0000024, None, None)
    spec["SPL"] = ("XNYS", 100.0, 50.0, "split", 2.0)
    spec["REV"] = ("XNAS", 1.0, 10.0, "split", 0.1)
    bars = pa.concat_tables(
        [bars_table(t, rows(b, a), mic=mic) for t, (mic, b, a, _, _) in spec.items()]
    )
    lake.write_bars(settings, bars, job_id="ties-1", today=dt.date(2024, 5, 1))
    acts = [(t, mic, kind, x) for t, (mic, _, _, kind, x) in spec.items() if kind]
    actions = pa.table(
        {
            "ticker": [t for t, *_ in acts],
            "exchange_mic": [mic for _, mic, *_ in acts],
            "ex_date": pa.array([jump] * len(acts), pa.date32()),
            "kind": [kind for *_, kind, _ in acts],
            "ratio": [x if kind == "split" else None for *_, kind, x in acts],
            "amount": [x if kind == "dividend" else None for *_, kind, x in acts],
            "currency": [None if kind == "split" else "USD" for *_, kind, _ in acts],
            "source": ["test"] * len(acts),
        }
    )
    assert lake.write_actions(settings, actions, job_id="ties-actions") == (len(acts), 0)
    return settings


TIE_REQUESTS = [
    f"/v1/movers?date={d}&days={n}&order={o}&limit={k}&adjust={b}{x}"
    for d in ("2024-03-15", "2024-03-14", "2024-04-02")
    for n in (1, 5)
    for o in ("gainers", "losers")
    for k in (1, 3, 6, 100)
    for b in ("splits", "all")
    for x in ("", "&exchange=XNAS", "&adjust_as_of=2024-03-14", "&adjust_as_of=2024-03-15")
]


def test_adjusted_movers_rank_ties_as_adjusting_every_row_does(
    tie_lake: lake.LakeSettings, seeded: Engine
) -> None:
    _same_bytes(tie_lake, seeded, TIE_REQUESTS)
    with TestClient(make_app(tie_lake, engine=seeded)) as client:
        got = client.get("/v1/movers?date=2024-03-15&days=1&limit=100&adjust=all").json()["data"]
        by = {r["ticker"]: r for r in got}
        # a flat close after a 0.50 dividend on 50: the start adjusts to 50 * 0.99 = 49.5
        assert (by["FLT0"]["start_close"], by["FLT0"]["pct_change"]) == (49.5, 1.010101)
        # +10% as traded, +11.111111% once the 0.99 dividend factor adjusts the start
        assert {by[f"{p}{i}"]["pct_change"] for p in ("TEN", "TWO") for i in range(5)} == {
            11.111111
        }
        # splits adjust to flat, and flat is neither a gain nor a loss; NIL never moved
        assert not {"SPL", "REV", "NIL0"} & set(by)
        lead = client.get("/v1/movers?date=2024-03-15&days=1&limit=1&adjust=all").json()
        assert [(r["ticker"], r["pct_change"]) for r in lead["data"]] == [("MIDB", 100.00008)]
        assert (by["PENA"]["start_close"], by["PENA"]["pct_change"]) == (0.0002999999, 100.000067)
        # ties rank by ticker
        tied = [r["ticker"] for r in got if r["ticker"][:3] in ("TEN", "TWO")]
        assert tied == sorted(tied)
