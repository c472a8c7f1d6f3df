"""Workers end to end: the Marketstack stub with MSFT's real history, both queues, faults,
crashes after the commit, concurrent commits, poison and replay."""

from __future__ import annotations

import datetime as dt
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

import catalog
import lake
import loaders
from tests._services import Azurite
from tests.integration.loaders._pipeline import (
    KEY,
    MSFT_ROWS,
    csv_closes,
    lake_closes,
    lake_count,
    open_queue,
    provider_settings,
    queue_name,
    run_pool,
    stub,
)
from tests.stubs.logs import event_names, log_lines
from tests.stubs.marketstack import Fault

SUCCEEDED_ONLY = {"queued": 0, "running": 0, "failed": 0, "poisoned": 0}


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    with log_lines() as buffer:
        yield buffer


@pytest.fixture
def lake_settings(tmp_path: Path) -> lake.LakeSettings:
    return lake.LakeSettings(lake_uri=str(tmp_path / "lake"))


def _jobs(db: Engine) -> list[catalog.IngestionJob]:
    with catalog.session_scope(db) as session:
        jobs = list(session.scalars(sa.select(catalog.IngestionJob)))
        session.expunge_all()
    return jobs


def _csv_rows(samples: Path, first: dt.date, last: dt.date) -> int:
    return sum(first <= d <= last for d in csv_closes(samples / "MSFT.csv"))


@pytest.mark.parametrize("backend", ["postgres", "azure"])
def test_backfill_of_the_msft_history_through_two_workers(
    backend: str,
    seeded: Engine,
    samples: Path,
    lake_settings: lake.LakeSettings,
    request: pytest.FixtureRequest,
) -> None:
    azurite: Azurite | None = request.getfixturevalue("azurite") if backend == "azure" else None
    name = queue_name()

    def make_queue() -> loaders.Queue:
        return open_queue(backend, engine=seeded, azurite=azurite, name=name)

    with stub(samples) as server:
        jobs = loaders.enqueue_backfill(
            seeded,
            make_queue(),
            provider="marketstack",
            exchange_mic="XNAS",
            tickers=["MSFT"],
            date_from=dt.date(1986, 1, 1),
            date_to=dt.date(2017, 12, 31),
        )
        assert len(jobs) == 32
        stats = run_pool(
            seeded, make_queue, lake_settings, provider_settings(server), concurrency=2
        )
    assert stats.outcomes == {"succeeded": 32}
    assert stats.rows_written == MSFT_ROWS
    assert lake_count(lake_settings) == (MSFT_ROWS, MSFT_ROWS)
    assert lake_closes(lake_settings, "MSFT") == csv_closes(samples / "MSFT.csv")
    with catalog.session_scope(seeded) as session:
        assert catalog.job_counts(session) == {**SUCCEEDED_ONLY, "succeeded": 32}
        msft = catalog.get_ticker(session, "MSFT", exchange_mic="XNAS")
        assert (msft.first_ingested, msft.last_ingested) == (
            dt.date(1986, 3, 13),
            dt.date(2017, 11, 10),
        )
        outputs = session.scalars(sa.select(catalog.JobOutput)).all()
        assert sum(o.rows for o in outputs) == MSFT_ROWS
        assert {o.table_name for o in outputs} == {"eod_prices"}
        stores = session.scalars(sa.select(catalog.DataStore)).all()
        assert [(d.uri, d.partition_by) for d in stores] == [(lake_settings.root, "year")]
        assert {o.data_store_id for o in outputs} == {stores[0].id}
    assert sum(j.rows_written or 0 for j in _jobs(seeded)) == MSFT_ROWS
    assert make_queue().depth() == 0


