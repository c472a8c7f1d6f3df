"""`stockdata db`: Alembic migrations of the catalog."""

from __future__ import annotations

import click

import catalog
from catalog._migrate import alembic_config
from stockdata.cli import _context


@click.group()
def db() -> None:
    """Catalog database migrations (Alembic)."""


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Migrate the catalog up to REVISION (default: head)."""
    catalog.upgrade(_context.engine(), revision)
    click.echo(f"catalog at revision {catalog.current_revision(_context.engine())}")


@db.command()
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Migrate the catalog down to REVISION (`base` removes every table)."""
    catalog.downgrade(_context.engine(), revision)
    click.echo(f"catalog at revision {catalog.current_revision(_context.engine()) or 'base'}")


@db.command()
def current() -> None:
    """Print the catalog's current revision and the code's head revision."""
    now = catalog.current_revision(_context.engine())
    head = catalog.head_revision()
    click.echo(f"current: {now or 'base'}\nhead:    {head}")
    if now != head:
        raise click.ClickException("the catalog is not at head: run `stockdata db upgrade`")


@db.command()
@click.option("-m", "--message", required=True, help="What the revision changes.")
@click.option(
    "--autogenerate/--empty",
    default=True,
    show_default=True,
    help="Diff the models against the database to fill the revision.",
)
def revision(message: str, autogenerate: bool) -> None:
    """Create a new revision file in migrations/versions (for developers)."""
    from alembic import command

    command.revision(alembic_config(_context.engine()), message=message, autogenerate=autogenerate)
