"""`stockdata export`: bars from the lake to one Parquet or CSV file, streamed in batches."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pyarrow as pa

from stockdata.errors import InvalidInputError

_SUFFIX = {".parquet": "parquet", ".csv": "csv"}


def _date(_ctx: Any, _param: Any, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date (YYYY-MM-DD)") from None


@click.command("export")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--ticker", "tickers", multiple=True, help="A ticker symbol (repeat for several; default: all)."
)
@click.option("--exchange", default=None, help="ISO 10383 MIC, e.g. XNAS.")
@click.option("--from", "date_from", callback=_date, help="First date (inclusive).")
@click.option("--to", "date_to", callback=_date, help="Last date (inclusive).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv"]),
    default=None,
    help="Default: from OUTPUT's suffix (.parquet or .csv).",
)
@click.option(
    "--adjust",
    type=click.Choice(["none", "splits", "all"]),
    default=None,
    help="Adjustment basis computed from the corporate actions (default: none, as traded).",
)
@click.option("--adjust-as-of", callback=_date, help="Only actions with an ex-date on or before.")
@click.option("--adjusted", is_flag=True, help="Alias of --adjust all.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def export(
    output: Path,
    tickers: tuple[str, ...],
    exchange: str | None,
    date_from: dt.date | None,
    date_to: dt.date | None,
    fmt: str | None,
    adjust: str | None,
    adjust_as_of: dt.date | None,
    adjusted: bool,
    force: bool,
) -> None:
    """Write bars (the API's columns) to OUTPUT: by ticker, exchange and date range.

    Reads the lake batch by batch, so memory stays flat however many rows there are; the file
    appears only when complete.
    """
    fmt = fmt or _SUFFIX.get(output.suffix.lower())
    if fmt is None:
        raise InvalidInputError(f"{output}: name a .parquet or .csv file, or pass --format")
    if output.exists() and not force:
        raise InvalidInputError(f"{output} exists; pass --force to replace it")
    if date_from is not None and date_to is not None and date_from > date_to:
        raise InvalidInputError(f"--from {date_from} is after --to {date_to}")
    if adjusted and adjust is not None:
        raise InvalidInputError("pass --adjust or its alias --adjusted, not both")
    basis = adjust or ("all" if adjusted else "none")
    if adjust_as_of is not None and basis == "none":
        raise InvalidInputError("--adjust-as-of needs --adjust splits or all")
    # Imported after the checks above: a typo answers before the API's imports load.
    from lake import LakeSettings
    from query_api import ApiSettings
    from query_api._data import Adjust, EodStore
    from query_api._respond import encode_batches

    mic = exchange.upper() if exchange else None
    store = EodStore(LakeSettings(), ApiSettings(api_serving=False, api_lake_poll_seconds=0))
    try:
        version = store.current_version()
        streams = []
        if tickers:
            for symbol in dict.fromkeys(t.upper() for t in tickers):
                resolved = store.resolve(symbol, mic, version)
                streams.append(
                    store.stream_bars(
                        symbol=symbol,
                        exchange=resolved,
                        version=version,
                        date_from=date_from,
                        date_to=date_to,
                        adjust=Adjust(basis, adjust_as_of),  # type: ignore[arg-type]
                    )
                )
        else:
            streams.append(
                store.stream_bars(
                    symbol=None,
                    exchange=mic,
                    version=version,
                    date_from=date_from,
                    date_to=date_to,
                    adjust=Adjust(basis, adjust_as_of),  # type: ignore[arg-type]
                )
            )
        written = 0

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal written
            for batch in itertools.chain.from_iterable(s.batches() for s in streams):
                written += batch.num_rows
                yield batch

        partial = output.with_name(f".{output.name}.partial")
        output.parent.mkdir(parents=True, exist_ok=True)
        try:
            with partial.open("wb") as fh:
                for chunk in encode_batches(fmt, streams[0].schema, batches()):  # type: ignore[arg-type]
                    fh.write(chunk)
            os.replace(partial, output)
        finally:
            partial.unlink(missing_ok=True)
    finally:
        store.close()
    click.echo(f"wrote {written} rows to {output} ({fmt}, lake version {version})")