def test_injected_faults_are_retried_and_the_key_never_reaches_a_log(
    seeded: Engine,
    samples: Path,
    lake_settings: lake.LakeSettings,
    lines: io.StringIO,
) -> None:
    name = queue_name()

    def make_queue() -> loaders.Queue:
        return open_queue("postgres", engine=seeded, azurite=None, name=name)

    with stub(samples) as server:
        loaders.enqueue_backfill(
            seeded,
            make_queue(),
            provider="marketstack",
            exchange_mic="XNAS",
            tickers=["MSFT"],
            date_from=dt.date(2015, 1, 1),
            date_to=dt.date(2017, 12, 31),
        )
        server.inject(
            Fault.status(429, retry_after=0.05),
            Fault.status(500),
            Fault.delay(1.5),
            Fault.truncate(),
            Fault.error_200("internal_error"),
            Fault.reset(),
            Fault.status(503),
        )
        settings = provider_settings(server, provider_max_retries=1, provider_timeout_seconds=0.5)
        stats = run_pool(seeded, make_queue, lake_settings, settings, concurrency=2)
        assert server.pending_faults == 0
        assert all(r.params.get("access_key") == KEY for r in server.requests)
    assert stats.outcomes.get("succeeded") == 3
    assert set(stats.outcomes) <= {"succeeded", "retried"}
    expected = _csv_rows(samples, dt.date(2015, 1, 1), dt.date(2017, 12, 31))
    assert lake_count(lake_settings) == (expected, expected)
    jobs = _jobs(seeded)
    assert [j.status for j in jobs] == [catalog.JobStatus.SUCCEEDED] * 3
    assert all(KEY not in (j.error or "") for j in jobs)
    logged = lines.getvalue()
    assert event_names(logged).count("job_succeeded") == 3
    assert KEY not in logged


def test_a_permanent_provider_error_fails_the_job_and_writes_nothing(
    seeded: Engine, samples: Path, lake_settings: lake.LakeSettings
) -> None:
    name = queue_name()

    def make_queue() -> loaders.Queue:
        return open_queue("postgres", engine=seeded, azurite=None, name=name)

    with stub(samples) as server:
        loaders.enqueue_backfill(
            seeded,
            make_queue(),
            provider="marketstack",
            exchange_mic="XNAS",
            tickers=["MSFT"],
            date_from=dt.date(2017, 1, 1),
            date_to=dt.date(2017, 12, 31),
        )
        server.inject(Fault.error("validation_error", 422))
        stats = run_pool(
            seeded, make_queue, lake_settings, provider_settings(server), concurrency=1
        )
    assert (stats.outcomes, stats.failures, stats.fatal) == (
        {"failed": 1},
        {"validation_error": 1},
        None,
    )
    [job] = _jobs(seeded)
    assert (job.status, job.error_code, job.attempts) == (
        catalog.JobStatus.FAILED,
        "validation_error",
        1,
    )
    assert job.error is not None and job.error.startswith("marketstack: validation_error:")
    assert KEY not in job.error
    assert make_queue().depth() == 0
    assert lake.open_table(lake_settings, lake.EOD_TABLE) is None


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault.error_200("usage_limit_reached"), "usage_limit_reached"),
        (Fault.error("invalid_access_key", 401), "invalid_access_key"),
    ],
)
def test_a_refused_key_releases_the_job_and_stops_the_worker(
    fault: Fault, code: str, seeded: Engine, samples: Path, lake_settings: lake.LakeSettings
) -> None:
    name = queue_name()

    def make_queue() -> loaders.Queue:
        return open_queue("postgres", engine=seeded, azurite=None, name=name)

    with stub(samples) as server:
        loaders.enqueue_backfill(
            seeded,
            make_queue(),
            provider="marketstack",
            exchange_mic="XNAS",
            tickers=["MSFT"],
            date_from=dt.date(2016, 1, 1),
            date_to=dt.date(2017, 12, 31),
        )
        server.inject(fault)
        stats = run_pool(
            seeded, make_queue, lake_settings, provider_settings(server), concurrency=1
        )
        assert stats.outcomes == {"released": 1}
        assert stats.failures == {}
        assert stats.fatal is not None and stats.fatal.startswith(f"marketstack: {code}:")
        jobs = _jobs(seeded)
        assert sorted((j.status, j.attempts) for j in jobs) == [
            (catalog.JobStatus.QUEUED, 0),
            (catalog.JobStatus.QUEUED, 0),
        ]
        assert sorted(str(j.error_code) for j in jobs) == sorted([code, "None"])
        assert make_queue().depth() == 2
        assert lake.open_table(lake_settings, lake.EOD_TABLE) is None

        stats = run_pool(
            seeded, make_queue, lake_settings, provider_settings(server), concurrency=1
        )
    expected = _csv_rows(samples, dt.date(2016, 1, 1), dt.date(2017, 12, 31))
    assert (stats.outcomes, stats.rows_written) == ({"succeeded": 2}, expected)
    assert lake_count(lake_settings) == (expected, expected)


