"""Alembic, driven from code: the `migrations/` package holds the environment and revisions."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

import migrations
from stockdata.errors import ConfigurationError


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config pointing at the installed `migrations` package, bound to `engine`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("path_separator", "os")
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def check_revision(engine: Engine) -> None:
    """Refuse a catalog that is not at this code's head revision, saying what to run."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    if current is None:
        raise ConfigurationError("the catalog has no schema: run `stockdata db upgrade`")
    raise ConfigurationError(
        f"the catalog is at revision {current}, this code needs {head}: run `stockdata db upgrade`"
    )
