"""The controller: latest closed session per exchange, batches, row before message, idempotence."""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa
from sqlalchemy.engine import Engine

import catalog
import loaders

SATURDAY = dt.datetime(2024, 11, 30, 12, 0, tzinfo=dt.UTC)


def _queue(db: Engine) -> loaders.Queue:
    return loaders.open_queue(loaders.QueueSettings(queue_name="ctl-jobs"), engine=db)


def _jobs(db: Engine) -> list[catalog.IngestionJob]:
    with catalog.session_scope(db) as session:
        jobs = list(
            session.scalars(
                sa.select(catalog.IngestionJob).order_by(
                    catalog.IngestionJob.exchange_mic, catalog.IngestionJob.tickers
                )
            )
        )
        session.expunge_all()
    return jobs


def test_one_job_per_exchange_with_tickers_for_the_latest_closed_session(seeded: Engine) -> None:
    queue = _queue(seeded)
    [job] = loaders.enqueue_daily(seeded, queue, provider="marketstack", now=SATURDAY)
    assert (job.exchange_mic, job.date_from, job.date_to, job.tickers) == (
        "XNAS",
        dt.date(2024, 11, 29),
        dt.date(2024, 11, 29),
        2,
    )
    assert (job.created, job.sent) == (True, True)
    [row] = _jobs(seeded)
    assert (row.kind, row.provider, row.status, row.tickers) == (
        "daily",
        "marketstack",
        catalog.JobStatus.QUEUED,
        ["GOOG", "MSFT"],
    )
    [msg] = queue.receive(visibility_timeout=30)
    body = json.loads(msg.body)
    assert body == {
        "v": 1,
        "job_id": str(row.id),
        "kind": "daily",
        "provider": "marketstack",
        "exchange_mic": "XNAS",
        "date_from": "2024-11-29",
        "date_to": "2024-11-29",
        "tickers": ["GOOG", "MSFT"],
        "provider_options": {},
        "type": "EOD",
        "exchange": "NASDAQ",
        "date": "2024-11-29",
    }
    assert row.payload == {**body, "message_id": msg.id}


def test_enqueuing_twice_creates_no_second_job_and_no_second_message(seeded: Engine) -> None:
    queue = _queue(seeded)
    first = loaders.enqueue_daily(seeded, queue, provider="marketstack", now=SATURDAY)
    again = loaders.enqueue_daily(seeded, queue, provider="marketstack", now=SATURDAY)
    assert [(j.job_id, j.created, j.sent) for j in again] == [(first[0].job_id, False, False)]
    assert len(_jobs(seeded)) == 1
    assert queue.depth() == 1


def test_a_row_left_without_its_message_is_sent_by_the_next_run(seeded: Engine) -> None:
    """A controller that died between the commit and the send left a queued row, no message."""
    with catalog.session_scope(seeded) as session:
        orphan, _ = catalog.create_job(
            session,
            kind="daily",
            provider="marketstack",
            exchange_mic="XNAS",
            date_from=dt.date(2024, 11, 29),
            date_to=dt.date(2024, 11, 29),
            tickers=["MSFT", "GOOG"],
        )
        orphan_id = str(orphan.id)
    queue = _queue(seeded)
    [job] = loaders.enqueue_daily(seeded, queue, provider="marketstack", now=SATURDAY)
    assert (job.job_id, job.created, job.sent) == (orphan_id, False, True)
    assert queue.depth() == 1


def test_tickers_are_batched_at_most_100_per_message(seeded: Engine) -> None:
    with catalog.session_scope(seeded) as session:
        catalog.upsert_tickers(
            session, [{"exchange_mic": "XNYS", "symbol": f"N{i:03d}"} for i in range(250)]
        )
        catalog.upsert_tickers(
            session, [{"exchange_mic": "XNYS", "symbol": "OFF", "active": False}]
        )
    queue = _queue(seeded)
    jobs = loaders.enqueue_daily(seeded, queue, provider="marketstack", now=SATURDAY)
    assert [(j.exchange_mic, j.tickers) for j in jobs] == [
        ("XNAS", 2),
        ("XNYS", 100),
        ("XNYS", 100),
        ("XNYS", 50),
    ]
    bodies = [json.loads(m.body) for m in queue.receive(visibility_timeout=30, max_messages=10)]
    assert sorted(len(b["tickers"]) for b in bodies) == [2, 50, 100, 100]
    assert all("OFF" not in b["tickers"] for b in bodies)
    assert max(len(json.dumps(b)) for b in bodies) < 4096


def test_an_explicit_date_that_is_not_a_session_enqueues_nothing(seeded: Engine) -> None:
    queue = _queue(seeded)
    thanksgiving = dt.date(2024, 11, 28)
    assert loaders.enqueue_daily(seeded, queue, provider="marketstack", date=thanksgiving) == []
    [job] = loaders.enqueue_daily(
        seeded, queue, provider="marketstack", date=dt.date(2024, 11, 27), exchange_mic="xnas"
    )
    assert (job.exchange_mic, job.date_from) == ("XNAS", dt.date(2024, 11, 27))
    assert queue.depth() == 1


def test_inactive_exchanges_are_skipped(seeded: Engine) -> None:
    with seeded.begin() as conn:
        conn.execute(sa.text("UPDATE exchanges SET active = false WHERE mic = 'XNAS'"))
    assert loaders.enqueue_daily(seeded, _queue(seeded), provider="marketstack", now=SATURDAY) == []
