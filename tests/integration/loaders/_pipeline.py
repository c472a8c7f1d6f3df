"""Shared helpers of the loader pipeline tests: the Marketstack stub with real MSFT history,
providers pointed at it, queues of both backends, and readers of the lake."""

from __future__ import annotations

import csv
import datetime as dt
import threading
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

import lake
import loaders
from loaders.providers import ProviderSettings
from tests._services import Azurite
from tests.stubs.marketstack import MarketstackStub, bars_from_csv

#: A distinctive key: the tests assert it never reaches a log line or the catalog.
KEY = "sk-live-SECRET-4242"
MSFT_ROWS = 7983

FAST = loaders.WorkerOptions(
    visibility_timeout=30, renew_every=5, backoff_base=0.0, backoff_max=0.0, poll_interval=0.05
)


def stub(samples: Path, symbols: dict[str, str] | None = None) -> MarketstackStub:
    """A stub serving MSFT's real history (and copies of it under other `symbols`)."""
    bars = bars_from_csv(samples / "MSFT.csv", "MSFT", "XNAS")
    for alias in symbols or {}:
        bars[alias] = bars["MSFT"]
    return MarketstackStub(bars, api_key=KEY)


def provider_settings(server: MarketstackStub, **overrides: Any) -> ProviderSettings:
    values: dict[str, Any] = {
        "marketstack_base_url": server.base_url,
        "marketstack_api_key": KEY,
        "provider_backoff_base_seconds": 0.01,
        "provider_backoff_max_seconds": 0.2,
        "provider_timeout_seconds": 2.0,
    }
    return ProviderSettings(**(values | overrides))


def queue_name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def open_queue(kind: str, *, engine: Engine, azurite: Azurite | None, name: str) -> loaders.Queue:
    if kind == "postgres":
        return loaders.open_queue(loaders.QueueSettings(queue_name=name), engine=engine)
    assert azurite is not None
    settings = loaders.QueueSettings(
        queue_backend="azure",
        queue_name=name,
        queue_azure_connection_string=azurite.connection_string,
    )
    return loaders.open_queue(settings)


def run_pool(
    engine: Engine,
    make_queue: Any,
    lake_settings: lake.LakeSettings,
    settings: ProviderSettings,
    *,
    concurrency: int,
    options: loaders.WorkerOptions = FAST,
) -> loaders.WorkerStats:
    """`concurrency` worker threads, each with its own queue client, until the queue is empty."""

    def make(stop: threading.Event) -> loaders.Worker:
        return loaders.Worker(
            engine=engine,
            queue=make_queue(),
            lake_settings=lake_settings,
            providers=lambda name, opts: loaders.get_provider(name, settings, **opts),
            options=options,
            stop=stop,
        )

    return loaders.run_workers(make, concurrency=concurrency, until_empty=True)


def csv_closes(path: Path) -> dict[dt.date, float]:
    with path.open() as f:
        return {dt.date.fromisoformat(r["Date"]): float(r["Close"]) for r in csv.DictReader(f)}


def lake_closes(lake_settings: lake.LakeSettings, ticker: str) -> dict[dt.date, float]:
    con = lake.connect(lake_settings)
    try:
        rows = con.execute(
            "SELECT trade_date, close FROM eod WHERE ticker = ? ORDER BY trade_date", [ticker]
        ).fetchall()
    finally:
        con.close()
    return dict(rows)


def lake_count(lake_settings: lake.LakeSettings, where: str = "true") -> tuple[int, int]:
    """(rows, distinct (ticker, trade_date)) in eod_prices."""
    con = lake.connect(lake_settings)
    try:
        n, keys = con.execute(
            f"SELECT count(*), count(DISTINCT (ticker, trade_date)) FROM eod WHERE {where}"
        ).fetchone() or (0, 0)
    finally:
        con.close()
    return int(n), int(keys)
