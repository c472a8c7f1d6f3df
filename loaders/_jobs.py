"""Running one job: fetch from the provider, validate and write once, record in the catalog.

No queue here: the worker (loaders/_worker.py) receives, renews and settles messages and
hands each job to a `JobRunner`; `ingest load` and tests run jobs with a runner alone.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import catalog
import lake
from loaders._calendar import session_checks
from loaders._messages import JobMessage
from loaders.providers._actions import ActionSource
from loaders.providers._base import Provider, get_provider
from stockdata.errors import PermanentError
from stockdata.logs import get_logger

log = get_logger(__name__)

ProviderFactory = Callable[[str, dict[str, Any]], Provider]


class JobReleased(Exception):  # noqa: N818 (a signal, not an error)
    """Stop was requested before the write began: give the job back."""


@dataclass(frozen=True, slots=True)
class JobResult:
    """What one job wrote: counts, the lake version and whether this run made the commit."""

    job_id: str
    rows_written: int
    rows_rejected: int
    lake_version: int | None
    committed: bool
    #: ticker -> (first, last) trade date written (or already there, on a replay).
    ticker_ranges: dict[str, tuple[dt.date, dt.date]] = field(default_factory=dict)


def file_providers(name: str, options: dict[str, Any]) -> Provider:
    """The factory of runs that read files only (`ingest load`): no credentials needed."""
    if name != "file":
        raise PermanentError(f"this run reads files only, not provider {name!r}")
    return get_provider(name, None, **options)


class JobRunner:
    """Runs jobs against one lake and catalog; providers are built once per (name, options).

    Safe to share between threads only for distinct jobs (each worker thread has its own)."""

    def __init__(
        self,
        *,
        engine: Engine,
        lake_settings: lake.LakeSettings,
        providers: ProviderFactory,
    ) -> None:
        self.engine = engine
        self.lake_settings = lake_settings
        #: builds a provider from its name and options; the caller decides where its
        #: settings come from (built once, passed down)
        self._providers_factory = providers
        self._providers: dict[str, Provider] = {}
        self._exchanges: dict[str, tuple[str, str]] = {}
        self._data_store_id: int | None = None

    def provider(self, name: str, options: dict[str, Any]) -> Provider:
        key = name + json.dumps(options, sort_keys=True)
        if key not in self._providers:
            self._providers[key] = self._providers_factory(name, options)
        return self._providers[key]

    def _data_store(self, session: Session) -> int:
        """The catalog row of the lake this runner writes to (registered on first use)."""
        if self._data_store_id is None:
            root = self.lake_settings.root
            self._data_store_id = catalog.upsert_data_store(
                session,
                name=root[-100:],
                uri=root,
                partition_by=self.lake_settings.lake_partition,
            )
        return self._data_store_id

    def _exchange(self, mic: str) -> tuple[str, str]:
        if mic not in self._exchanges:
            with catalog.session_scope(self.engine) as session:
                ex = catalog.get_exchange(session, mic)
                self._exchanges[mic] = (ex.calendar_code or ex.mic, ex.timezone)
        return self._exchanges[mic]

    def run(self, job: JobMessage, *, stop: threading.Event | None = None) -> JobResult:
        """Fetch, validate and write one job, then record it as succeeded in the catalog.

        The job id is the Delta application id (with the job's lake generation once a
        restore removed its rows), so a replay after a crash writes nothing new; the catalog
        update after it is idempotent too. A bar job of a provider whose bars carry no
        actions also fetches the range's actions and writes them after the bars."""
        if job.kind == "actions":
            return self._run_actions_job(job, stop=stop)
        calendar_code, timezone = self._exchange(job.exchange_mic)
        provider = self.provider(job.provider, job.provider_options)
        bars = provider.fetch_bars(
            list(job.tickers),
            exchange_mic=job.exchange_mic,
            date_from=job.date_from,
            date_to=job.date_to,
        )
        actions = self._actions_with_bars(provider, job)
        if stop is not None and stop.is_set():
            raise JobReleased
        checks = session_checks(calendar_code, timezone=timezone)
        with catalog.session_scope(self.engine) as session:
            app_id = catalog.job_app_id(session, uuid.UUID(job.job_id))
        metrics = lake.write_bars(self.lake_settings, bars, job_id=app_id, extra_checks=checks)
        if actions is not None:
            # its own application id: write_bars already used `<job>:actions` for the
            # actions its bars carried
            lake.write_actions(self.lake_settings, actions, job_id=f"{app_id}:fetched")
        with catalog.session_scope(self.engine) as session:
            catalog.mark_job_succeeded(
                session,
                uuid.UUID(job.job_id),
                rows_written=metrics.rows_valid,
                rows_rejected=metrics.rows_rejected,
                lake_version=metrics.version,
                outputs=[
                    {
                        "data_store_id": self._data_store(session),
                        "table_uri": self.lake_settings.table_uri(lake.EOD_TABLE),
                        "table_name": lake.EOD_TABLE,
                        "version": metrics.version,
                        "rows": metrics.rows_valid,
                        "partitions": list(metrics.partitions),
                    }
                ],
            )
            catalog.record_ingested_ranges(session, job.exchange_mic, metrics.ticker_ranges)
        return JobResult(
            job.job_id,
            metrics.rows_valid,
            metrics.rows_rejected,
            metrics.version,
            metrics.committed,
            dict(metrics.ticker_ranges),
        )

    def _actions_with_bars(self, provider: Provider, job: JobMessage) -> Any:
        """The actions a bar job fetches beside its bars: None when the bars carry them, or
        when the key's plan has no actions endpoint (logged; the bars still load)."""
        if getattr(provider, "actions_on_bars", True) or not isinstance(provider, ActionSource):
            return None
        try:
            return provider.fetch_actions(
                list(job.tickers),
                exchange_mic=job.exchange_mic,
                date_from=job.date_from,
                date_to=job.date_to,
            )
        except PermanentError as exc:
            if exc.code != "actions-not-in-plan":
                raise
            log.warning("actions_unavailable", job_id=job.job_id, error=exc.message)
            return None

    def _run_actions_job(self, job: JobMessage, *, stop: threading.Event | None) -> JobResult:
        """An `actions` job: the corporate actions of its tickers and range, nothing else."""
        provider = self.provider(job.provider, job.provider_options)
        if not isinstance(provider, ActionSource):
            raise PermanentError(
                f"provider {job.provider!r} cannot list corporate actions", code="not-supported"
            )
        actions = provider.fetch_actions(
            list(job.tickers),
            exchange_mic=job.exchange_mic,
            date_from=job.date_from,
            date_to=job.date_to,
        )
        if stop is not None and stop.is_set():
            raise JobReleased
        with catalog.session_scope(self.engine) as session:
            app_id = catalog.job_app_id(session, uuid.UUID(job.job_id))
        written, rejected = lake.write_actions(self.lake_settings, actions, job_id=app_id)
        version = lake.actions_version(self.lake_settings)
        with catalog.session_scope(self.engine) as session:
            catalog.mark_job_succeeded(
                session,
                uuid.UUID(job.job_id),
                rows_written=written,
                rows_rejected=rejected,
                lake_version=version,
                outputs=[
                    {
                        "data_store_id": self._data_store(session),
                        "table_uri": self.lake_settings.table_uri(lake.ACTIONS_TABLE),
                        "table_name": lake.ACTIONS_TABLE,
                        "version": version,
                        "rows": written,
                        "partitions": [],
                    }
                ],
            )
        return JobResult(job.job_id, written, rejected, version, written > 0)