def test_the_fifth_failed_delivery_poisons_and_replay_brings_it_back(
    seeded: Engine, samples: Path, lake_settings: lake.LakeSettings
) -> None:
    name = queue_name()

    def make_queue() -> loaders.Queue:
        return open_queue("postgres", engine=seeded, azurite=None, name=name)

    with stub(samples) as server:
        loaders.enqueue_backfill(
            seeded,
            make_queue(),
            provider="marketstack",
            exchange_mic="XNAS",
            tickers=["MSFT"],
            date_from=dt.date(2017, 1, 1),
            date_to=dt.date(2017, 12, 31),
        )
        server.inject(*[Fault.status(500)] * 5)
        settings = provider_settings(server, provider_max_retries=0)
        stats = run_pool(seeded, make_queue, lake_settings, settings, concurrency=1)
        assert stats.outcomes == {"retried": 4, "poisoned": 1}
        [job] = _jobs(seeded)
        assert (job.status, job.error_code, job.attempts) == (
            catalog.JobStatus.POISONED,
            "internal_error",
            5,
        )
        poison = open_queue("postgres", engine=seeded, azurite=None, name=f"{name}-poison")
        assert (make_queue().depth(), poison.depth()) == (0, 1)

        assert loaders.replay_poisoned(poison, make_queue(), seeded) == 1
        assert (make_queue().depth(), poison.depth()) == (1, 0)
        [job] = _jobs(seeded)
        assert (job.status, job.error_code) == (catalog.JobStatus.QUEUED, "replayed")
        stats = run_pool(seeded, make_queue, lake_settings, settings, concurrency=1)
    assert stats.outcomes == {"succeeded": 1}
    expected = _csv_rows(samples, dt.date(2017, 1, 1), dt.date(2017, 12, 31))
    assert lake_count(lake_settings) == (expected, expected)


def test_four_workers_commit_to_one_table_without_a_lost_or_duplicated_row(
    seeded: Engine, samples: Path, lake_settings: lake.LakeSettings
) -> None:
    aliases = {"AAA": "MSFT", "BBB": "MSFT", "CCC": "MSFT"}
    with catalog.session_scope(seeded) as session:
        catalog.upsert_tickers(session, [{"exchange_mic": "XNAS", "symbol": s} for s in aliases])
    name = queue_name()

    def make_queue() -> loaders.Queue:
        return open_queue("postgres", engine=seeded, azurite=None, name=name)

    with stub(samples, aliases) as server:
        jobs = loaders.enqueue_backfill(
            seeded,
            make_queue(),
            provider="marketstack",
            exchange_mic="XNAS",
            tickers=["MSFT", *aliases],
            date_from=dt.date(2014, 1, 1),
            date_to=dt.date(2017, 12, 31),
            batch_size=1,
        )
        assert len(jobs) == 16
        stats = run_pool(
            seeded, make_queue, lake_settings, provider_settings(server), concurrency=4
        )
    per_ticker = _csv_rows(samples, dt.date(2014, 1, 1), dt.date(2017, 12, 31))
    assert stats.outcomes == {"succeeded": 16}
    assert lake_count(lake_settings) == (4 * per_ticker, 4 * per_ticker)
    for ticker in ("MSFT", *aliases):
        assert lake_count(lake_settings, f"ticker = '{ticker}'") == (per_ticker, per_ticker)


