"""Load one ticker's file through the job machinery: a job row, an idempotent write, its status."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

import catalog
import lake
from loaders._messages import JobMessage
from loaders._queue import open_queue
from loaders._queue_settings import QueueSettings
from loaders._worker import JobResult, Worker
from stockdata.errors import PermanentError
from stockdata.symbols import check_symbol


@dataclass(frozen=True, slots=True)
class LoadResult:
    """The job a file load ran as, and what it wrote (nothing new when it was loaded before)."""

    job_id: uuid.UUID
    result: JobResult


def load_file(
    path: Path,
    *,
    ticker: str,
    exchange_mic: str,
    engine: Engine,
    lake_settings: lake.LakeSettings,
    queue_settings: QueueSettings,
) -> LoadResult:
    """Load a CSV or Parquet file of one ticker's bars, as a `load` job run in this process.

    The job's identity is (file provider, ticker, exchange, the file's date range), so loading
    the same file again finds the same job and its Delta application transaction: nothing is
    written twice. A permanent failure marks the job failed before it is raised; the ticker
    enters the catalog only once its bars are in the lake.
    """
    ticker, mic = check_symbol(ticker), exchange_mic.upper()
    with catalog.session_scope(engine) as session:
        exchange = catalog.get_exchange(session, mic)
        exchange_name = exchange.acronym or exchange.name
    options = {"path": str(path.resolve()), "ticker": ticker, "exchange_mic": mic}
    worker = Worker(
        engine=engine,
        queue=open_queue(queue_settings, engine=engine),
        lake_settings=lake_settings,
        stop=threading.Event(),
    )
    date_from, date_to = worker.provider("file", options).date_range()  # type: ignore[attr-defined]
    with catalog.session_scope(engine) as session:
        job, _created = catalog.create_job(
            session,
            kind="load",
            provider="file",
            exchange_mic=mic,
            date_from=date_from,
            date_to=date_to,
            tickers=[ticker],
        )
        job_id = job.id
        if job.status != catalog.JobStatus.SUCCEEDED:
            catalog.mark_job_running(session, job_id)
    message = JobMessage(
        job_id=str(job_id),
        kind="load",
        provider="file",
        exchange_mic=mic,
        date_from=date_from,
        date_to=date_to,
        tickers=(ticker,),
        exchange=exchange_name,
        provider_options=options,
    )
    try:
        result = worker.run_job(message)
    except PermanentError as exc:
        with catalog.session_scope(engine) as session:
            catalog.mark_job_finished_with_error(
                session,
                job_id,
                status=catalog.JobStatus.FAILED,
                error_code=exc.code,
                error=exc.message,
            )
        raise
    with catalog.session_scope(engine) as session:
        catalog.upsert_tickers(session, [{"exchange_mic": mic, "symbol": ticker}])
        catalog.record_ingested_ranges(session, mic, result.ticker_ranges)
    return LoadResult(job_id=job_id, result=result)
