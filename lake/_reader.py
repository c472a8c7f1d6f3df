"""DuckDB over the lake: extensions from pip by path (portable scripts load them by name), pinned snapshots, the `eod` views."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Collection
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from deltalake import DeltaTable

from lake._adjust import views_sql as adjusted_views_sql
from lake._calendar import sessions_through
from lake._schema import ACTIONS_TABLE, EOD_TABLE, REJECTS_TABLE
from lake._settings import Granularity, LakeSettings, _sql_literal
from lake._write import open_table
from stockdata.errors import ConfigurationError, NotFoundError

#: Session windows of the precomputed deltas in the `eod_deltas` view.
DELTA_WINDOWS = (1, 5, 21, 63, 252)


def extension_path(name: str) -> Path:
    """The `.duckdb_extension` file shipped by the `duckdb-extension-<name>` pip package."""
    import importlib

    try:
        module = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError as exc:
        raise ConfigurationError(
            f"the DuckDB {name} extension is missing: pip install duckdb-extension-{name}=="
            f"{duckdb.__version__}"
        ) from exc
    version = f"v{duckdb.__version__}"
    candidates = sorted(Path(next(iter(module.__path__))).rglob("*.duckdb_extension"))
    exact = [p for p in candidates if p.parent.name == version]
    if not (exact or candidates):
        raise ConfigurationError(f"duckdb-extension-{name} ships no extension file")
    if not exact:
        raise ConfigurationError(
            f"duckdb-extension-{name} does not match DuckDB {duckdb.__version__}: found "
            f"{[p.parent.name for p in candidates]}"
        )
    return exact[0]


def _deltas_sql() -> str:
    cols = []
    for n in DELTA_WINDOWS:
        lag = f"lag(close, {n}) OVER w"
        cols.append(f"{lag} AS close_{n}_ago")
        cols.append(f"close - {lag} AS change_{n}")
        cols.append(f"round((close / {lag} - 1) * 100, 6) AS pct_change_{n}")
    return (
        "SELECT ticker, exchange_mic, trade_date, close, adj_close, "
        "lag(close) OVER w AS prev_close, "
        + ", ".join(cols)
        + " FROM eod WINDOW w AS (PARTITION BY ticker, exchange_mic ORDER BY trade_date)"
    )


def cross_section_sql(
    day: dt.date, *, exchange_mic: str, granularity: Granularity = "year"
) -> str | None:
    """SQL for every ticker's close on `day` and its 1/5/21/63/252-session changes.

    Reads `eod`, pruned to the partitions that hold the six dates (the API answers
    cross-sections from the serving form; this is the DuckDB path). The session k before
    `day` comes from the exchange's trading calendar; a ticker without a bar on that session
    gets NULL there (eod_deltas instead takes the ticker's k-th previous row). None when
    `day` is not a session.
    """
    sessions = sessions_through(exchange_mic, day)
    if len(sessions) == 0 or sessions[-1] != np.datetime64(day, "D"):
        return None
    dates = {0: day}
    for k in DELTA_WINDOWS:
        if len(sessions) > k:
            dates[k] = sessions[-1 - k].astype(dt.date)
    fmt = "%Y" if granularity == "year" else "%Y-%m"
    periods = ", ".join(sorted({_sql_literal(d.strftime(fmt)) for d in dates.values()}))
    wanted = ", ".join(f"DATE '{d}'" for d in dates.values())
    picks = ", ".join(
        f"max(close) FILTER (WHERE trade_date = DATE '{d}') AS c{k}" for k, d in dates.items()
    )
    cols = []
    for k in DELTA_WINDOWS:
        prev = f"c{k}" if k in dates else "CAST(NULL AS DOUBLE)"
        cols.append(f"{prev} AS close_{k}_ago")
        cols.append(f"c0 - {prev} AS change_{k}")
        cols.append(f"round((c0 / {prev} - 1) * 100, 6) AS pct_change_{k}")
    return (
        f"SELECT ticker, exchange_mic, DATE '{day}' AS trade_date, c0 AS close, "
        + ", ".join(cols)
        + f" FROM (SELECT ticker, exchange_mic, {picks} FROM eod "
        f"WHERE period IN ({periods}) AND exchange_mic = {_sql_literal(exchange_mic)} "
        f"AND trade_date IN ({wanted}) GROUP BY ticker, exchange_mic) "
        "WHERE c0 IS NOT NULL ORDER BY ticker"
    )


def views_sql(
    settings: LakeSettings,
    *,
    pin: bool = True,
    version: int | None = None,
    tables: Collection[str] | None = None,
) -> list[str]:
    """SQL that attaches the lake's tables and defines `eod`, `eod_deltas`, `eod_rejects`,
    `corporate_actions` and the adjusted views (`action_factors`, `eod_split_adjusted`,
    `eod_adjusted`: lake/_adjust.py).

    `tables` limits it to those tables (and their views); None means all three.
    """
    stmts = []
    views = []
    for alias, name, view in (
        ("lake_eod", EOD_TABLE, "eod"),
        ("lake_rejects", REJECTS_TABLE, "eod_rejects"),
        ("lake_actions", ACTIONS_TABLE, "corporate_actions"),
    ):
        if tables is not None and name not in tables:
            continue
        options = ["TYPE delta"]
        if pin:
            options.append("PIN_SNAPSHOT")
        if version is not None and name == EOD_TABLE:
            options.append(f"VERSION {int(version)}")
        stmts.append(
            f"ATTACH IF NOT EXISTS {_sql_literal(settings.table_uri(name))} AS {alias} "
            f"({', '.join(options)})"
        )
        views.append(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {alias}")
    stmts.extend(views)
    if tables is None or EOD_TABLE in tables:
        stmts.append(f"CREATE OR REPLACE VIEW eod_deltas AS {_deltas_sql()}")
        if tables is None or ACTIONS_TABLE in tables:
            stmts.extend(adjusted_views_sql())
    return stmts


#: The DuckDB release line the lake's reader and `duckdb-init` scripts are made for.
DUCKDB_SERIES = "1.5"


def init_sql(settings: LakeSettings, *, tables: Collection[str] | None = None) -> str:
    """A script for any DuckDB 1.5.x that sets up the same views (`lake duckdb-init`).

    Portable: extensions are loaded by name (the script says how to get them, from DuckDB's
    core repository or offline from PyPI), so it holds no path of this machine. `tables`
    names the tables that exist (None: all three); a missing one is left out with a comment,
    since printing must create nothing. Never contains a secret: a connection-string
    credential is printed as a placeholder.
    """
    release = duckdb.__version__
    extensions = ["delta", "azure"] if settings.is_azure else ["delta"]
    lines = [
        "-- stockdata lake views. Run with: duckdb -init lake.sql",
        f"-- Needs DuckDB {DUCKDB_SERIES}.x (this project runs {release}) and its "
        + " and ".join(extensions)
        + " extension"
        + ("s" if len(extensions) > 1 else "")
        + ". Install them once, either",
        "--   from DuckDB's core repository (network): "
        + " ".join(f"INSTALL {e} FROM core;" for e in extensions),
        "--   or offline from PyPI: pip install "
        + " ".join(f"duckdb-extension-{e}=={release}" for e in extensions)
        + ", then",
        *(
            f"--   INSTALL '<site-packages>/duckdb_extension_{e}/extensions/v{release}/"
            f"{e}.duckdb_extension';"
            for e in extensions
        ),
        "SELECT CASE WHEN NOT starts_with(version(), 'v" + DUCKDB_SERIES + ".') THEN "
        "error('this script needs DuckDB " + DUCKDB_SERIES + ".x, not ' || version()) "
        "END AS duckdb_version_check;",
        "SET autoinstall_known_extensions = false;",
        "SET autoload_known_extensions = false;",
        *(f"LOAD {e};" for e in extensions),
    ]
    if settings.is_azure:
        secret = settings.duckdb_secret_sql() or ""
        if "CONNECTION_STRING" in secret:
            # Never print the key: the user pastes their own connection string here.
            lines.append(
                "CREATE OR REPLACE SECRET stockdata_lake (TYPE azure, CONNECTION_STRING "
                "'<your storage connection string>');"
            )
        elif secret:
            lines.append(secret + ";")
        emulator = settings.emulator_blob_url()
        if emulator:
            lines.insert(0, f"-- Azurite: export AZURITE_BLOB_STORAGE_URL={emulator} first")
    for name in (EOD_TABLE, REJECTS_TABLE, ACTIONS_TABLE):
        if tables is not None and name not in tables:
            lines.append(
                f"-- {name}: no table yet at {settings.table_uri(name)}; its view is left out "
                "(run duckdb-init again once it exists)"
            )
    lines.append("SET parquet_metadata_cache = true;")
    lines.extend(s + ";" for s in views_sql(settings, tables=tables))
    return "\n".join(lines) + "\n"


def connect(
    settings: LakeSettings,
    *,
    pin: bool = True,
    version: int | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake's views. Fails with NotFoundError if there is no lake."""
    if open_table(settings, EOD_TABLE) is None:
        raise NotFoundError(
            f"no eod_prices table at {settings.table_uri(EOD_TABLE)}: load data first "
            "(`stockdata ingest load` or `stockdata demo --no-serve`)"
        )
    from lake._write import ensure_table

    ensure_table(settings, REJECTS_TABLE)
    ensure_table(settings, ACTIONS_TABLE)
    config: dict[str, str | bool | int | float | list[str]] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_unsigned_extensions": False,
    }
    if threads is not None:
        config["threads"] = threads
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(config=config)
    con.execute(f"LOAD {_sql_literal(str(extension_path('delta')))}")
    if settings.is_azure:
        emulator = settings.emulator_blob_url()
        if emulator:
            os.environ["AZURITE_BLOB_STORAGE_URL"] = emulator
        con.execute(f"LOAD {_sql_literal(str(extension_path('azure')))}")
        secret = settings.duckdb_secret_sql()
        if secret:
            con.execute(secret)
    con.execute("SET GLOBAL parquet_metadata_cache = true")  # cursors inherit GLOBAL only
    for stmt in views_sql(settings, pin=pin, version=version):
        con.execute(stmt)
    return con


