"""`stockdata ingest` as operators run it: real processes, the real catalog, lake and stub."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import Engine

import catalog
import lake
import loaders
from tests.integration.loaders._pipeline import KEY, MSFT_ROWS, queue_name, stub
from tests.stubs.logs import event_names

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def ingest(
    *args: str, pg_url: str, home: Path, lake_dir: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("STOCKDATA_")}
    full.update(
        STOCKDATA_HOME=str(home),
        STOCKDATA_DATABASE_URL=pg_url,
        STOCKDATA_LAKE_URI=str(lake_dir),
        STOCKDATA_MARKETSTACK_API_KEY=KEY,
        STOCKDATA_QUEUE_POLL_SECONDS="0.05",
        STOCKDATA_QUEUE_BACKOFF_BASE_SECONDS="0",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "stockdata", "ingest", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=180,
    )


def test_load_a_file_then_list_gaps(
    seeded: Engine, pg_url: str, samples: Path, tmp_path: Path
) -> None:
    lake_dir = tmp_path / "lake"
    first = ingest(
        "load",
        str(samples / "MSFT.csv"),
        "--ticker",
        "MSFT",
        "--exchange",
        "XNAS",
        pg_url=pg_url,
        home=tmp_path,
        lake_dir=lake_dir,
    )
    assert first.returncode == 0, first.stderr
    assert re.fullmatch(
        rf"job {UUID}: {MSFT_ROWS} rows written, 0 rejected, lake version \d+\n", first.stdout
    )
    again = ingest(
        "load",
        str(samples / "MSFT.csv"),
        "--ticker",
        "msft",
        "--exchange",
        "xnas",
        pg_url=pg_url,
        home=tmp_path,
        lake_dir=lake_dir,
    )
    assert again.returncode == 0, again.stderr
    assert re.fullmatch(
        rf"job {UUID}: already loaded \({MSFT_ROWS} rows\), lake version \d+\n", again.stdout
    )
    assert again.stdout.split(":")[0] == first.stdout.split(":")[0]
    with catalog.session_scope(seeded) as session:
        assert catalog.job_counts(session)["succeeded"] == 1

    gaps = ingest("gaps", "--ticker", "MSFT", pg_url=pg_url, home=tmp_path, lake_dir=lake_dir)
    assert gaps.returncode == 0, gaps.stderr
    # the sample misses two sessions; the closure of 2001-09-11..14 is not a gap
    assert gaps.stdout == "1998-10-29\n1999-11-16\n2 gap(s) for MSFT on XNAS (XNYS calendar)\n"

    lines = (samples / "MSFT.csv").read_text().splitlines(keepends=True)
    holed = tmp_path / "MSFT-holed.csv"
    holed.write_text("".join(line for line in lines if not line.startswith("2001-09-17,")))
    bars = loaders.get_provider("file", None, path=holed, ticker="MSFT", exchange_mic="XNAS")
    other = lake.LakeSettings(lake_uri=str(tmp_path / "lake-holed"))
    lake.write_bars(
        other,
        bars.fetch_bars(
            ["MSFT"],
            exchange_mic="XNAS",
            date_from=dt.date(1986, 1, 1),
            date_to=dt.date(2018, 1, 1),
        ),
        job_id="holed",
    )
    assert loaders.find_gaps(other, ticker="MSFT", exchange_mic="XNAS", calendar_code="XNYS") == [
        dt.date(1998, 10, 29),
        dt.date(1999, 11, 16),
        dt.date(2001, 9, 17),
    ]


def test_backfill_inline_reports_progress_and_status_counts_jobs(
    seeded: Engine, pg_url: str, samples: Path, tmp_path: Path
) -> None:
    lake_dir = tmp_path / "lake"
    name = queue_name()
    with stub(samples) as server:
        env = {"STOCKDATA_MARKETSTACK_BASE_URL": server.base_url, "STOCKDATA_QUEUE_NAME": name}
        out = ingest(
            "backfill",
            "--provider",
            "marketstack",
            "--tickers",
            "MSFT",
            "--from",
            "2016-06-01",
            "--to",
            "2017-12-31",
            "--inline",
            pg_url=pg_url,
            home=tmp_path,
            lake_dir=lake_dir,
            **env,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout == (
            "2 job(s) enqueued, 2 in the backfill\njobs: 2 (succeeded=2); rows written: 367\n"
        )
        assert event_names(out.stderr).count("backfill_progress") == 2
        assert KEY not in out.stderr

        status = ingest("status", pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env)
    assert status.returncode == 0, status.stderr
    assert status.stdout == (
        "queued    0\nrunning   0\nsucceeded 2\nfailed    0\npoisoned  0\n"
        f"queue {name}: 0 message(s)\nqueue {name}-poison: 0 message(s)\n"
    )


def test_daily_enqueues_the_latest_closed_session_and_works_it_off(
    seeded: Engine, pg_url: str, samples: Path, tmp_path: Path
) -> None:
    lake_dir = tmp_path / "lake"
    with stub(samples) as server:
        env = {
            "STOCKDATA_MARKETSTACK_BASE_URL": server.base_url,
            "STOCKDATA_QUEUE_NAME": queue_name(),
        }
        # Saturday 2017-11-11: the latest closed XNAS session is Friday 2017-11-10
        out = ingest(
            "daily",
            "--now",
            "2017-11-11T12:00:00+00:00",
            pg_url=pg_url,
            home=tmp_path,
            lake_dir=lake_dir,
            **env,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout == (
            "1 job(s) enqueued, 1 in total\njobs: 1 (succeeded=1); rows written: 1\n"
        )
        again = ingest(
            "enqueue",
            "--now",
            "2017-11-11T12:00:00+00:00",
            "--exchange",
            "XNAS",
            pg_url=pg_url,
            home=tmp_path,
            lake_dir=lake_dir,
            **env,
        )
    assert again.returncode == 0, again.stderr
    assert re.fullmatch(
        rf"XNAS 2017-11-10 2 tickers job {UUID} already queued\n0 job\(s\) enqueued, 1 in total\n",
        again.stdout,
    )
    with catalog.session_scope(seeded) as session:
        msft = catalog.get_ticker(session, "MSFT", exchange_mic="XNAS")
        assert (str(msft.first_ingested), str(msft.last_ingested)) == ("2017-11-10", "2017-11-10")


def test_bad_input_is_one_line_and_a_non_zero_exit(
    seeded: Engine, pg_url: str, tmp_path: Path
) -> None:
    lake_dir = tmp_path / "lake"
    unknown = ingest(
        "enqueue", "--exchange", "XXXX", pg_url=pg_url, home=tmp_path, lake_dir=lake_dir
    )
    assert (unknown.returncode, unknown.stderr) == (1, "error: no exchange with MIC 'XXXX'\n")
    neither = ingest(
        "backfill",
        "--provider",
        "synthetic",
        "--from",
        "2020-01-01",
        pg_url=pg_url,
        home=tmp_path,
        lake_dir=lake_dir,
    )
    assert (neither.returncode, neither.stderr) == (
        2,
        "error: pass --tickers A,B or --exchange MIC\n",
    )
    too_big = ingest(
        "backfill",
        "--provider",
        "marketstack",
        "--tickers",
        "MSFT",
        "--from",
        "2020-01-01",
        "--batch-size",
        "101",
        pg_url=pg_url,
        home=tmp_path,
        lake_dir=lake_dir,
    )
    assert (too_big.returncode, too_big.stdout, too_big.stderr) == (
        1,
        "",
        "error: --batch-size 101 exceeds provider 'marketstack''s limit of 100 symbols per job\n",
    )
    with catalog.session_scope(seeded) as session:
        assert sum(catalog.job_counts(session).values()) == 0
    no_lake = ingest("gaps", "--ticker", "MSFT", pg_url=pg_url, home=tmp_path, lake_dir=lake_dir)
    assert no_lake.returncode == 1
    assert no_lake.stderr.startswith("error: no eod_prices table at ")
