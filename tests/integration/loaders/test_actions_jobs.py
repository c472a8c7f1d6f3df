"""Corporate actions through the job machinery, as operators run it: `ingest actions`, bar
jobs that fetch actions beside their bars, a daily run that adjusts the stored history, and
a plan without actions. Real processes, the real catalog and lake, loopback stubs."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import Engine

import catalog
import lake
from tests.integration.loaders._pipeline import KEY, queue_name
from tests.integration.loaders.providers.test_provider_actions import (
    MSFT_DIVIDENDS,
    MSFT_SPLITS,
)
from tests.integration.loaders.test_ingest_cli import UUID, ingest
from tests.stubs.eodhd import EodhdStub
from tests.stubs.eodhd import bars_from_csv as eodhd_bars
from tests.stubs.logs import event_names
from tests.stubs.marketstack import MarketstackStub


def _actions(lake_dir: Path) -> list[tuple[str, dt.date, str, float | None, float | None, str]]:
    table = lake.read_actions(lake.LakeSettings(lake_uri=str(lake_dir)))
    return [
        (r["ticker"], r["ex_date"], r["kind"], r["ratio"], r["amount"], r["source"])
        for r in table.to_pylist()
    ]


def _bar_count(lake_dir: Path) -> int:
    table = lake.open_table(lake.LakeSettings(lake_uri=str(lake_dir)), lake.EOD_TABLE)
    return 0 if table is None else int(table.to_pyarrow_table().num_rows)


def _msft(source: str) -> list[tuple[str, dt.date, str, float | None, float | None, str]]:
    rows = [("MSFT", d, "split", r, None, source) for d, r in MSFT_SPLITS]
    rows += [("MSFT", d, "dividend", None, a, source) for d, a in MSFT_DIVIDENDS]
    return sorted(rows, key=lambda r: (r[1], r[2]))


def _marketstack(**options: object) -> MarketstackStub:
    return MarketstackStub(
        {},
        api_key=KEY,
        splits={"MSFT": [{"date": d.isoformat(), "split_factor": r} for d, r in MSFT_SPLITS]},
        dividends={"MSFT": [{"date": d.isoformat(), "dividend": a} for d, a in MSFT_DIVIDENDS]},
        **options,  # type: ignore[arg-type]
    )


def test_ingest_actions_backfills_actions_alone_and_a_rerun_changes_nothing(
    seeded: Engine, pg_url: str, tmp_path: Path
) -> None:
    lake_dir = tmp_path / "lake"
    args = ("actions", "--provider", "marketstack", "--tickers", "MSFT,GOOG")
    args += ("--from", "1986-01-01", "--to", "2024-12-31", "--inline")
    with _marketstack() as server:
        env = {
            "STOCKDATA_MARKETSTACK_BASE_URL": server.base_url,
            "STOCKDATA_QUEUE_NAME": queue_name(),
        }
        out = ingest(*args, pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env)
        assert out.returncode == 0, out.stderr
        assert out.stdout == (
            "1 job(s) enqueued, 1 in the actions backfill\n"
            "jobs: 1 (succeeded=1); rows written: 11\n"
        )
        assert [r.path for r in server.requests] == ["/v2/splits", "/v2/dividends"]
        assert _actions(lake_dir) == _msft("marketstack")
        version = lake.actions_version(lake.LakeSettings(lake_uri=str(lake_dir)))
        assert _bar_count(lake_dir) == 0

        again = ingest(*args, pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == (
        "0 job(s) enqueued, 1 in the actions backfill\njobs: 0 (none); rows written: 0\n"
    )
    assert lake.actions_version(lake.LakeSettings(lake_uri=str(lake_dir))) == version
    with catalog.session_scope(seeded) as session:
        jobs = catalog.failed_jobs(
            session, statuses=(catalog.JobStatus.SUCCEEDED,), kinds=["actions"]
        )
        assert [(j.status, j.rows_written) for j in jobs] == [(catalog.JobStatus.SUCCEEDED, 11)]


def test_a_plan_without_actions_fails_those_jobs_and_the_worker_goes_on(
    seeded: Engine, pg_url: str, tmp_path: Path
) -> None:
    lake_dir = tmp_path / "lake"
    with _marketstack(actions_in_plan=False) as server:
        env = {
            "STOCKDATA_MARKETSTACK_BASE_URL": server.base_url,
            "STOCKDATA_QUEUE_NAME": queue_name(),
        }
        out = ingest(
            "actions", "--provider", "marketstack", "--tickers", "MSFT,GOOG", "--batch-size", "1",
            "--from", "2017-01-01", "--inline",
            pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env,
        )  # fmt: skip
    assert out.returncode == 1
    assert out.stdout == (
        "2 job(s) enqueued, 2 in the actions backfill\njobs: 2 (failed=2); rows written: 0\n"
    )
    assert out.stderr.splitlines()[-1] == (
        "error: 2 job(s) failed (actions-not-in-plan=2): `stockdata ingest status` lists them, "
        "`stockdata ingest retry` runs them again"
    )
    assert KEY not in out.stderr
    status = ingest("status", pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env)
    failed = [line for line in status.stdout.splitlines() if re.match(rf"failed {UUID}", line)]
    assert len(failed) == 2
    assert all(
        re.fullmatch(
            rf"failed {UUID} actions XNAS 2017-01-01\.\.{dt.date.today()} actions-not-in-plan: "
            r"marketstack: the API plan does not include corporate actions \(.*\)",
            line,
        )
        for line in failed
    ), failed


def _eodhd(samples: Path, **options: object) -> EodhdStub:
    bars = eodhd_bars(samples / "MSFT.csv", "MSFT.US") | eodhd_bars(samples / "GOOG.csv", "GOOG.US")
    return EodhdStub(
        bars,
        api_key=KEY,
        splits={"MSFT.US": [{"date": "2017-11-10", "split": "2.000000/1.000000"}]},
        dividends={
            "MSFT.US": [
                {"date": d.isoformat(), "value": a, "unadjustedValue": a, "currency": "USD"}
                for d, a in MSFT_DIVIDENDS
            ]
        },
        **options,  # type: ignore[arg-type]
    )


def _eodhd_env(server: EodhdStub) -> dict[str, str]:
    return {
        "STOCKDATA_EODHD_BASE_URL": server.base_url,
        "STOCKDATA_EODHD_API_KEY": KEY,
        "STOCKDATA_QUEUE_NAME": queue_name(),
    }


def _sql(query: str, *, pg_url: str, home: Path, lake_dir: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKDATA_")}
    env |= {"STOCKDATA_HOME": str(home), "STOCKDATA_DATABASE_URL": pg_url}
    env["STOCKDATA_LAKE_URI"] = str(lake_dir)
    out = subprocess.run(
        [sys.executable, "-m", "stockdata", "sql", "--format", "csv", query],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_daily_run_that_sees_a_split_adjusts_the_stored_history(
    seeded: Engine, pg_url: str, samples: Path, tmp_path: Path
) -> None:
    """History loaded from a file; the daily EODHD run of 2017-11-10 fetches that day's bars
    and its actions (`/splits`, `/div`): the bars before the split come back halved with
    `adjust=splits`, without being downloaded again."""
    lake_dir = tmp_path / "lake"
    loaded = ingest(
        "load", str(samples / "MSFT.csv"), "--ticker", "MSFT", "--exchange", "XNAS",
        pg_url=pg_url, home=tmp_path, lake_dir=lake_dir,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    with _eodhd(samples) as server:
        env = _eodhd_env(server)
        daily = ingest(
            "daily", "--provider", "eodhd", "--now", "2017-11-11T12:00:00+00:00",
            pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env,
        )  # fmt: skip
        assert daily.returncode == 0, daily.stderr
        # GOOG's bar is new; MSFT's equals the one the file loaded
        assert daily.stdout == (
            "1 job(s) enqueued, 1 in total\njobs: 1 (succeeded=1); rows written: 1\n"
        )
        assert sorted(r.path for r in server.requests) == [
            "/api/div/GOOG.US",
            "/api/div/MSFT.US",
            "/api/eod/GOOG.US",
            "/api/eod/MSFT.US",
            "/api/splits/GOOG.US",
            "/api/splits/MSFT.US",
        ]
        assert {r.params["from"] for r in server.requests} == {"2017-11-10"}
    assert _actions(lake_dir) == [("MSFT", dt.date(2017, 11, 10), "split", 2.0, None, "eodhd")]
    closes = _sql(
        "SELECT e.trade_date, e.close, a.close AS adjusted FROM eod e JOIN eod_split_adjusted a "
        "USING (ticker, exchange_mic, trade_date) WHERE ticker = 'MSFT' "
        "AND trade_date BETWEEN DATE '2017-11-08' AND DATE '2017-11-10' ORDER BY 1",
        pg_url=pg_url, home=tmp_path, lake_dir=lake_dir,
    )  # fmt: skip
    assert closes == (
        "trade_date,close,adjusted\n"
        "2017-11-08,84.56,42.28\n"
        "2017-11-09,84.09,42.045\n"
        "2017-11-10,83.87,83.87\n"
    )


def test_eodhd_backfill_writes_actions_with_bars_and_degrades_without_them(
    seeded: Engine, pg_url: str, samples: Path, tmp_path: Path
) -> None:
    lake_dir = tmp_path / "lake"
    args = ("backfill", "--provider", "eodhd", "--tickers", "MSFT")
    args += ("--from", "2017-01-01", "--to", "2017-12-31", "--inline")
    with _eodhd(samples) as server:
        env = _eodhd_env(server)
        out = ingest(*args, pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[-1] == "jobs: 1 (succeeded=1); rows written: 218"
        again = ingest(*args, pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env)
        assert again.stdout.startswith("0 job(s) enqueued, 1 in the backfill\n")
    expected = [("MSFT", dt.date(2017, 11, 10), "split", 2.0, None, "eodhd")]
    expected += [("MSFT", d, "dividend", None, a, "eodhd") for d, a in MSFT_DIVIDENDS]
    assert _actions(lake_dir) == sorted(expected, key=lambda r: (r[1], r[2]))

    other = tmp_path / "lake-no-plan"
    goog = ("backfill", "--provider", "eodhd", "--tickers", "GOOG")
    goog += ("--from", "2012-01-01", "--to", "2012-12-31", "--inline")
    with _eodhd(samples, actions_in_plan=False) as server:
        env = _eodhd_env(server)
        out = ingest(*goog, pg_url=pg_url, home=tmp_path, lake_dir=other, **env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "jobs: 1 (succeeded=1); rows written: 250"
    assert "actions_unavailable" in event_names(out.stderr)
    warning = next(
        json.loads(line) for line in out.stderr.splitlines() if "actions_unavailable" in line
    )
    assert warning["error"].startswith("eodhd: the API plan does not include corporate actions")
    assert _actions(other) == []
    assert _bar_count(other) == 250


def test_an_actions_file_loads_once_and_a_corrected_file_writes_the_change(
    seeded: Engine, pg_url: str, tmp_path: Path
) -> None:
    lake_dir = tmp_path / "lake"
    path = tmp_path / "msft-actions.csv"
    header = "ticker,ex_date,kind,ratio,amount,currency\n"
    rows = "".join(f"MSFT,{d},split,{r},,\n" for d, r in MSFT_SPLITS)
    path.write_text(header + rows + "MSFT,2017-11-15,dividend,,0.24,USD\n")
    first = ingest("actions", "--file", str(path), "--exchange", "XNAS",
                   pg_url=pg_url, home=tmp_path, lake_dir=lake_dir)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert re.fullmatch(
        rf"job {UUID}: 10 action\(s\) written, 0 rejected, actions version \d+\n", first.stdout
    )
    same = ingest("actions", "--file", str(path), "--exchange", "XNAS",
                  pg_url=pg_url, home=tmp_path, lake_dir=lake_dir)  # fmt: skip
    assert same.stdout.split(":")[0] == first.stdout.split(":")[0]
    assert re.fullmatch(rf"job {UUID}: 0 action\(s\) written, 0 rejected, .*\n", same.stdout)

    path.write_text(
        header + rows + "MSFT,2017-11-15,dividend,,0.42,USD\nMSFT,2018-01-01,bonus,,,\n"
        "A B/C,2018-01-02,split,2,,\n"
    )
    fixed = ingest("actions", "--file", str(path), "--exchange", "XNAS",
                   pg_url=pg_url, home=tmp_path, lake_dir=lake_dir)  # fmt: skip
    assert fixed.returncode == 0, fixed.stderr
    assert re.fullmatch(rf"job {UUID}: 1 action\(s\) written, 2 rejected, .*\n", fixed.stdout)
    rejects = lake.open_table(lake.LakeSettings(lake_uri=str(lake_dir)), lake.REJECTS_TABLE)
    assert rejects is not None
    reasons = rejects.to_pyarrow_table().column("reason")
    assert sorted(reasons.to_pylist()) == [
        "action: ticker 'A B/C' is not a ticker symbol (1-32 letters, digits, '.', '-')",
        "action: unknown kind 'bonus': one of split, stock_dividend, dividend, symbol_change",
    ]
    assert _actions(lake_dir)[-1] == ("MSFT", dt.date(2017, 11, 15), "dividend", None, 0.42, "file")
    assert len(_actions(lake_dir)) == 10

    bad = tmp_path / "bad.csv"
    bad.write_text("ticker,when\nMSFT,2020-01-01\n")
    refused = ingest("actions", "--file", str(bad), "--exchange", "XNAS",
                     pg_url=pg_url, home=tmp_path, lake_dir=lake_dir)  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[-1] == (
        "error: Invalid value for '--file': bad.csv: missing action column(s) ex_date, kind; "
        "expected ticker, ex_date, kind[, ratio, amount, currency, new_symbol, declared_date] "
        "in ['ticker', 'when']"
    )
    neither = ingest("actions", pg_url=pg_url, home=tmp_path, lake_dir=lake_dir)
    assert neither.returncode == 2
    assert neither.stderr.splitlines()[-1] == (
        "error: pass --provider NAME (with --from) or --file FILE"
    )
