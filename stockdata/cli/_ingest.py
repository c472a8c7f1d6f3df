"""`stockdata ingest`: enqueue, work, backfill, daily, load, status, retry, gaps, replay-poisoned.

Every command that takes or makes work first checks what it needs (catalog revision, lake
access, provider keys) and refuses with a one-line reason; every command that runs jobs
exits 1 after a one-line summary when some failed."""

from __future__ import annotations

import datetime as dt
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

import catalog
import lake
import loaders
from loaders._messages import JobKind
from stockdata.cli import _context
from stockdata.errors import ConfigurationError, InvalidInputError
from stockdata.logs import get_logger
from stockdata.symbols import check_symbol

log = get_logger(__name__)


def _date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _symbol(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A ticker symbol by the API's rule (stockdata.symbols), upper-cased."""
    if value is None:
        return None
    try:
        return check_symbol(value.strip())
    except InvalidInputError as exc:
        raise click.BadParameter(exc.message) from None


def _symbols(_ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    out = [_symbol(_ctx, param, t) for t in value.split(",") if t.strip()]
    return [t for t in out if t is not None]


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
    *,
    providers: Sequence[str] = (),
    on_job: Callable[[Any, int], None] | None = None,
) -> Callable[[threading.Event], loaders.Worker]:
    """Workers sharing one set of settings, after checking this process can run jobs of
    `providers` (default: those of the queued jobs); refuses with a one-line reason."""
    settings = _queue_settings()
    options = loaders.WorkerOptions.from_settings(settings)
    lake_settings = lake.LakeSettings()
    provider_settings = loaders.ProviderSettings()
    engine = _context.engine()
    catalog.check_revision(engine)  # before the catalog is asked which providers to serve
    loaders.check_worker_ready(
        engine,
        lake_settings,
        provider_settings,
        loaders.served_providers(engine, providers),
    )

    def make(stop: threading.Event) -> loaders.Worker:
        return loaders.Worker(
            engine=engine,
            queue=loaders.open_queue(settings, engine=engine),
            lake_settings=lake_settings,
            providers=lambda name, opts: loaders.get_provider(name, provider_settings, **opts),
            options=options,
            stop=stop,
            on_job=on_job,
        )

    return make


def _controller_ready(provider: str) -> None:
    loaders.check_controller_ready(_context.engine(), loaders.ProviderSettings(), [provider])


def _finish(stats: loaders.WorkerStats) -> None:
    """Print the run's counts; exit 1 with a one-line reason if the worker stopped itself or
    jobs failed."""
    click.echo(_report(stats))
    if stats.fatal is not None:
        raise ConfigurationError(
            f"worker stopped, its job released for another worker: {stats.fatal}"
        )
    if stats.failures:
        reasons = ", ".join(f"{code}={n}" for code, n in sorted(stats.failures.items()))
        click.echo(
            f"error: {sum(stats.failures.values())} job(s) failed ({reasons}): "
            "`stockdata ingest status` lists them, `stockdata ingest retry` runs them again",
            err=True,
        )
        sys.exit(1)


def _sent_state(job: loaders.EnqueuedJob) -> str:
    if job.requeued:
        return "re-queued after failing"
    return "sent" if job.sent else "already queued"


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


def _enqueued(jobs: Sequence[loaders.EnqueuedJob], where: str) -> str:
    line = f"{sum(j.sent for j in jobs)} job(s) enqueued, {len(jobs)} {where}"
    requeued = sum(j.requeued for j in jobs)
    return f"{line} ({requeued} failed before, re-queued)" if requeued else line


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
@click.option(
    "--now",
    "now",
    callback=_now,
    metavar="TIMESTAMP",
    help="Run as if it were this ISO time (catch up a missed run: its latest closed session).",
)
def enqueue(date: dt.date | None, mic: str | None, provider: str, now: dt.datetime | None) -> None:
    """Enqueue one job per (exchange, latest closed session, batch of <= 100 tickers).

    Jobs of that day that failed are queued again; succeeded ones stay done."""
    _controller_ready(provider)
    jobs = loaders.enqueue_daily(
        _context.engine(), _queue(), provider=provider, now=now, date=date, exchange_mic=mic
    )
    for j in jobs:
        click.echo(
            f"{j.exchange_mic} {j.date_to} {j.tickers} tickers job {j.job_id} {_sent_state(j)}"
        )
    click.echo(_enqueued(jobs, "in total"))


@ingest.command()
@click.option("--until-empty", is_flag=True, help="Stop when the queue has no message left.")
@click.option("--max-jobs", type=click.IntRange(1), help="Stop after this many jobs (per worker).")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--provider",
    "providers",
    multiple=True,
    help="Provider this worker serves, checked before start (repeatable; default: those of "
    "the queued jobs).",
)
def work(
    until_empty: bool,
    max_jobs: int | None,
    concurrency: int,
    providers: tuple[str, ...],
) -> None:
    """Run jobs from the queue (SIGTERM finishes or releases the job in hand).

    Refuses to start without catalog, lake or provider access; a key refused mid-run
    releases the job and stops. Exits 1 if a job failed."""
    make = _worker_factory(providers=providers)
    with _stop_on_sigterm() as stop:
        stats = loaders.run_workers(
            make, concurrency=concurrency, until_empty=until_empty, max_jobs=max_jobs, stop=stop
        )
    _finish(stats)


