"""Alembic on a real Postgres: one head, up from empty, down to base and up again, no drift."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

import catalog
from catalog._migrate import alembic_config


@pytest.fixture
def scratch_engine(pg_url: str) -> Iterator[Engine]:
    """A separate, empty database on the session's Postgres."""
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS migrations_scratch"))
        conn.execute(sa.text("CREATE DATABASE migrations_scratch"))
    url = sa.make_url(pg_url).set(database="migrations_scratch")
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE migrations_scratch"))
    admin.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_there_is_exactly_one_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads == [catalog.head_revision()]
    assert len(heads) == 1


def test_upgrade_downgrade_upgrade_round_trip(scratch_engine: Engine) -> None:
    assert catalog.current_revision(scratch_engine) is None
    catalog.upgrade(scratch_engine)
    assert catalog.current_revision(scratch_engine) == catalog.head_revision()
    expected = {t.name for t in catalog.Base.metadata.sorted_tables}
    assert _tables(scratch_engine) == expected | {"alembic_version"}

    catalog.downgrade(scratch_engine, "base")
    assert catalog.current_revision(scratch_engine) is None
    assert _tables(scratch_engine) == {"alembic_version"}

    catalog.upgrade(scratch_engine)
    assert _tables(scratch_engine) == expected | {"alembic_version"}


def test_models_match_the_migrated_schema(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        diff = compare_metadata(ctx, catalog.Base.metadata)
    assert diff == []
