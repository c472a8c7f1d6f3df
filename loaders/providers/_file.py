"""Bars from a user's CSV or Parquet file (the bundled samples included)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from lake import BAR_SCHEMA
from loaders._provider_settings import ProviderSettings
from loaders.providers._actions import action_rows, split_ratio
from loaders.providers._base import register
from stockdata.errors import InvalidInputError, NotFoundError

#: Normalised column name (lower snake_case) -> BAR_SCHEMA column.
COLUMN_ALIASES: dict[str, str] = {
    "date": "trade_date",
    "trade_date": "trade_date",
    "timestamp": "trade_date",
    "day": "trade_date",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
    "adj_close": "adj_close",
    "adjclose": "adj_close",
    "adjusted_close": "adj_close",
    "adj_open": "adj_open",
    "adj_high": "adj_high",
    "adj_low": "adj_low",
    "adj_volume": "adj_volume",
    "split_factor": "split_factor",
    "dividend": "dividend",
    "dividends": "dividend",
    "currency": "currency",
    "ticker": "ticker",
    "symbol": "ticker",
    "exchange_mic": "exchange_mic",
    "mic": "exchange_mic",
}


def normalise_column(name: str) -> str:
    """`Adj Close` -> `adj_close`, `adjClose` -> `adj_close`, `VOLUME` -> `volume`."""
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name.strip())
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def read_table(path: Path) -> pa.Table:
    """The file as Arrow: Parquet by suffix or magic bytes, CSV otherwise."""
    if not path.is_file():
        raise NotFoundError(f"no such file: {path}")
    with path.open("rb") as f:
        magic = f.read(4)
    try:
        if path.suffix.lower() in {".parquet", ".pq"} or magic == b"PAR1":
            table = pq.read_table(path)
        else:
            table = pacsv.read_csv(path)
        _ = table.column_names  # names are decoded lazily: a binary header fails here
        return table
    except UnicodeDecodeError:
        raise InvalidInputError(
            f"cannot read {path.name}: it is not UTF-8 text (a CSV) nor Parquet",
            code="unreadable-file",
        ) from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInputError(
            f"cannot read {path.name}: {_printable(str(exc))}", code="unreadable-file"
        ) from None


def _printable(reason: str) -> str:
    """Arrow's reason without the bytes of the offending line (a binary file's garbage)."""
    first = reason.strip().splitlines()[0] if reason.strip() else "unreadable"
    first = re.sub(r"^(CSV parse error: Expected \d+ columns?, got \d+).*$", r"\1", first)
    return "".join(c for c in first if c.isprintable())[:200]


def _as_date(col: pa.ChunkedArray, path: Path) -> pa.ChunkedArray:
    if pa.types.is_date32(col.type):
        return col
    if pa.types.is_timestamp(col.type) or pa.types.is_date64(col.type):
        return col.cast(pa.date32())
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        try:
            return pc.strptime(pc.utf8_slice_codeunits(col, 0, 10), "%Y-%m-%d", "s").cast(
                pa.date32()
            )
        except pa.ArrowInvalid as exc:
            raise InvalidInputError(
                f"{path.name}: dates must look like YYYY-MM-DD ({exc})", code="bad-date"
            ) from None
    raise InvalidInputError(f"{path.name}: the date column has type {col.type}", code="bad-date")


def to_bars(
    table: pa.Table,
    *,
    ticker: str | None,
    exchange_mic: str | None,
    source: str = "file",
    name: str = "file",
    fallback_exchange_mic: str | None = None,
) -> pa.Table:
    """A file's table with common column names as BAR_SCHEMA (columns it lacks are null).

    `ticker`/`exchange_mic` override the file's own columns; `fallback_exchange_mic` is used
    only when the file has none.
    """
    path = Path(name)
    found: dict[str, pa.ChunkedArray] = {}
    for column in table.column_names:
        target = COLUMN_ALIASES.get(normalise_column(column))
        if target is not None and target not in found:
            found[target] = table.column(column)
    missing = [
        c for c in ("trade_date", "open", "high", "low", "close", "volume") if c not in found
    ]
    if missing:
        raise InvalidInputError(
            f"{path.name}: missing column(s) {', '.join(missing)}; expected Date, Open, High, "
            f"Low, Close, Volume[, Adj Close] (any case) in {table.column_names}",
            code="schema",
        )
    n = table.num_rows
    if "ticker" not in found:
        if not ticker:
            raise InvalidInputError(
                f"{path.name} has no ticker column: pass --ticker", code="schema"
            )
        found["ticker"] = pa.chunked_array([pa.array([ticker] * n, pa.string())])
    elif ticker:
        found["ticker"] = pa.chunked_array([pa.array([ticker] * n, pa.string())])
    if not exchange_mic and "exchange_mic" not in found:
        exchange_mic = fallback_exchange_mic
    if exchange_mic:
        found["exchange_mic"] = pa.chunked_array([pa.array([exchange_mic] * n, pa.string())])
    elif "exchange_mic" not in found:
        raise InvalidInputError(
            f"{path.name} has no exchange column: pass --exchange", code="schema"
        )
    found["trade_date"] = _as_date(found["trade_date"], path)
    found["source"] = pa.chunked_array([pa.array([source] * n, pa.string())])
    arrays = []
    for field in BAR_SCHEMA:
        col = found.get(field.name)
        if col is None:
            arrays.append(pa.chunked_array([pa.nulls(n, field.type)]))
            continue
        try:
            if pa.types.is_floating(col.type) and pa.types.is_integer(field.type):
                col = pc.round(col)
            arrays.append(col.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInputError(
                f"{path.name}: column {field.name!r} has type {col.type}, expected "
                f"{field.type}: {exc}",
                code="schema",
            ) from None
    return pa.Table.from_arrays(arrays, schema=BAR_SCHEMA)


#: Normalised column name -> actions column (docs/providers.md, "A file of actions").
ACTION_ALIASES: dict[str, str] = {
    "ticker": "ticker",
    "symbol": "ticker",
    "exchange_mic": "exchange_mic",
    "mic": "exchange_mic",
    "ex_date": "ex_date",
    "date": "ex_date",
    "kind": "kind",
    "type": "kind",
    "ratio": "ratio",
    "split_factor": "ratio",
    "split": "split",
    "amount": "amount",
    "dividend": "amount",
    "currency": "currency",
    "declared_date": "declared_date",
    "declaration_date": "declared_date",
    "new_symbol": "new_symbol",
}


def to_actions(table: pa.Table, *, exchange_mic: str | None, name: str = "file") -> pa.Table:
    """A file's table of actions as ACTION_INPUT_SCHEMA rows (unvalidated).

    Columns: ticker, ex_date, kind (split, stock_dividend, dividend, symbol_change), and the
    kind's value: ratio (2 for 2:1; or `split` as text, `2:1` or `2/1`), amount and currency,
    new_symbol; optional declared_date and exchange_mic (else `exchange_mic`)."""
    path = Path(name)
    found: dict[str, str] = {}
    for column in table.column_names:
        target = ACTION_ALIASES.get(normalise_column(column))
        if target is not None and target not in found:
            found[target] = column
    missing = [c for c in ("ticker", "ex_date", "kind") if c not in found]
    if missing:
        raise InvalidInputError(
            f"{path.name}: missing action column(s) {', '.join(missing)}; expected ticker, "
            f"ex_date, kind[, ratio, amount, currency, new_symbol, declared_date] in "
            f"{table.column_names}",
            code="schema",
        )
    if "exchange_mic" not in found and not exchange_mic:
        raise InvalidInputError(
            f"{path.name} has no exchange_mic column: pass --exchange", code="schema"
        )
    rows = []
    for raw in table.to_pylist():
        row = {target: raw[column] for target, column in found.items()}
        if row.get("ratio") is None and "split" in row:
            row["ratio"] = split_ratio(row["split"])
        for key in ("ticker", "kind", "exchange_mic"):
            if isinstance(row.get(key), str):
                row[key] = row[key].strip().lower() if key == "kind" else row[key].strip().upper()
        rows.append(row)
    mics = {r.get("exchange_mic") or exchange_mic for r in rows}
    tables = [
        action_rows(
            [r for r in rows if (r.get("exchange_mic") or exchange_mic) == mic],
            source="file",
            exchange_mic=str(mic),
        )
        for mic in sorted(m for m in mics if m)
    ]
    if not tables:
        return action_rows([], source="file", exchange_mic=exchange_mic or "")
    return pa.concat_tables(tables)


@register("file")
class FileProvider:
    """A CSV or Parquet file of daily bars (Date/Open/High/Low/Close/Volume[/Adj Close]).

    Options: `path`, `ticker` (required unless the file has a ticker/symbol column),
    `exchange_mic` (required unless the file has an exchange_mic/mic column).
    """

    name = "file"
    #: one file is one ticker
    max_symbols_per_job = 1
    #: a bar file's split_factor/dividend columns are recorded as actions with its bars
    actions_on_bars = True

    def __init__(
        self,
        settings: ProviderSettings | None = None,
        *,
        path: str | Path,
        ticker: str | None = None,
        exchange_mic: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.ticker = ticker.upper() if ticker else None
        self.exchange_mic = exchange_mic.upper() if exchange_mic else None

    def read_all(self) -> pa.Table:
        """Every row of the file as BAR_SCHEMA."""
        return to_bars(
            read_table(self.path),
            ticker=self.ticker,
            exchange_mic=self.exchange_mic,
            source=self.name,
            name=str(self.path),
        )

    def date_range(self) -> tuple[dt.date, dt.date]:
        """First and last date in the file."""
        dates = self.read_all().column("trade_date")
        lo, hi = pc.min(dates).as_py(), pc.max(dates).as_py()
        if lo is None or hi is None:
            raise InvalidInputError(f"{self.path.name} has no rows", code="empty-file")
        return lo, hi

    def fetch_bars(
        self,
        symbols: Sequence[str],
        *,
        exchange_mic: str,
        date_from: dt.date,
        date_to: dt.date,
    ) -> pa.Table:
        """The file's rows of `symbols` (all if empty) with `date_from <= trade_date <= date_to`."""
        ticker = self.ticker
        if ticker is None and len(symbols) == 1:
            ticker = symbols[0].upper()
        table = to_bars(
            read_table(self.path),
            ticker=ticker,
            exchange_mic=self.exchange_mic,
            source=self.name,
            name=str(self.path),
            fallback_exchange_mic=exchange_mic,
        )
        dates = table.column("trade_date")
        mask = pc.and_(
            pc.greater_equal(dates, pa.scalar(date_from, pa.date32())),
            pc.less_equal(dates, pa.scalar(date_to, pa.date32())),
        )
        if symbols:
            mask = pc.and_(mask, pc.is_in(table.column("ticker"), pa.array(list(symbols))))
        return table.filter(pc.fill_null(mask, True))

    def read_actions(self) -> pa.Table:
        """Every row of an actions file (`path` names one) as ACTION_INPUT_SCHEMA."""
        return to_actions(
            read_table(self.path), exchange_mic=self.exchange_mic, name=str(self.path)
        )

    def fetch_actions(
        self,
        symbols: Sequence[str],
        *,
        exchange_mic: str,
        date_from: dt.date,
        date_to: dt.date,
    ) -> pa.Table:
        """The actions file's rows of `symbols` (all if empty) within the range."""
        table = self.read_actions()
        days = table.column("ex_date")
        mask = pc.and_(
            pc.greater_equal(days, pa.scalar(date_from, pa.date32())),
            pc.less_equal(days, pa.scalar(date_to, pa.date32())),
        )
        if symbols:
            mask = pc.and_(mask, pc.is_in(table.column("ticker"), pa.array(list(symbols))))
        return table.filter(pc.fill_null(mask, True))

    def list_exchanges(self) -> list[dict[str, Any]]:
        return []

    def list_tickers(self, exchange_mic: str) -> list[dict[str, Any]]:
        """The file's tickers on `exchange_mic`."""
        table = self.read_all()
        mask = pc.equal(table.column("exchange_mic"), exchange_mic.upper())
        tickers = pc.unique(table.filter(mask).column("ticker")).to_pylist()
        return [
            {"exchange_mic": exchange_mic.upper(), "symbol": t, "name": None, "currency_code": None}
            for t in sorted(t for t in tickers if t)
        ]