class _Progress:
    """A progress bar with rows/s and ETA on a terminal, log lines otherwise."""

    def __init__(self, total: int, *, label: str = "backfill") -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.rows = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._bar: Any = None
        if sys.stderr.isatty():
            self._bar = click.progressbar(
                length=total,
                label=label,
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
@click.option("--tickers", callback=_symbols, help="Comma-separated symbols.")
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
    tickers: list[str] | None,
    mic: str | None,
    date_from: dt.date,
    date_to: dt.date | None,
    batch_size: int | None,
    inline: bool,
    concurrency: int,
) -> None:
    """Enqueue a backfill as (ticker batch x year) jobs; --inline also works them off."""
    _backfill(
        "backfill",
        provider=provider,
        tickers=tickers,
        mic=mic,
        date_from=date_from,
        date_to=date_to,
        batch_size=batch_size,
        inline=inline,
        concurrency=concurrency,
    )


def _backfill(
    kind: JobKind,
    *,
    provider: str,
    tickers: list[str] | None,
    mic: str | None,
    date_from: dt.date,
    date_to: dt.date | None,
    batch_size: int | None,
    inline: bool,
    concurrency: int,
) -> None:
    """Enqueue the jobs of a backfill of `kind` (bars, or actions alone) and, with `inline`,
    work them off here with a progress bar."""
    if not tickers and not mic:
        raise click.UsageError("pass --tickers A,B or --exchange MIC")
    batch_size = loaders.check_batch_size(provider, batch_size)
    engine = _context.engine()
    _controller_ready(provider)
    make = _worker_factory(providers=[provider]) if inline else None
    if mic is None:
        assert tickers
        with catalog.session_scope(engine) as session:
            mic = catalog.get_ticker(session, tickers[0]).exchange.mic
    jobs = loaders.enqueue_backfill(
        engine,
        _queue(),
        provider=provider,
        exchange_mic=mic,
        date_from=date_from,
        date_to=date_to or dt.date.today(),
        tickers=tickers or None,
        batch_size=batch_size,
        kind=kind,
    )
    click.echo(
        _enqueued(jobs, "in the backfill" if kind == "backfill" else f"in the {kind} backfill")
    )
    if make is None:
        return
    progress = _Progress(sum(j.sent for j in jobs), label=kind)

    def make_reporting(stop: threading.Event) -> loaders.Worker:
        worker = make(stop)
        worker.on_job = progress
        return worker

    try:
        with _stop_on_sigterm() as stop:
            stats = loaders.run_workers(
                make_reporting, concurrency=concurrency, until_empty=True, stop=stop
            )
    finally:
        progress.close()
    _finish(stats)


@ingest.command()
@click.option("--provider", default="marketstack", show_default=True, help="Provider name.")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--now",
    "now",
    callback=_now,
    metavar="TIMESTAMP",
    help="Run as if it were this ISO time (catch up a missed run: its latest closed session).",
)
def daily(provider: str, concurrency: int, now: dt.datetime | None) -> None:
    """Enqueue today's jobs, then work until the queue is empty (a single-machine daily run).

    Exits 1 if a job failed; running it again re-queues the failed ones."""
    _controller_ready(provider)
    make = _worker_factory(providers=[provider])
    jobs = loaders.enqueue_daily(_context.engine(), _queue(), provider=provider, now=now)
    click.echo(_enqueued(jobs, "in total"))
    with _stop_on_sigterm() as stop:
        stats = loaders.run_workers(make, concurrency=concurrency, until_empty=True, stop=stop)
    _finish(stats)


@ingest.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--ticker", required=True, callback=_symbol, help="Symbol the file holds, e.g. MSFT.")
@click.option("--exchange", "mic", required=True, help="Exchange MIC, e.g. XNAS.")
def load(file: Path, ticker: str, mic: str) -> None:
    """Load a CSV or Parquet file of one ticker's bars through the job machinery."""
    try:
        loaded = loaders.load_file(
            file,
            ticker=ticker,
            exchange_mic=mic,
            engine=_context.engine(),
            lake_settings=lake.LakeSettings(),
        )
    except InvalidInputError as exc:
        if exc.code != "unreadable-file":
            raise
        raise click.BadParameter(exc.message, param_hint="'FILE'") from None
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


