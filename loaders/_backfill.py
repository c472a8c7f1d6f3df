"""Backfills: a date range split into (ticker batch x calendar year) jobs on the daily queue."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.engine import Engine

import catalog
from loaders._controller import MAX_BATCH, EnqueuedJob, batches, enqueue_job
from loaders._messages import JobKind
from loaders._queue import Queue
from loaders.providers._base import max_symbols_per_job
from stockdata.errors import InvalidInputError
from stockdata.symbols import check_symbol


def year_ranges(date_from: dt.date, date_to: dt.date) -> list[tuple[dt.date, dt.date]]:
    """[date_from, date_to] cut at year boundaries (one lake partition per job)."""
    if date_from > date_to:
        raise InvalidInputError(f"--from {date_from} is after --to {date_to}")
    return [
        (max(date_from, dt.date(y, 1, 1)), min(date_to, dt.date(y, 12, 31)))
        for y in range(date_from.year, date_to.year + 1)
    ]


def check_batch_size(provider: str, batch_size: int | None) -> int:
    """The batch size a backfill from `provider` uses: `batch_size`, or the provider's
    `max_symbols_per_job` when None. A size above that limit is refused."""
    limit = max_symbols_per_job(provider)
    if batch_size is None:
        return limit
    if batch_size < 1:
        raise InvalidInputError(f"--batch-size must be at least 1, got {batch_size}")
    if batch_size > limit:
        raise InvalidInputError(
            f"--batch-size {batch_size} exceeds provider {provider!r}'s limit of {limit} "
            "symbols per job"
        )
    return batch_size


def plan_backfill(
    tickers: Sequence[str],
    date_from: dt.date,
    date_to: dt.date,
    *,
    batch_size: int = MAX_BATCH,
    limit: int = MAX_BATCH,
    by_year: bool = True,
) -> list[tuple[list[str], dt.date, dt.date]]:
    """Jobs as (tickers, from, to), batch-major so concurrent workers hit different years.

    `limit` is the largest batch allowed (the provider's `max_symbols_per_job`); without
    `by_year` each batch is one job over the whole range (actions are few per ticker)."""
    if not tickers:
        raise InvalidInputError(
            "no tickers to backfill: pass --tickers or an exchange with tickers"
        )
    return [
        (batch, lo, hi)
        for batch in batches(tickers, batch_size, limit=limit)
        for lo, hi in (year_ranges(date_from, date_to) if by_year else [(date_from, date_to)])
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
    batch_size: int | None = None,
    kind: JobKind = "backfill",
) -> list[EnqueuedJob]:
    """Enqueue a backfill of `tickers` (default: the exchange's active tickers).

    `batch_size` (symbols per job) defaults to the provider's `max_symbols_per_job` and may
    not exceed it. `kind="actions"` backfills corporate actions alone, one job per batch
    over the whole range (`stockdata ingest actions`)."""
    size = check_batch_size(provider, batch_size)
    exchange_mic = exchange_mic.upper()
    with catalog.session_scope(engine) as session:
        exchange = catalog.get_exchange(session, exchange_mic)
        name = exchange.acronym or exchange.name
        if tickers is None:
            tickers = catalog.tickers_for_exchange(session, exchange_mic, active_only=True)
        else:
            tickers = [check_symbol(t) for t in tickers]
    return [
        enqueue_job(
            engine,
            queue,
            kind=kind,
            provider=provider,
            exchange_mic=exchange_mic,
            date_from=lo,
            date_to=hi,
            tickers=batch,
            exchange=name,
        )
        for batch, lo, hi in plan_backfill(
            tickers, date_from, date_to, batch_size=size, limit=size, by_year=kind != "actions"
        )
    ]
