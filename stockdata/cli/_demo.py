"""`stockdata demo`: the whole system on embedded defaults, with the bundled sample data."""

from __future__ import annotations

import click

import catalog
from stockdata.cli import _context


@click.command()
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port the API listens on.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--no-serve", is_flag=True, help="Set up and load the samples, then exit.")
def demo(port: int, host: str, no_serve: bool) -> None:
    """Migrate, seed, load the sample histories (MSFT, GOOG), then serve the API."""
    engine = _context.engine()
    catalog.upgrade(engine)
    click.echo(f"catalog migrated to {catalog.current_revision(engine)}")
    with catalog.session_scope(engine) as session:
        seeded = catalog.seed_reference(session)
    click.echo(
        f"catalog seeded: {seeded.exchanges_inserted} new exchanges, "
        f"{seeded.tickers_inserted} new tickers"
    )
    if no_serve:
        click.echo("demo ready (--no-serve: not starting the API)")
        return
    raise click.ClickException("the API is not part of this build yet: use --no-serve")