@ingest.command("actions")
@click.option("--provider", help="Provider name (marketstack, eodhd, tiingo, synthetic).")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A CSV or Parquet file of actions to load instead (docs/providers.md).",
)
@click.option("--tickers", callback=_symbols, help="Comma-separated symbols.")
@click.option("--exchange", "mic", help="Exchange MIC (all its active tickers without --tickers).")
@click.option("--from", "date_from", callback=_date, help="First ex-date (with --provider).")
@click.option("--to", "date_to", callback=_date, help="Last ex-date (default: today).")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Symbols per job (default and maximum: the provider's max_symbols_per_job).",
)
@click.option("--inline", is_flag=True, help="Also run workers in this process until done.")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64))
def actions(
    provider: str | None,
    file: Path | None,
    tickers: list[str] | None,
    mic: str | None,
    date_from: dt.date | None,
    date_to: dt.date | None,
    batch_size: int | None,
    inline: bool,
    concurrency: int,
) -> None:
    """Backfill splits and dividends alone (`actions` jobs), or load a file of them.

    Bars are not fetched; prices adjust from the new actions at once."""
    if (provider is None) == (file is None):
        raise click.UsageError("pass --provider NAME (with --from) or --file FILE")
    if file is not None:
        _load_actions(file, mic)
        return
    assert provider is not None
    if date_from is None:
        raise click.UsageError("--from is required with --provider")
    _backfill(
        "actions",
        provider=provider,
        tickers=tickers,
        mic=mic,
        date_from=date_from,
        date_to=date_to,
        batch_size=batch_size,
        inline=inline,
        concurrency=concurrency,
    )


def _load_actions(file: Path, mic: str | None) -> None:
    try:
        loaded = loaders.load_actions_file(
            file,
            exchange_mic=mic,
            engine=_context.engine(),
            lake_settings=lake.LakeSettings(),
        )
    except InvalidInputError as exc:
        if exc.code not in ("unreadable-file", "schema", "empty-file"):
            raise
        raise click.BadParameter(exc.message, param_hint="'--file'") from None
    result = loaded.result
    click.echo(
        f"job {loaded.job_id}: {result.rows_written} action(s) written, "
        f"{result.rows_rejected} rejected, actions version {result.lake_version}"
    )


@ingest.command()
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(0), help="Failed jobs listed."
)
def status(limit: int) -> None:
    """Jobs by state, the failed and poisoned ones with their reasons, and the queue depths."""
    with catalog.session_scope(_context.engine()) as session:
        counts = catalog.job_counts(session)
        failed = [
            (j.id, j.status, j.kind, j.exchange_mic, j.date_from, j.date_to, j.error_code, j.error)
            for j in catalog.failed_jobs(session, limit=limit)
        ]
    for state, n in counts.items():
        click.echo(f"{state:<10}{n}")
    for job_id, state, kind, mic, lo, hi, code, error in failed:
        days = str(lo) if lo == hi else f"{lo}..{hi}"
        click.echo(f"{state} {job_id} {kind} {mic} {days} {code}: {error}")
    settings = _queue_settings()
    click.echo(f"queue {settings.queue_name}: {_queue().depth()} message(s)")
    poison = settings.poison_queue_name
    click.echo(f"queue {poison}: {_queue(poison).depth()} message(s)")


@ingest.command()
@click.option("--failed", "failed_only", is_flag=True, help="Only failed jobs, not poisoned ones.")
@click.option(
    "--since", callback=_now, help="Only jobs that failed at or after this ISO timestamp."
)
@click.option("--job", "job_ids", multiple=True, help="Only this job id (repeatable).")
def retry(failed_only: bool, since: dt.datetime | None, job_ids: tuple[str, ...]) -> None:
    """Queue failed and poisoned jobs again (after fixing what failed them)."""
    try:
        ids = [uuid.UUID(j) for j in job_ids]
    except ValueError:
        raise click.BadParameter("--job takes a job id (a UUID)") from None
    statuses = [catalog.JobStatus.FAILED]
    if not failed_only:
        statuses.append(catalog.JobStatus.POISONED)
    jobs = loaders.retry_jobs(
        _context.engine(), _queue(), statuses=statuses, since=since, job_ids=ids
    )
    for j in jobs:
        days = str(j.date_from) if j.date_from == j.date_to else f"{j.date_from}..{j.date_to}"
        click.echo(f"{j.exchange_mic} {days} {j.tickers} tickers job {j.job_id} re-queued")
    click.echo(f"{len(jobs)} job(s) re-queued")


@ingest.command()
@click.option("--ticker", required=True, callback=_symbol, help="Symbol, e.g. MSFT.")
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
