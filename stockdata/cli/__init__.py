"""The `stockdata` command: the composition root that wires settings, catalog, lake and loaders.

Each part contributes a subcommand group in its own module here; groups load lazily so
`stockdata --help` stays fast and a broken optional part cannot break `stockdata db`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import sys
import traceback
from typing import Any

import click
import pydantic

from stockdata import __version__
from stockdata.errors import StockDataError
from stockdata.logs import LOG_JSON_ENV, LOG_LEVEL_ENV, configure_logging, scrub_text

#: group name -> (module, attribute, one-line help)
_GROUPS: dict[str, tuple[str, str, str]] = {
    "db": ("stockdata.cli._db", "db", "Catalog database migrations (Alembic)."),
    "catalog": ("stockdata.cli._catalog", "catalog_group", "Exchanges, tickers and API keys."),
    "ingest": ("stockdata.cli._ingest", "ingest", "Load bars: enqueue, work, backfill, daily."),
    "lake": ("stockdata.cli._lake", "lake", "Delta tables: info, optimize, vacuum, duckdb-init."),
    "sql": ("stockdata.cli._sql", "sql", "Run ad-hoc SQL over the lake's views."),
    "export": ("stockdata.cli._export", "export", "Write bars to a Parquet or CSV file."),
    "serve": ("stockdata.cli._serve", "serve", "Serve the REST API."),
    "demo": ("stockdata.cli._demo", "demo", "Run the whole system embedded, with sample data."),
    "settings": ("stockdata.cli._settings", "settings", "Show every STOCKDATA_ setting."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in _GROUPS if self._available(name)]

    @staticmethod
    def _available(name: str) -> bool:
        module = _GROUPS[name][0]
        return importlib.util.find_spec(module) is not None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _GROUPS or not self._available(cmd_name):
            return None
        module, attr, _ = _GROUPS[cmd_name]
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, _GROUPS[n][2]) for n in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stockdata")
@click.option(
    "--log-level",
    default="INFO",
    envvar="STOCKDATA_LOG_LEVEL",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Minimum level of log events written to stderr.",
)
@click.option(
    "--log-json/--log-text",
    default=None,
    envvar="STOCKDATA_LOG_JSON",
    help="Force JSON or text logs (default: JSON unless stderr is a terminal).",
)
def cli(log_level: str, log_json: bool | None) -> None:
    """stockdata: an end-of-day stock data lakehouse (Delta Lake, Postgres catalog, DuckDB API)."""
    configure_logging(level=log_level, json=log_json)
    # Processes this command starts (the API server's workers) log the same way.
    os.environ[LOG_LEVEL_ENV] = log_level.upper()
    if log_json is not None:
        os.environ[LOG_JSON_ENV] = "true" if log_json else "false"


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {scrub_text(message)}", err=True)
    sys.exit(code)


def _catalog_behind(exc: BaseException) -> bool:
    """A SQL error saying a table or column the code expects is missing (no migration)."""
    orig = getattr(exc, "orig", None)
    return type(orig).__name__ in {"UndefinedTable", "UndefinedColumn"}


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    sys.exit(143)


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: every expected failure becomes one line and a non-zero exit."""
    # SIGTERM exits through SystemExit, so exit hooks run (the embedded Postgres stops when its
    # last user exits); commands that must finish work in hand install their own handler.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return cli.main(args=argv, prog_name="stockdata", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        _fail(f"invalid setting STOCKDATA_{where.upper()}: {first['msg']}", 2)
    except StockDataError as exc:
        _fail(exc.message, 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # an unexpected bug: still one line, traceback on request
        if _catalog_behind(exc):
            _fail("the catalog's schema is missing or behind this code: run `stockdata db upgrade`")
        if os.environ.get("STOCKDATA_DEBUG"):
            traceback.print_exc()
        _fail(f"unexpected {type(exc).__name__}: {exc} (set STOCKDATA_DEBUG=1 for a traceback)", 70)
    return None
