"""Session-scoped real services, function-scoped cleanup."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

import catalog
from tests import _services

SAMPLES = Path(__file__).resolve().parent.parent / "stockdata" / "samples"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a real, empty Postgres started for this test session."""
    with _services.embedded_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """An engine on the session's Postgres with the catalog migrated to head."""
    engine = sa.create_engine(pg_url, pool_size=10)
    catalog.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def db(pg_engine: Engine) -> Iterator[Engine]:
    """The migrated catalog, emptied after each test."""
    yield pg_engine
    tables = ", ".join(t.name for t in catalog.Base.metadata.sorted_tables)
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def seeded(db: Engine) -> Engine:
    """The catalog with the reference exchanges and the sample tickers."""
    with catalog.session_scope(db) as session:
        catalog.seed_reference(session)
    return db


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_services.Azurite]:
    """A real Azurite (Blob + Queue) for this test session."""
    with _services.azurite(tmp_path_factory.mktemp("azurite")) as service:
        yield service


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES
