"""Re-running recovers: failed runs exit 1 with a one-line reason, `ingest status` says which
jobs failed and why, re-running a backfill or a day re-queues them, `ingest retry` too."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

import catalog
import lake
from tests.integration.loaders._pipeline import csv_closes, lake_count, queue_name, stub
from tests.integration.loaders.test_ingest_cli import UUID, ingest
from tests.stubs.marketstack import Fault

FAILED_LINE = (
    "error: 1 job(s) failed (validation_error=1): `stockdata ingest status` lists them, "
    "`stockdata ingest retry` runs them again\n"
)


def _rows(samples: Path, first: dt.date, last: dt.date) -> int:
    return sum(first <= d <= last for d in csv_closes(samples / "MSFT.csv"))


def _statuses(db: Engine) -> list[tuple[str, str, str | None]]:
    with catalog.session_scope(db) as session:
        return [
            (str(j.date_from), str(j.status), j.error_code)
            for j in session.scalars(sa.select(catalog.IngestionJob).order_by("date_from"))
        ]


def test_a_failed_backfill_exits_1_and_running_it_again_finishes_it(
    seeded: Engine, pg_url: str, samples: Path, tmp_path: Path
) -> None:
    lake_dir = tmp_path / "lake"
    name = queue_name()
    args = ("backfill", "--provider", "marketstack", "--tickers", "MSFT")
    span = ("--from", "2016-01-01", "--to", "2017-12-31", "--inline")
    with stub(samples) as server:
        env = {"STOCKDATA_MARKETSTACK_BASE_URL": server.base_url, "STOCKDATA_QUEUE_NAME": name}
        server.inject(Fault.error("validation_error", 422))
        first = ingest(*args, *span, pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env)
        assert first.returncode == 1, first.stderr
        assert first.stdout == (
            "2 job(s) enqueued, 2 in the backfill\n"
            f"jobs: 2 (failed=1, succeeded=1); rows written: {_rows(samples, dt.date(2017, 1, 1), dt.date(2017, 12, 31))}\n"
        )
        assert first.stderr.endswith(FAILED_LINE)
        assert _statuses(seeded) == [
            ("2016-01-01", "failed", "validation_error"),
            ("2017-01-01", "succeeded", None),
        ]

        status = ingest("status", pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env)
        assert status.returncode == 0, status.stderr
        assert re.fullmatch(
            "queued    0\nrunning   0\nsucceeded 1\nfailed    1\npoisoned  0\n"
            rf"failed {UUID} backfill XNAS 2016-01-01\.\.2016-12-31 validation_error: "
            r"marketstack: validation_error: .+\n"
            f"queue {name}: 0 message\\(s\\)\nqueue {name}-poison: 0 message\\(s\\)\n",
            status.stdout,
        ), status.stdout

        again = ingest(*args, *span, pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env)
    assert again.returncode == 0, again.stderr
    expected = _rows(samples, dt.date(2016, 1, 1), dt.date(2017, 12, 31))
    assert again.stdout == (
        "1 job(s) enqueued, 2 in the backfill (1 failed before, re-queued)\n"
        f"jobs: 1 (succeeded=1); rows written: {_rows(samples, dt.date(2016, 1, 1), dt.date(2016, 12, 31))}\n"
    )
    assert _statuses(seeded) == [
        ("2016-01-01", "succeeded", None),
        ("2017-01-01", "succeeded", None),
    ]
    assert lake_count(lake.LakeSettings(lake_uri=str(lake_dir))) == (expected, expected)


def test_a_failed_day_is_re_queued_by_enqueue_and_by_retry(
    seeded: Engine, pg_url: str, samples: Path, tmp_path: Path
) -> None:
    lake_dir = tmp_path / "lake"
    now = ("--now", "2017-11-11T12:00:00+00:00")
    with stub(samples) as server:
        env = {
            "STOCKDATA_MARKETSTACK_BASE_URL": server.base_url,
            "STOCKDATA_QUEUE_NAME": queue_name(),
        }
        server.inject(Fault.error("validation_error", 422))
        daily = ingest("daily", *now, pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env)
        assert daily.returncode == 1, daily.stderr
        assert daily.stdout == (
            "1 job(s) enqueued, 1 in total\njobs: 1 (failed=1); rows written: 0\n"
        )
        assert daily.stderr.endswith(FAILED_LINE)

        enqueue = ingest(
            "enqueue",
            *now,
            "--exchange",
            "XNAS",
            pg_url=pg_url,
            home=tmp_path,
            lake_dir=lake_dir,
            **env,
        )
        assert enqueue.returncode == 0, enqueue.stderr
        assert re.fullmatch(
            rf"XNAS 2017-11-10 2 tickers job ({UUID}) re-queued after failing\n"
            r"1 job\(s\) enqueued, 1 in total \(1 failed before, re-queued\)\n",
            enqueue.stdout,
        ), enqueue.stdout
        job_id = enqueue.stdout.split(" job ")[1].split()[0]
        server.inject(Fault.error("validation_error", 422))
        work = ingest(
            "work", "--until-empty", pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env
        )
        assert (work.returncode, work.stdout) == (1, "jobs: 1 (failed=1); rows written: 0\n")
        assert work.stderr.endswith(FAILED_LINE)

        retry = ingest(
            "retry", "--job", job_id, pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env
        )
        assert retry.returncode == 0, retry.stderr
        assert retry.stdout == (
            f"XNAS 2017-11-10 2 tickers job {job_id} re-queued\n1 job(s) re-queued\n"
        )
        work = ingest(
            "work", "--until-empty", pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env
        )
        assert (work.returncode, work.stdout) == (0, "jobs: 1 (succeeded=1); rows written: 1\n")

        nothing = ingest(
            "retry", "--failed", pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env
        )
        assert (nothing.returncode, nothing.stdout) == (0, "0 job(s) re-queued\n")
        done = ingest(
            "retry", "--job", job_id, pg_url=pg_url, home=tmp_path, lake_dir=lake_dir, **env
        )
    assert (done.returncode, done.stderr) == (
        1,
        f"error: job {job_id} is succeeded: only failed or poisoned jobs are retried\n",
    )
    assert _statuses(seeded) == [("2017-11-10", "succeeded", None)]
