"""What the app factory builds once per process and the handlers share (app.state.services)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from catalog import DatabaseSettings, database_url, session_scope
from query_api._auth import Authenticator
from query_api._data import EodStore
from query_api._flags import FeatureFlags
from query_api._hardening import SqlGate
from query_api._metrics import ApiMetrics
from query_api._respond import Responder
from query_api._sandbox import SqlSandbox
from query_api._settings import ApiSettings
from stockdata.errors import StockDataError, TransientError
from stockdata.logs import get_logger, scrub_text

log = get_logger(__name__)


class CatalogAccess:
    """The catalog engine, built lazily and retried at a bounded rate while Postgres is down."""

    def __init__(
        self,
        settings: DatabaseSettings | None,
        *,
        engine: Engine | None = None,
        retry_seconds: float = 5.0,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._owned = engine is None
        self._retry = retry_seconds
        self._failed_at = 0.0
        self._error: StockDataError | None = None
        self._lock = threading.Lock()

    def engine(self) -> Engine:
        if self._engine is not None:
            return self._engine
        with self._lock:
            if self._engine is not None:
                return self._engine
            if self._settings is None:
                raise TransientError("no catalog is configured", code="catalog-unavailable")
            if self._error is not None and time.monotonic() - self._failed_at < self._retry:
                raise TransientError(
                    f"the catalog is unavailable: {self._error.message}",
                    code="catalog-unavailable",
                    retry_after=self._retry,
                )
            try:
                self._engine = sa.create_engine(
                    database_url(self._settings),
                    pool_size=self._settings.database_pool_size,
                    pool_pre_ping=True,
                    connect_args={"connect_timeout": self._settings.database_connect_timeout},
                )
            except StockDataError as exc:
                self._error, self._failed_at = exc, time.monotonic()
                log.warning("catalog_unavailable", error=scrub_text(exc.message))
                raise TransientError(
                    f"the catalog is unavailable: {exc.message}",
                    code="catalog-unavailable",
                    retry_after=self._retry,
                ) from exc
            return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A catalog session; an unreachable database becomes a 503 `catalog-unavailable`."""
        try:
            with session_scope(self.engine()) as session:
                yield session
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise unavailable(exc) from exc

    def close(self) -> None:
        if self._engine is not None and self._owned:
            self._engine.dispose()


def unavailable(exc: Exception) -> TransientError:
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(exc).__name__
    return TransientError(
        f"the catalog is unavailable: {scrub_text(first)}", code="catalog-unavailable"
    )


@dataclass
class Services:
    settings: ApiSettings
    store: EodStore
    catalog: CatalogAccess
    metrics: ApiMetrics
    responder: Responder
    flags: FeatureFlags
    authenticator: Authenticator
    sandbox: SqlSandbox | None = None
    sql_gate: SqlGate | None = None
    extras: dict[str, Any] = field(default_factory=dict)
