"""The controller: one job per (exchange, latest closed session, ticker batch), row before message."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

import catalog
from loaders._calendar import is_session, latest_closed_session
from loaders._messages import JobKind, JobMessage
from loaders._queue import Queue
from stockdata.errors import InvalidInputError
from stockdata.logs import get_logger

log = get_logger(__name__)

#: Marketstack takes at most 100 symbols per call; one message = one call's worth of tickers.
MAX_BATCH = 100
#: The symbols' share of a message: a message stays under the 64 KB queue limit even
#: base64-encoded (48 KB raw), with 4 KB left for the other fields.
TICKER_BYTES_PER_MESSAGE = 44 * 1024


@dataclass(frozen=True, slots=True)
class EnqueuedJob:
    """One job the controller asked for: `created` = new catalog row, `sent` = message sent now,
    `requeued` = the job had failed (or been poisoned) and was sent again."""

    job_id: str
    kind: str
    exchange_mic: str
    date_from: dt.date
    date_to: dt.date
    tickers: int
    created: bool
    sent: bool
    requeued: bool = False


def batches(
    tickers: Sequence[str],
    size: int = MAX_BATCH,
    *,
    limit: int = MAX_BATCH,
    max_bytes: int = TICKER_BYTES_PER_MESSAGE,
) -> list[list[str]]:
    """Sorted tickers cut into batches of at most `size` symbols (stable: same input, same
    batches), a batch also closing before its symbols take more than `max_bytes` of the
    message (each costs its length + 3 in the JSON list).

    `limit` is the largest size allowed: 100 for daily messages, a provider's
    `max_symbols_per_job` for backfills."""
    if not 1 <= size <= limit:
        raise InvalidInputError(f"batch size must be 1..{limit}, got {size}")
    out: list[list[str]] = []
    current: list[str] = []
    used = 0
    for symbol in sorted({t.upper() for t in tickers}):
        cost = len(symbol.encode()) + 3
        if current and (len(current) == size or used + cost > max_bytes):
            out.append(current)
            current, used = [], 0
        current.append(symbol)
        used += cost
    if current:
        out.append(current)
    return out


def enqueue_job(
    engine: Engine,
    queue: Queue,
    *,
    kind: JobKind,
    provider: str,
    exchange_mic: str,
    date_from: dt.date,
    date_to: dt.date,
    tickers: Sequence[str],
    exchange: str | None = None,
    provider_options: dict[str, Any] | None = None,
) -> EnqueuedJob:
    """Create the job row (idempotent by key), then send its message once.

    The row is committed before the message is sent, and the message id is recorded after:
    a controller that dies in between leaves a queued row without `message_id`, which the
    next run sends. Asking for the same job again sends nothing, unless it failed or was
    poisoned: then it is queued and sent again (a succeeded job stays done).
    """
    with catalog.session_scope(engine) as session:
        job, created = catalog.create_job(
            session,
            kind=kind,
            provider=provider,
            exchange_mic=exchange_mic,
            date_from=date_from,
            date_to=date_to,
            tickers=tickers,
        )
        job_id = job.id
        requeued = not created and catalog.requeue_job(session, job_id)
        already_sent = bool((job.payload or {}).get("message_id")) and not requeued
        finished = job.status != catalog.JobStatus.QUEUED and not requeued
    if already_sent or (finished and not created):
        return EnqueuedJob(
            str(job_id), kind, exchange_mic, date_from, date_to, len(tickers), created, False
        )
    message = JobMessage(
        job_id=str(job_id),
        kind=kind,
        provider=provider,
        exchange_mic=exchange_mic,
        date_from=date_from,
        date_to=date_to,
        tickers=tuple(sorted(tickers)),
        exchange=exchange,
        provider_options=provider_options or {},
    )
    send_job(engine, queue, message, requeued=requeued)
    return EnqueuedJob(
        str(job_id), kind, exchange_mic, date_from, date_to, len(tickers), created, True, requeued
    )


def send_job(engine: Engine, queue: Queue, message: JobMessage, *, requeued: bool = False) -> str:
    """Send a job's message and record its id on the job row; returns the message id."""
    message_id = queue.send(message.to_json())
    with catalog.session_scope(engine) as session:
        catalog.set_job_payload(
            session, uuid.UUID(message.job_id), {**message.to_dict(), "message_id": message_id}
        )
    log.info(
        "job_requeued" if requeued else "job_enqueued",
        job_id=message.job_id,
        kind=message.kind,
        exchange_mic=message.exchange_mic,
        date_from=str(message.date_from),
        date_to=str(message.date_to),
        tickers=len(message.tickers),
        queue=queue.name,
    )
    return message_id


