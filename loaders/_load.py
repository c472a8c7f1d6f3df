"""Load one ticker's file through the job machinery: a job row, an idempotent write, its status."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

import catalog
import lake
from loaders._jobs import JobResult, JobRunner, file_providers
from loaders._messages import JobMessage
from stockdata.errors import InvalidInputError, PermanentError
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
) -> LoadResult:
    """Load a CSV or Parquet file of one ticker's bars, as a `load` job run in this process
    (no queue: the job runner alone).

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
    runner = JobRunner(engine=engine, lake_settings=lake_settings, providers=file_providers)
    date_from, date_to = runner.provider("file", options).date_range()  # type: ignore[attr-defined]
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
    result = _run_in_process(runner, message, engine)
    with catalog.session_scope(engine) as session:
        catalog.upsert_tickers(session, [{"exchange_mic": mic, "symbol": ticker}])
        catalog.record_ingested_ranges(session, mic, result.ticker_ranges)
    return LoadResult(job_id=job_id, result=result)


def load_actions_file(
    path: Path,
    *,
    exchange_mic: str | None,
    engine: Engine,
    lake_settings: lake.LakeSettings,
) -> LoadResult:
    """Load a CSV or Parquet file of corporate actions (docs/providers.md) as an `actions` job.

    The job's identity includes the file's content digest: loading the same file again is
    the same job and writes nothing; a corrected file is new work, and only the rows that
    changed are written (the lake skips actions equal to the stored ones)."""
    mic = exchange_mic.upper() if exchange_mic else None
    options: dict[str, str] = {"path": str(path.resolve())}
    if mic:
        options["exchange_mic"] = mic
    runner = JobRunner(engine=engine, lake_settings=lake_settings, providers=file_providers)
    provider = runner.provider("file", options)
    actions = provider.read_actions()  # type: ignore[attr-defined]
    days = [d for d in actions.column("ex_date").to_pylist() if d is not None]
    tickers = sorted({t for t in actions.column("ticker").to_pylist() if t})
    mics = sorted({m for m in actions.column("exchange_mic").to_pylist() if m})
    if not days or not tickers:
        raise InvalidInputError(f"{path.name} has no actions", code="empty-file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with catalog.session_scope(engine) as session:
        for m in mics:
            catalog.get_exchange(session, m)  # an unknown exchange is refused before writing
        job, _created = catalog.create_job(
            session,
            kind="actions",
            provider="file",
            exchange_mic=mics[0] if len(mics) == 1 else None,
            date_from=min(days),
            date_to=max(days),
            tickers=tickers,
            content=digest,
        )
        job_id = job.id
        if job.status != catalog.JobStatus.SUCCEEDED:
            catalog.mark_job_running(session, job_id)
    message = JobMessage(
        job_id=str(job_id),
        kind="actions",
        provider="file",
        exchange_mic=mics[0],
        date_from=min(days),
        date_to=max(days),
        tickers=(),
        provider_options=options,
    )
    result = _run_in_process(runner, message, engine)
    return LoadResult(job_id=job_id, result=result)


def _run_in_process(runner: JobRunner, message: JobMessage, engine: Engine) -> JobResult:
    """Run a job here (no queue); a permanent failure marks it failed before it is raised."""
    try:
        return runner.run(message)
    except PermanentError as exc:
        with catalog.session_scope(engine) as session:
            catalog.mark_job_finished_with_error(
                session,
                uuid.UUID(message.job_id),
                status=catalog.JobStatus.FAILED,
                error_code=exc.code,
                error=exc.message,
            )
        raise
