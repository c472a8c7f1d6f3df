"""`stockdata demo`: the whole system on embedded defaults, with the bundled sample data."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path

import click

import catalog
from stockdata.cli import _context

#: The bundled histories and where they trade.
SAMPLES: tuple[tuple[str, str], ...] = (("MSFT", "XNAS"), ("GOOG", "XNAS"))


def sample_path(symbol: str) -> Path:
    return Path(str(resources.files("stockdata") / "samples" / f"{symbol}.csv"))


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
@click.option(
    "--synthetic",
    default=1,
    show_default=True,
    type=click.IntRange(0, 5000),
    help="Also backfill this many synthetic tickers (SYN0001…) over 2015–2017 on XNYS, "
    "so cross-sections and movers have a market to rank. SYN0001 splits 2:1 on 2015-12-17 "
    "and pays quarterly dividends: `adjust=` visibly matters.",
)
@click.pass_context
def demo(ctx: click.Context, port: int, host: str, no_serve: bool, synthetic: int) -> None:
    """Migrate, seed, load the sample histories (MSFT, GOOG), then serve the API."""
    from stockdata.cli._ingest import backfill, load

    engine = _context.engine()
    catalog.upgrade(engine)
    click.echo(f"catalog migrated to {catalog.current_revision(engine)}")
    with catalog.session_scope(engine) as session:
        seeded = catalog.seed_reference(session)
    click.echo(
        f"catalog seeded: {seeded.exchanges_inserted} new exchanges, "
        f"{seeded.tickers_inserted} new tickers"
    )
    for symbol, mic in SAMPLES:
        ctx.invoke(load, file=sample_path(symbol), ticker=symbol, mic=mic)
    click.echo(
        "note: the MSFT sample is split- and dividend-adjusted as shipped (no actions are "
        "recorded for it); GOOG is as traded (stockdata/samples/README.md)"
    )
    if synthetic:
        # ctx.invoke runs no option callbacks: pass the list `--tickers` would parse to
        tickers = [f"SYN{i:04d}" for i in range(1, synthetic + 1)]
        with catalog.session_scope(engine) as session:
            catalog.upsert_tickers(
                session,
                [{"exchange_mic": "XNYS", "symbol": t, "name": f"Synthetic {t}"} for t in tickers],
            )
        ctx.invoke(
            backfill,
            provider="synthetic",
            tickers=tickers,
            mic=None,
            date_from=dt.date(2015, 1, 1),
            date_to=dt.date(2017, 12, 29),
            inline=True,
            batch_size=100,
            concurrency=2,
        )
    if synthetic:
        click.echo(
            "adjustment: compare /v1/eod/SYN0001?from=2015-12-14&to=2015-12-18 with "
            "&adjust=splits and &adjust=all, or GET /v1/actions/SYN0001"
        )
    if no_serve:
        click.echo('demo ready: try `stockdata sql "select ticker, count(*) from eod group by 1"`')
        return
    click.echo(f"open http://{host}:{port}/docs (Ctrl-C stops)")
    _serve_in_fresh_process(host=host, port=port)


def _serve_in_fresh_process(*, host: str, port: int) -> None:
    """Serve from a new interpreter: the loads above started delta-rs's tokio runtime, which
    does not survive the fork of the server's worker processes."""
    command = [sys.executable, "-m", "stockdata", "serve", "--host", host, "--port", str(port)]
    server = subprocess.Popen(command)
    try:
        code = server.wait()
    except KeyboardInterrupt:
        server.send_signal(signal.SIGINT)
        code = server.wait()
    if code not in (0, -signal.SIGINT, 130):
        raise click.ClickException(f"the API server exited with status {code}")
