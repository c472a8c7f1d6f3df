"""Backfills: a date range split into (ticker batch x calendar year) jobs on the daily queue."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.engine import Engine

import catalog
from loaders._controller import MAX_BATCH, EnqueuedJob, batches, enqueue_job
from loaders._queue import Queue
from stockdata.errors import InvalidInputError


def year_ranges(date_from: dt.date, date_to: dt.date) -> list[tuple[dt.date, dt.date]]:
    """[date_from, date_to] cut at year boundaries (one lake partition per job)."""
    if date_from > date_to:
        raise InvalidInputError(f"--from {date_from} is after --to {date_to}")
    return [
        (max(date_from, dt.date(y, 1, 1)), min(date_to, dt.date(y, 12, 31)))
        for y in range(date_from.year, date_to.year + 1)
    ]


def plan_backfill(
    tickers: Sequence[str], date_from: dt.date, date_to: dt.date, *, batch_size: int = MAX_BATCH
) -> list[tuple[list[str], dt.date, dt.date]]:
    """Jobs as (tickers, from, to), batch-major so concurrent workers hit different years."""
    if not tickers:
        raise InvalidInputError(
            "no tickers to backfill: pass --tickers or an exchange with tickers"
        )
    return [
        (batch, lo, hi)
        for batch in batches(tickers, batch_size)
        for lo, hi in year_ranges(date_from, date_to)
    ]


def enqueue_backfill(
    engine: Engine,
    queue: Queue,
    *,
    provider: str,
    exchange_mic: str,
    date_from: dt.date,
    date_to: dt.date,
    tickers: Sequence[str] | None = None,
    batch_size: int = MAX_BATCH,
) -> list[EnqueuedJob]:
    """Enqueue a backfill of `tickers` (default: the exchange's active tickers)."""
    exchange_mic = exchange_mic.upper()
    with catalog.session_scope(engine) as session:
        exchange = catalog.get_exchange(session, exchange_mic)
        name = exchange.acronym or exchange.name
        if tickers is None:
            tickers = catalog.tickers_for_exchange(session, exchange_mic, active_only=True)
    return [
        enqueue_job(
            engine,
            queue,
            kind="backfill",
            provider=provider,
            exchange_mic=exchange_mic,
            date_from=lo,
            date_to=hi,
            tickers=batch,
            exchange=name,
        )
        for batch, lo, hi in plan_backfill(tickers, date_from, date_to, batch_size=batch_size)
    ]
