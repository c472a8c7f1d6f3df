"""Lazily built, per-process parts shared by the CLI commands."""

from __future__ import annotations

import functools

from sqlalchemy.engine import Engine

from catalog import DatabaseSettings, create_engine


@functools.lru_cache(maxsize=1)
def database_settings() -> DatabaseSettings:
    return DatabaseSettings()


@functools.lru_cache(maxsize=1)
def engine() -> Engine:
    """The catalog engine (starting the embedded Postgres when no URL is configured)."""
    return create_engine(database_settings())
