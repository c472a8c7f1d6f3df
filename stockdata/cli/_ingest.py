"""`stockdata ingest`: enqueue, work, backfill, daily, load, status, gaps, replay-poisoned."""

from __future__ import annotations

import datetime as dt
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

import catalog
import lake
import loaders
from stockdata.cli import _context
from stockdata.logs import get_logger

log = get_logger(__name__)


def _date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _now(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        now = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO timestamp") from None
    return now if now.tzinfo else now.replace(tzinfo=dt.UTC)


def _queue_settings() -> loaders.QueueSettings:
    return loaders.QueueSettings()


def _queue(name: str | None = None) -> loaders.Queue:
    return loaders.open_queue(_queue_settings(), engine=_context.engine(), name=name)


def _worker_factory(
    *, crash_after_commit: bool = False, on_job: Callable[[Any, int], None] | None = None
) -> Callable[[threading.Event], loaders.Worker]:
    settings = _queue_settings()
    options = loaders.WorkerOptions.from_settings(settings)
    if crash_after_commit:
        options = loaders.WorkerOptions.from_settings(settings, crash_after_commit=True)
    lake_settings = lake.LakeSettings()
    engine = _context.engine()

    def make(stop: threading.Event) -> loaders.Worker:
        return loaders.Worker(
            engine=engine,
            queue=loaders.open_queue(settings, engine=engine),
            lake_settings=lake_settings,
            options=options,
            stop=stop,
            on_job=on_job,
        )

    return make


@contextmanager
def _stop_on_sigterm() -> Iterator[threading.Event]:
    """SIGTERM (Kubernetes, KEDA scale-in) asks workers to finish or release the job in hand."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("stop_requested", signal=signum)
        stop.set()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report(stats: loaders.WorkerStats) -> str:
    parts = [f"{k}={v}" for k, v in sorted(stats.outcomes.items())]
    return f"jobs: {stats.jobs} ({', '.join(parts) or 'none'}); rows written: {stats.rows_written}"


@click.group("ingest")
def ingest() -> None:
    """Load bars: enqueue, work, backfill, daily."""


@ingest.command()
@click.option(
    "--date", "date", callback=_date, help="Session to load (default: the latest closed)."
)
@click.option("--exchange", "mic", help="Only this exchange (MIC).")
@click.option("--provider", default="marketstack", show_default=True, help="Provider name.")
@click.option("--now", "now", callback=_now, hidden=True, help="Pretend it is this time (tests).")
def enqueue(date: dt.date | None, mic: str | None, provider: str, now: dt.datetime | None) -> None:
    """Enqueue one job per (exchange, latest closed session, batch of <= 100 tickers)."""
    jobs = loaders.enqueue_daily(
        _context.engine(), _queue(), provider=provider, now=now, date=date, exchange_mic=mic
    )
    for j in jobs:
        state = "sent" if j.sent else "already queued"
        click.echo(f"{j.exchange_mic} {j.date_to} {j.tickers} tickers job {j.job_id} {state}")
    click.echo(f"{sum(j.sent for j in jobs)} job(s) enqueued, {len(jobs)} in total")


@ingest.command()
@click.option("--until-empty", is_flag=True, help="Stop when the queue has no message left.")
@click.option("--max-jobs", type=click.IntRange(1), help="Stop after this many jobs (per worker).")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--crash-after-commit", is_flag=True, hidden=True, help="Exit after a lake commit.")
def work(
    until_empty: bool, max_jobs: int | None, concurrency: int, crash_after_commit: bool
) -> None:
    """Run jobs from the queue (SIGTERM finishes or releases the job in hand)."""
    make = _worker_factory(crash_after_commit=crash_after_commit)
    with _stop_on_sigterm() as stop:
        stats = loaders.run_workers(
            make, concurrency=concurrency, until_empty=until_empty, max_jobs=max_jobs, stop=stop
        )
    click.echo(_report(stats))


class _Progress:
    """A progress bar with rows/s and ETA on a terminal, log lines otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.rows = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._bar: Any = None
        if sys.stderr.isatty():
            self._bar = click.progressbar(
                length=total,
                label="backfill",
                show_eta=True,
                show_pos=True,
                file=sys.stderr,
                item_show_func=lambda _: self.describe(),
            )
            self._bar.__enter__()

    def describe(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return f"{self.rows:,} rows {self.rows / elapsed:,.0f} rows/s"

    def __call__(self, outcome: Any, rows: int) -> None:
        with self._lock:
            self.done += 1
            self.rows += rows
            if self._bar is not None:
                self._bar.update(1)
                return
            elapsed = time.monotonic() - self.started
            eta = elapsed / self.done * max(0, self.total - self.done)
            log.info(
                "backfill_progress",
                jobs_done=self.done,
                jobs=self.total,
                outcome=outcome,
                rows=self.rows,
                rows_per_s=round(self.rows / max(elapsed, 1e-9)),
                eta_s=round(eta, 1),
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


@ingest.command()
@click.option("--provider", required=True, help="Provider name (marketstack, synthetic, ...).")
@click.option("--tickers", help="Comma-separated symbols.")
@click.option("--exchange", "mic", help="Exchange MIC (all its active tickers without --tickers).")
@click.option("--from", "date_from", required=True, callback=_date, help="First date.")
@click.option("--to", "date_to", callback=_date, help="Last date (default: today).")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Symbols per job (default and maximum: the provider's max_symbols_per_job).",
)
@click.option("--inline", is_flag=True, help="Also run workers in this process until done.")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64))
def backfill(
    provider: str,
    tickers: str | None,
    mic: str | None,
    date_from: dt.date,
    date_to: dt.date | None,
    batch_size: int | None,
    inline: bool,
    concurrency: int,
) -> None:
    """Enqueue a backfill as (ticker batch x year) jobs; --inline also works them off."""
    if not tickers and not mic:
        raise click.UsageError("pass --tickers A,B or --exchange MIC")
    batch_size = loaders.check_batch_size(provider, batch_size)
    symbols = [t.strip().upper() for t in tickers.split(",") if t.strip()] if tickers else None
    engine = _context.engine()
    if mic is None:
        assert symbols is not None
        with catalog.session_scope(engine) as session:
            mic = catalog.get_ticker(session, symbols[0]).exchange.mic
    jobs = loaders.enqueue_backfill(
        engine,
        _queue(),
        provider=provider,
        exchange_mic=mic,
        date_from=date_from,
        date_to=date_to or dt.date.today(),
        tickers=symbols,
        batch_size=batch_size,
    )
    click.echo(f"{sum(j.sent for j in jobs)} job(s) enqueued, {len(jobs)} in the backfill")
    if not inline:
        return
    progress = _Progress(sum(j.sent for j in jobs))
    try:
        with _stop_on_sigterm() as stop:
            stats = loaders.run_workers(
                _worker_factory(on_job=progress),
                concurrency=concurrency,
                until_empty=True,
                stop=stop,
            )
    finally:
        progress.close()
    click.echo(_report(stats))


@ingest.command()
@click.option("--provider", default="marketstack", show_default=True, help="Provider name.")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--now", "now", callback=_now, hidden=True, help="Pretend it is this time (tests).")
def daily(provider: str, concurrency: int, now: dt.datetime | None) -> None:
    """Enqueue today's jobs, then work until the queue is empty (a single-machine daily run)."""
    jobs = loaders.enqueue_daily(_context.engine(), _queue(), provider=provider, now=now)
    click.echo(f"{sum(j.sent for j in jobs)} job(s) enqueued, {len(jobs)} in total")
    with _stop_on_sigterm() as stop:
        stats = loaders.run_workers(
            _worker_factory(), concurrency=concurrency, until_empty=True, stop=stop
        )
    click.echo(_report(stats))


@ingest.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--ticker", required=True, help="Symbol the file holds, e.g. MSFT.")
@click.option("--exchange", "mic", required=True, help="Exchange MIC, e.g. XNAS.")
def load(file: Path, ticker: str, mic: str) -> None:
    """Load a CSV or Parquet file of one ticker's bars through the job machinery."""
    loaded = loaders.load_file(
        file,
        ticker=ticker,
        exchange_mic=mic,
        engine=_context.engine(),
        lake_settings=lake.LakeSettings(),
        queue_settings=_queue_settings(),
    )
    result = loaded.result
    if result.committed:
        click.echo(
            f"job {loaded.job_id}: {result.rows_written} rows written, "
            f"{result.rows_rejected} rejected, lake version {result.lake_version}"
        )
    else:
        click.echo(
            f"job {loaded.job_id}: already loaded ({result.rows_written} rows), "
            f"lake version {result.lake_version}"
        )


@ingest.command()
def status() -> None:
    """Jobs by state, and the queue depths."""
    with catalog.session_scope(_context.engine()) as session:
        counts = catalog.job_counts(session)
    for state, n in counts.items():
        click.echo(f"{state:<10}{n}")
    settings = _queue_settings()
    click.echo(f"queue {settings.queue_name}: {_queue().depth()} message(s)")
    poison = settings.poison_queue_name
    click.echo(f"queue {poison}: {_queue(poison).depth()} message(s)")


@ingest.command()
@click.option("--ticker", required=True, help="Symbol, e.g. MSFT.")
@click.option("--exchange", "mic", help="Exchange MIC (default: the ticker's exchange).")
@click.option("--from", "date_from", callback=_date, help="First date (default: first bar).")
@click.option("--to", "date_to", callback=_date, help="Last date (default: last bar).")
def gaps(ticker: str, mic: str | None, date_from: dt.date | None, date_to: dt.date | None) -> None:
    """List the trading sessions with no bar for a ticker (exchange closures are not gaps)."""
    with catalog.session_scope(_context.engine()) as session:
        if mic is None:
            mic = catalog.get_ticker(session, ticker).exchange.mic
        exchange = catalog.get_exchange(session, mic)
        code = exchange.calendar_code or exchange.mic
    missing = loaders.find_gaps(
        lake.LakeSettings(),
        ticker=ticker,
        exchange_mic=mic,
        calendar_code=code,
        date_from=date_from,
        date_to=date_to,
    )
    for day in missing:
        click.echo(day.isoformat())
    click.echo(f"{len(missing)} gap(s) for {ticker.upper()} on {mic.upper()} ({code} calendar)")


@ingest.command("replay-poisoned")
@click.option("--limit", type=click.IntRange(1), help="Move at most this many messages.")
def replay_poisoned(limit: int | None) -> None:
    """Move poisoned messages back to the job queue (after fixing what poisoned them)."""
    settings = _queue_settings()
    moved = loaders.replay_poisoned(
        _queue(settings.poison_queue_name), _queue(), _context.engine(), limit=limit
    )
    click.echo(f"{moved} message(s) moved back to {settings.queue_name}")


__all__ = ["ingest"]