def retry_jobs(
    engine: Engine,
    queue: Queue,
    *,
    statuses: Sequence[catalog.JobStatus] = (catalog.JobStatus.FAILED, catalog.JobStatus.POISONED),
    since: dt.datetime | None = None,
    job_ids: Sequence[uuid.UUID] = (),
) -> list[EnqueuedJob]:
    """Queue failed (and poisoned) jobs again with a new message each; returns those sent.

    File loads (`kind = load`) are not retried here: run `ingest load` with the file again."""
    with catalog.session_scope(engine) as session:
        if job_ids:
            for job_id in job_ids:
                job = catalog.get_job(session, job_id)
                if job.status not in statuses:
                    raise InvalidInputError(
                        f"job {job_id} is {job.status}: only failed or poisoned jobs are retried"
                    )
        jobs = catalog.failed_jobs(session, statuses=statuses, since=since, job_ids=job_ids)
        todo = [(j.id, _message_of(j)) for j in jobs if j.kind != "load"]
        skipped = [str(j.id) for j in jobs if j.kind == "load"]
    if skipped and job_ids:
        raise InvalidInputError(
            f"job {skipped[0]} is a file load: run `stockdata ingest load` with the file again"
        )
    out: list[EnqueuedJob] = []
    for job_id, message in todo:
        with catalog.session_scope(engine) as session:
            if not catalog.requeue_job(session, job_id):
                continue  # someone else re-queued it meanwhile
        send_job(engine, queue, message, requeued=True)
        out.append(
            EnqueuedJob(
                str(job_id),
                message.kind,
                message.exchange_mic,
                message.date_from,
                message.date_to,
                len(message.tickers),
                False,
                True,
                True,
            )
        )
    return out


def _message_of(job: catalog.IngestionJob) -> JobMessage:
    """The message that runs `job`, from its catalog row (the truth) and its payload."""
    payload = job.payload or {}
    return JobMessage(
        job_id=str(job.id),
        kind=job.kind,  # type: ignore[arg-type]
        provider=job.provider,
        exchange_mic=job.exchange_mic or "",
        date_from=job.date_from,
        date_to=job.date_to,
        tickers=tuple(job.tickers),
        exchange=payload.get("exchange"),  # type: ignore[arg-type]
        provider_options=dict(payload.get("provider_options") or {}),  # type: ignore[call-overload]
    )


@dataclass(frozen=True, slots=True)
class _ExchangeWork:
    mic: str
    name: str
    calendar_code: str
    tickers: list[str]


def _active_exchanges(engine: Engine, only: str | None) -> list[_ExchangeWork]:
    out = []
    with catalog.session_scope(engine) as session:
        if only:
            exchanges = [catalog.get_exchange(session, only)]
        else:
            exchanges = catalog.list_exchanges(session, active_only=True)
        for ex in exchanges:
            tickers = catalog.tickers_for_exchange(session, ex.mic, active_only=True)
            if tickers:
                out.append(
                    _ExchangeWork(
                        ex.mic, ex.acronym or ex.name, ex.calendar_code or ex.mic, tickers
                    )
                )
    return out


def enqueue_daily(
    engine: Engine,
    queue: Queue,
    *,
    provider: str,
    now: dt.datetime | None = None,
    date: dt.date | None = None,
    exchange_mic: str | None = None,
    batch_size: int = MAX_BATCH,
) -> list[EnqueuedJob]:
    """Enqueue the daily load: for each active exchange with active tickers, the latest
    session closed at `now` in that exchange's timezone (or `date`, where it is a session)."""
    now = now or dt.datetime.now(dt.UTC)
    out: list[EnqueuedJob] = []
    for ex in _active_exchanges(engine, exchange_mic):
        if date is not None:
            if not is_session(ex.calendar_code, date):
                log.info("not_a_session", exchange_mic=ex.mic, date=str(date))
                continue
            session_date = date
        else:
            session_date = latest_closed_session(ex.calendar_code, now)
        for batch in batches(ex.tickers, batch_size):
            out.append(
                enqueue_job(
                    engine,
                    queue,
                    kind="daily",
                    provider=provider,
                    exchange_mic=ex.mic,
                    date_from=session_date,
                    date_to=session_date,
                    tickers=batch,
                    exchange=ex.name,
                )
            )
    return out