def test_a_job_outlasting_its_visibility_is_renewed_not_redelivered(
    seeded: Engine, samples: Path, lake_settings: lake.LakeSettings
) -> None:
    name = queue_name()

    def make_queue() -> loaders.Queue:
        return open_queue("postgres", engine=seeded, azurite=None, name=name)

    options = loaders.WorkerOptions(
        visibility_timeout=1, renew_every=0.2, backoff_base=0, poll_interval=0.05
    )
    with stub(samples) as server:
        loaders.enqueue_backfill(
            seeded,
            make_queue(),
            provider="marketstack",
            exchange_mic="XNAS",
            tickers=["MSFT"],
            date_from=dt.date(2017, 1, 1),
            date_to=dt.date(2017, 12, 31),
        )
        server.inject(Fault.delay(2.5))
        settings = provider_settings(server, provider_timeout_seconds=10)
        stats = run_pool(
            seeded, make_queue, lake_settings, settings, concurrency=2, options=options
        )
    assert stats.outcomes == {"succeeded": 1}
    [job] = _jobs(seeded)
    assert (job.status, job.attempts) == (catalog.JobStatus.SUCCEEDED, 1)


def _cli_env(
    pg_url: str, lake_settings: lake.LakeSettings, home: Path, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKDATA_")}
    env.update(
        STOCKDATA_HOME=str(home),
        STOCKDATA_DATABASE_URL=pg_url,
        STOCKDATA_LAKE_URI=str(lake_settings.lake_uri),
        STOCKDATA_MARKETSTACK_API_KEY=KEY,
        STOCKDATA_QUEUE_POLL_SECONDS="0.05",
        **extra,
    )
    return env


def _kill_between_commit_and_catalog(engine: Engine, worker: subprocess.Popen[str]) -> int:
    """SIGKILL `worker` after its lake commit and before its catalog update: once the job is
    running, hold its catalog row locked (the success update waits on it), wait for the
    worker's `bars_written` event, kill it, then let the row go. Returns the exit status."""
    deadline = time.monotonic() + 60
    with engine.connect() as conn:
        while True:
            status = conn.execute(sa.text("SELECT status FROM ingestion_jobs")).scalar()
            conn.rollback()
            if status == catalog.JobStatus.RUNNING.value:
                break
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.02)
        conn.execute(sa.text("SELECT id FROM ingestion_jobs FOR UPDATE"))
        assert worker.stderr is not None
        for line in worker.stderr:
            if '"event":"bars_written"' in line.replace(" ", ""):
                break
        else:
            raise AssertionError("the worker exited before its lake commit")
        worker.kill()
        code = worker.wait(timeout=30)
        conn.rollback()
    worker.stderr.close()
    return code