class LakeReader:
    """A pinned connection that notices a new table version cheaply and re-attaches.

    `connection()` checks the Delta log at most every `poll_seconds`; readers share one
    connection per version and take a cursor each (`con.cursor()` is thread-safe to create).
    """

    def __init__(
        self, settings: LakeSettings, *, poll_seconds: float = 5.0, threads: int | None = None
    ) -> None:
        self._settings = settings
        self._poll = poll_seconds
        self._threads = threads
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._version: int | None = None
        self._actions_version: int | None = None
        self._checked = 0.0
        self._table: DeltaTable | None = None
        self._actions: DeltaTable | None = None

    @property
    def version(self) -> int | None:
        return self._version

    @property
    def actions_version(self) -> int | None:
        """The `corporate_actions` version the connection's views read."""
        return self._actions_version

    def latest_version(self) -> int | None:
        if self._table is None:
            self._table = open_table(self._settings, EOD_TABLE)
            if self._table is None:
                return None
        else:
            self._table.update_incremental()
        return int(self._table.version())

    def _latest_actions_version(self) -> int | None:
        if self._actions is None:
            self._actions = open_table(self._settings, ACTIONS_TABLE)
            if self._actions is None:
                return None
        else:
            self._actions.update_incremental()
        return int(self._actions.version())

    def connection(self) -> duckdb.DuckDBPyConnection:
        """A cursor on the connection of the latest versions: a new eod_prices or
        corporate_actions version re-attaches (actions change without new bars)."""
        now = time.monotonic()
        with self._lock:
            if self._con is None or now - self._checked >= self._poll:
                latest = self.latest_version()
                actions = self._latest_actions_version()
                self._checked = now
                if self._con is None or latest != self._version or actions != self._actions_version:
                    fresh = connect(self._settings, threads=self._threads)
                    if actions is None:  # connect created it
                        actions = self._latest_actions_version()
                    old, self._con = self._con, fresh
                    self._version, self._actions_version = latest, actions
                    if old is not None:
                        old.close()
            return self._con.cursor()

    def cross_section(self, day: dt.date, *, exchange_mic: str = "XNYS") -> pa.Table:
        """Every ticker of `exchange_mic` on `day` with its 1/5/21/63/252-session changes."""
        sql = cross_section_sql(
            day, exchange_mic=exchange_mic, granularity=self._settings.lake_partition
        )
        if sql is None:
            raise NotFoundError(f"{day} is not a trading session of {exchange_mic}")
        return self.connection().execute(sql).to_arrow_table()

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None
