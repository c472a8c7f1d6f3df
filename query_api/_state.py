"""What the app factory builds once per process and the handlers share (app.state.services)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from catalog import DatabaseSettings, create_engine
from query_api._data import EodStore
from query_api._metrics import ApiMetrics
from query_api._respond import Responder
from query_api._settings import ApiSettings
from stockdata.errors import StockDataError, TransientError
from stockdata.logs import get_logger, scrub_text

log = get_logger(__name__)


class Flags(Protocol):
    """Feature flags: non-blocking reads (the SDK refreshes in the background)."""

    def is_enabled(self, name: str) -> bool: ...

    def close(self) -> None: ...


class Authenticator(Protocol):
    """Turns request headers into a principal, or raises AuthenticationError/PermissionDeniedError."""

    async def authenticate(self, headers: Mapping[str, str]) -> Any: ...


class AllEnabled:
    """Flags when no flag provider is configured: every endpoint on."""

    def is_enabled(self, name: str) -> bool:
        return True

    def close(self) -> None:
        return None


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
                self._engine = create_engine(self._settings)
            except StockDataError as exc:
                self._error, self._failed_at = exc, time.monotonic()
                log.warning("catalog_unavailable", error=scrub_text(exc.message))
                raise TransientError(
                    f"the catalog is unavailable: {exc.message}",
                    code="catalog-unavailable",
                    retry_after=self._retry,
                ) from exc
            return self._engine

    def close(self) -> None:
        if self._engine is not None and self._owned:
            self._engine.dispose()


@dataclass
class Services:
    settings: ApiSettings
    store: EodStore
    catalog: CatalogAccess
    metrics: ApiMetrics
    responder: Responder
    flags: Flags
    authenticator: Authenticator | None
    sandbox: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
