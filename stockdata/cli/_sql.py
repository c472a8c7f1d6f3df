"""`stockdata sql`: ad-hoc SQL over the lake's views (`eod`, `eod_deltas`, `eod_rejects`)."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import sys
from typing import Any

import click
import duckdb

import lake
from stockdata.errors import InvalidInputError


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def _text(value: Any) -> str:
    return "" if value is None else str(_plain(value))


def _table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    cells = [[_text(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join([line, rule, *body])


@click.command("sql")
@click.argument("query")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="table: aligned columns (a single value prints bare); csv with a header; json lines.",
)
@click.option(
    "--as-of",
    default=None,
    metavar="VERSION|TIMESTAMP",
    help="Query eod as of a table version or an ISO timestamp (time travel).",
)
def sql(query: str, fmt: str, as_of: str | None) -> None:
    """Run QUERY on the lake's views and print the result.

    Views: eod (as traded), eod_deltas, eod_rejects, corporate_actions, action_factors,
    eod_split_adjusted and eod_adjusted (docs/lake.md)."""
    settings = lake.LakeSettings()
    version = lake.version_as_of(settings, as_of) if as_of is not None else None
    con = lake.connect(settings, version=version)
    try:
        result = con.execute(query)
    except duckdb.Error as exc:
        raise InvalidInputError(str(exc).splitlines()[0], code="sql") from exc
    if result.description is None:
        return
    columns = [d[0] for d in result.description]
    # Through Arrow: timezone-aware timestamps convert without pytz.
    arrow = result.to_arrow_table()
    rows = [tuple(r.values()) for r in arrow.to_pylist()] if arrow.num_columns else []
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_text(v) for v in row] for row in rows])
    elif fmt == "json":
        for row in rows:
            click.echo(json.dumps({c: _plain(v) for c, v in zip(columns, row, strict=True)}))
    elif len(columns) == 1 and len(rows) == 1:
        click.echo(_text(rows[0][0]))
    else:
        click.echo(_table(columns, rows))
