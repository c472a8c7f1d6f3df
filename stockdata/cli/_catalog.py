"""`stockdata catalog`: reference data and API keys."""

from __future__ import annotations

import json

import click

import catalog
from stockdata.cli import _context
from stockdata.errors import InvalidInputError
from stockdata.symbols import check_symbol


@click.group("catalog")
def catalog_group() -> None:
    """Exchanges, tickers and API keys."""


@catalog_group.command()
@click.option(
    "--source",
    default="calendars",
    show_default=True,
    help="Where exchanges and tickers come from: `calendars` (exchange-calendars and "
    "the sample tickers) or a provider name such as `marketstack`.",
)
@click.option("--no-samples", is_flag=True, help="Do not add the sample tickers (MSFT, GOOG).")
def seed(source: str, no_samples: bool) -> None:
    """Upsert exchanges, currencies and tickers. Re-running changes nothing."""
    if source != "calendars":
        from loaders.providers import ProviderSettings, get_provider, sync_catalog

        provider = get_provider(source, ProviderSettings())
        with catalog.session_scope(_context.engine()) as session:
            synced = sync_catalog(session, provider)
        click.echo(str(synced))
        return
    with catalog.session_scope(_context.engine()) as session:
        result = catalog.seed_reference(session, sample_tickers=not no_samples)
    click.echo(
        f"exchanges: {result.exchanges_inserted} new, {result.exchanges_updated} changed; "
        f"tickers: {result.tickers_inserted} new, {result.tickers_updated} changed"
    )


@catalog_group.command("exchanges")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def exchanges(as_json: bool) -> None:
    """List exchanges."""
    with catalog.session_scope(_context.engine()) as session:
        rows = [
            {
                "mic": e.mic,
                "name": e.name,
                "timezone": e.timezone,
                "currency": e.currency_code,
                "active": e.active,
            }
            for e in catalog.list_exchanges(session)
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['mic']:<6}{r['timezone']:<24}{r['currency'] or '-':<5}{r['name']}")


@catalog_group.command("tickers")
@click.option("--exchange", "mic", help="Only tickers of this exchange (MIC).")
@click.option("--query", "-q", help="Symbol prefix or part of the name.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
def tickers(mic: str | None, query: str | None, limit: int) -> None:
    """List tickers."""
    with catalog.session_scope(_context.engine()) as session:
        found, total = catalog.search_tickers(session, query=query, exchange_mic=mic, limit=limit)
        for t, ex in found:
            click.echo(
                f"{t.symbol:<10}{ex:<6}{t.first_ingested or '-'!s:<12}"
                f"{t.last_ingested or '-'!s:<12}{t.name or ''}"
            )
    click.echo(f"({len(found)} of {total})")


@catalog_group.command("add-ticker")
@click.argument("symbol")
@click.option("--exchange", "mic", required=True, help="Exchange MIC, e.g. XNAS.")
@click.option("--name", help="Company name.")
@click.option("--currency", help="ISO 4217 code, e.g. USD.")
@click.option("--inactive", is_flag=True, help="Add the ticker switched off for daily loads.")
def add_ticker(
    symbol: str, mic: str, name: str | None, currency: str | None, inactive: bool
) -> None:
    """Add or update one ticker."""
    try:
        symbol = check_symbol(symbol)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.message, param_hint="'SYMBOL'") from None
    row = {
        "exchange_mic": mic.upper(),
        "symbol": symbol,
        "name": name,
        "currency_code": currency.upper() if currency else None,
        "active": not inactive,
    }
    with catalog.session_scope(_context.engine()) as session:
        result = catalog.upsert_tickers(session, [row])
    click.echo(f"{symbol.upper()}@{mic.upper()}: {'added' if result.inserted else 'updated'}")


@catalog_group.group("api-key")
def api_key() -> None:
    """Create, list and revoke API keys (used when STOCKDATA_AUTH_MODE=api-key)."""


@api_key.command("create")
@click.option("--name", required=True, help="Who or what the key is for.")
@click.option(
    "--role",
    type=click.Choice([r.value for r in catalog.Role]),
    default="reader",
    show_default=True,
    help="reader: EoD and deltas; analyst: + SQL; admin: everything.",
)
def api_key_create(name: str, role: str) -> None:
    """Create a key. The raw key is printed once and never stored."""
    with catalog.session_scope(_context.engine()) as session:
        key, raw = catalog.create_api_key(session, name=name, role=catalog.Role(role))
        key_id = key.id
    click.echo(f"id: {key_id}\nrole: {role}\nkey: {raw}\n(store it now: it cannot be shown again)")


@api_key.command("list")
def api_key_list() -> None:
    """List keys (never their secrets)."""
    with catalog.session_scope(_context.engine()) as session:
        for k in catalog.list_api_keys(session):
            state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
            click.echo(f"{k.id:<5}{k.prefix}…  {k.role.value:<8}{state:<20}{k.name}")


@api_key.command("revoke")
@click.argument("key_id", type=int)
def api_key_revoke(key_id: int) -> None:
    """Revoke key KEY_ID; requests with it are refused from then on."""
    with catalog.session_scope(_context.engine()) as session:
        catalog.revoke_api_key(session, key_id)
    click.echo(f"revoked key {key_id}")