def test_a_worker_killed_after_the_commit_loses_and_duplicates_nothing(
    seeded: Engine, pg_url: str, samples: Path, lake_settings: lake.LakeSettings, tmp_path: Path
) -> None:
    name = queue_name()
    queue = open_queue("postgres", engine=seeded, azurite=None, name=name)
    with stub(samples) as server:
        loaders.enqueue_backfill(
            seeded,
            queue,
            provider="marketstack",
            exchange_mic="XNAS",
            tickers=["MSFT"],
            date_from=dt.date(2016, 1, 1),
            date_to=dt.date(2016, 12, 31),
        )
        env = _cli_env(
            pg_url,
            lake_settings,
            tmp_path,
            STOCKDATA_MARKETSTACK_BASE_URL=server.base_url,
            STOCKDATA_QUEUE_NAME=name,
            STOCKDATA_QUEUE_VISIBILITY_TIMEOUT_SECONDS="1",
        )
        server.inject(Fault.delay(1.0))  # time to take the row lock before the commit
        crashed = subprocess.Popen(
            [sys.executable, "-m", "stockdata", "ingest", "work", "--max-jobs", "1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        killed = _kill_between_commit_and_catalog(seeded, crashed)
        assert killed == -signal.SIGKILL
        expected = _csv_rows(samples, dt.date(2016, 1, 1), dt.date(2016, 12, 31))
        assert lake_count(lake_settings) == (expected, expected)
        [job] = _jobs(seeded)
        assert (job.status, job.attempts) == (catalog.JobStatus.RUNNING, 1)
        assert queue.depth() == 1
        version = lake.open_table(lake_settings, lake.EOD_TABLE).version()  # type: ignore[union-attr]

        time.sleep(1.2)
        stats = run_pool(
            seeded, lambda: queue, lake_settings, provider_settings(server), concurrency=1
        )
    assert stats.outcomes == {"succeeded": 1}
    assert lake_count(lake_settings) == (expected, expected)
    assert lake.open_table(lake_settings, lake.EOD_TABLE).version() == version  # type: ignore[union-attr]
    [job] = _jobs(seeded)
    assert (job.status, job.attempts, job.rows_written) == (
        catalog.JobStatus.SUCCEEDED,
        2,
        expected,
    )
    assert queue.depth() == 0


def test_sigterm_releases_the_job_in_hand(
    seeded: Engine, pg_url: str, samples: Path, lake_settings: lake.LakeSettings, tmp_path: Path
) -> None:
    name = queue_name()
    queue = open_queue("postgres", engine=seeded, azurite=None, name=name)
    with stub(samples) as server:
        loaders.enqueue_backfill(
            seeded,
            queue,
            provider="marketstack",
            exchange_mic="XNAS",
            tickers=["MSFT"],
            date_from=dt.date(2016, 1, 1),
            date_to=dt.date(2016, 12, 31),
        )
        server.inject(Fault.delay(3))
        env = _cli_env(
            pg_url,
            lake_settings,
            tmp_path,
            STOCKDATA_MARKETSTACK_BASE_URL=server.base_url,
            STOCKDATA_QUEUE_NAME=name,
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "stockdata", "ingest", "work"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not server.requests:
                time.sleep(0.05)
            assert [j.status for j in _jobs(seeded)] == [catalog.JobStatus.RUNNING]
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert out.strip() == "jobs: 1 (released=1); rows written: 0"
    [job] = _jobs(seeded)
    assert (job.status, job.error_code) == (catalog.JobStatus.QUEUED, "released")
    assert queue.depth() == 1
    assert lake.open_table(lake_settings, lake.EOD_TABLE) is None


def test_unreadable_messages_and_unknown_jobs_go_to_the_poison_queue(
    seeded: Engine, samples: Path, lake_settings: lake.LakeSettings
) -> None:
    name = queue_name()
    queue = open_queue("postgres", engine=seeded, azurite=None, name=name)
    queue.send("not json")
    queue.send('{"v": 9, "job_id": "x"}')
    orphan = loaders.JobMessage(
        job_id="00000000-0000-4000-8000-000000000000",
        kind="daily",
        provider="marketstack",
        exchange_mic="XNAS",
        date_from=dt.date(2017, 11, 10),
        date_to=dt.date(2017, 11, 10),
        tickers=("MSFT",),
    )
    queue.send(orphan.to_json())
    with stub(samples) as server:
        stats = run_pool(
            seeded, lambda: queue, lake_settings, provider_settings(server), concurrency=1
        )
        assert server.requests == []
    assert stats.outcomes == {"poisoned": 3}
    poison = open_queue("postgres", engine=seeded, azurite=None, name=f"{name}-poison")
    assert (queue.depth(), poison.depth()) == (0, 3)
    assert _jobs(seeded) == []
