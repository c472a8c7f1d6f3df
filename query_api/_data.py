"""Reads of the lake for the API: DuckDB over the pinned Delta snapshot, plus the hot index.

Every method is blocking; route handlers run them in worker threads, one cursor each.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from lake import LakeReader, LakeSettings
from query_api import _models as m
from query_api._index import BarRow, HotIndex
from query_api._metrics import ApiMetrics
from query_api._settings import ApiSettings
from stockdata.errors import InvalidInputError, NotFoundError, StockDataError, TransientError
from stockdata.logs import get_logger, scrub_text

log = get_logger(__name__)

Order = Literal["asc", "desc"]
MoversOrder = Literal["gainers", "losers"]

_PRICES = ("open", "high", "low", "close")

BAR_SCHEMA = pa.schema(
    [
        pa.field("ticker", pa.string()),
        pa.field("exchange_mic", pa.string()),
        pa.field("date", pa.date32()),
        pa.field("open", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("low", pa.float64()),
        pa.field("close", pa.float64()),
        pa.field("volume", pa.int64()),
        pa.field("split_factor", pa.float64()),
        pa.field("dividend", pa.float64()),
        pa.field("currency", pa.string()),
        pa.field("source", pa.string()),
    ]
)
DELTA_SCHEMA = pa.schema(
    [
        pa.field("ticker", pa.string()),
        pa.field("exchange_mic", pa.string()),
        pa.field("days", pa.int64()),
        pa.field("start_date", pa.date32()),
        pa.field("start_close", pa.float64()),
        pa.field("end_date", pa.date32()),
        pa.field("end_close", pa.float64()),
        pa.field("change", pa.float64()),
        pa.field("pct_change", pa.float64()),
    ]
)


@dataclass(frozen=True, slots=True)
class MoverRow:
    rank: int
    ticker: str
    exchange_mic: str
    start_date: dt.date
    start_close: float
    end_date: dt.date
    end_close: float
    change: float
    pct_change: float


def _pct(end: float, start: float) -> float:
    return round((end / start - 1.0) * 100.0, 6)


def _price_sql(name: str, adjusted: bool) -> str:
    return f"coalesce(adj_{name}, {name})" if adjusted else name


def _bar_select(adjusted: bool) -> str:
    prices = ", ".join(f"{_price_sql(p, adjusted)} AS {p}" for p in _PRICES)
    volume = "CAST(round(coalesce(adj_volume, volume)) AS BIGINT)" if adjusted else "volume"
    return (
        f"ticker, exchange_mic, trade_date AS date, {prices}, {volume} AS volume, "
        "split_factor, dividend, currency, source"
    )


def project_bars(table: pa.Table, *, adjusted: bool) -> pa.Table:
    """Index rows (INDEX_COLUMNS) to the API's bar schema, adjusted prices if asked."""
    cols: dict[str, Any] = {
        "ticker": table.column("ticker"),
        "exchange_mic": table.column("exchange_mic"),
        "date": table.column("trade_date"),
    }
    for p in _PRICES:
        cols[p] = (
            pc.coalesce(table.column(f"adj_{p}"), table.column(p)) if adjusted else table.column(p)
        )
    if adjusted:
        vol = pc.coalesce(table.column("adj_volume"), table.column("volume").cast(pa.float64()))
        cols["volume"] = pc.round(vol).cast(pa.int64())
    else:
        cols["volume"] = table.column("volume")
    for name in ("split_factor", "dividend", "currency", "source"):
        cols[name] = table.column(name)
    return pa.table(cols, schema=BAR_SCHEMA)


class Bars:
    """The rows of a bars answer: `BarRow` tuples for JSON, Arrow for CSV and IPC, each built
    on demand."""

    def __init__(
        self,
        *,
        table: pa.Table | None = None,
        index: HotIndex | None = None,
        positions: npt.NDArray[np.int64] | list[int] | None = None,
        adjusted: bool = False,
        rows: list[BarRow] | None = None,
    ) -> None:
        self._table = table
        self._index = index
        self._pos = positions if positions is not None else np.empty(0, dtype=np.int64)
        self._adjusted = adjusted
        self._rows = rows

    def __len__(self) -> int:
        return self._table.num_rows if self._table is not None else len(self._pos)

    def rows(self) -> list[BarRow]:
        """The bars in `query_api._models.Bar` field order (BAR_SCHEMA's column order)."""
        if self._rows is not None:
            return self._rows
        if self._table is not None:
            columns = [col.to_pylist() for col in self._table.columns]
            return list(zip(*columns, strict=True)) if columns else []
        assert self._index is not None
        return self._index.rows_at(np.asarray(self._pos, dtype=np.int64), adjusted=self._adjusted)

    def table(self) -> pa.Table:
        if self._table is None:
            assert self._index is not None
            rows = self._index.table.take(pa.array(self._pos, pa.int64()))
            self._table = project_bars(rows, adjusted=self._adjusted)
        return self._table


class EodStore:
    """The API's view of the lake: version tracking, the hot index, and every read query."""

    def __init__(
        self,
        lake_settings: LakeSettings,
        settings: ApiSettings,
        *,
        metrics: ApiMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._reader = LakeReader(
            lake_settings,
            poll_seconds=settings.api_lake_poll_seconds,
            threads=settings.api_duckdb_threads,
        )
        self._metrics = metrics
        self._index: HotIndex | None = None
        self._series: tuple[int | None, dict[str, list[str]]] | None = None
        self._build_lock = threading.Lock()
        self._building: int | None = None
        self._closed = False
        self._polled = float("-inf")
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, *, build_index: bool = True) -> None:
        """Attach the current version and (if enabled) build its index before serving."""
        try:
            version = self.version()
        except StockDataError as exc:
            log.warning("lake_unavailable_at_start", error=scrub_text(exc.message))
            return
        if build_index:
            self._build_index(version)
        interval = self._settings.api_lake_poll_seconds
        if interval > 0 and self._poller is None:
            self._poller = threading.Thread(
                target=self._poll_forever, args=(interval,), name="lake-poll", daemon=True
            )
            self._poller.start()

    def _poll_forever(self, interval: float) -> None:
        """Poll the lake every `interval` seconds off the request path (a poll is a Delta
        log read: a network round trip on ADLS), so requests find the version fresh."""
        while not self._stop.wait(interval):
            try:
                self.version()
            except Exception as exc:  # the next request polls inline and reports it
                log.warning("lake_poll_failed", error=scrub_text(str(exc).splitlines()[0]))

    def close(self) -> None:
        self._closed = True
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=10)
        self._reader.close()

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        try:
            cur = self._reader.connection()
        except StockDataError:
            raise
        except Exception as exc:
            raise TransientError(
                f"the lake cannot be read right now: {scrub_text(str(exc).splitlines()[0])}",
                code="lake-unavailable",
            ) from exc
        try:
            yield cur
        finally:
            cur.close()

    def fresh_version(self) -> tuple[bool, int | None]:
        """(True, version) when the last poll is recent: answering needs no IO to know it.

        With the background poller a poll is due every interval; one late poll is allowed
        before requests poll inline again."""
        window = self._settings.api_lake_poll_seconds * (1 if self._poller is None else 2)
        if time.monotonic() - self._polled < window:
            return True, self._reader.version
        return False, None

    def current_version(self) -> int | None:
        """The version to answer from: the last poll's while it is recent, else poll now."""
        fresh, version = self.fresh_version()
        return version if fresh else self.version()

    def version(self) -> int | None:
        """The version answered from, after the cheap poll; schedules an index rebuild."""
        with self.cursor():
            pass
        self._polled = time.monotonic()
        version = self._reader.version
        if self._metrics is not None and version is not None:
            self._metrics.lake_version.set(version)
        if (
            self._settings.api_hot_index
            and not self._closed
            and (self._index is None or self._index.version != version)
            and self._building != version
            and self._index_allowed is not False
        ):
            self._building = version
            threading.Thread(
                target=self._build_index, args=(version,), name="hot-index", daemon=True
            ).start()
        return version

    _index_allowed: bool | None = None

    def _build_index(self, version: int | None) -> None:
        if not self._settings.api_hot_index:
            return
        with self._build_lock:
            if self._index is not None and self._index.version == version:
                return
            t0 = time.perf_counter()
            try:
                with self.cursor() as cur:
                    row = cur.execute("SELECT count(*) FROM eod").fetchone()
                    rows = int(row[0]) if row else 0
                    if rows > self._settings.api_hot_index_max_rows:
                        log.info("hot_index_skipped", rows=rows)
                        self._index_allowed = False
                        return
                    index = HotIndex.build(cur, version=self._reader.version)
            except Exception as exc:  # the DuckDB path keeps answering
                log.warning("hot_index_failed", error=scrub_text(str(exc)))
                return
            finally:
                self._building = None
            self._index = index
            if self._metrics is not None:
                self._metrics.index_rows.set(index.rows)
            log.info(
                "hot_index_built",
                version=index.version,
                rows=index.rows,
                seconds=round(time.perf_counter() - t0, 3),
            )

    def index_for(self, version: int | None) -> HotIndex | None:
        index = self._index
        return index if index is not None and index.version == version else None

    def _timed(self, kind: str, engine: str, t0: float) -> None:
        if self._metrics is not None:
            self._metrics.observe_query(kind, engine, time.perf_counter() - t0)

    # -- symbols ---------------------------------------------------------------------------

    def _series_map(self, version: int | None) -> dict[str, list[str]]:
        cached = self._series
        if cached is not None and cached[0] == version:
            return cached[1]
        index = self.index_for(version)
        if index is not None:
            mapping: dict[str, list[str]] = {}
            for ticker, mic in index.series:
                mapping.setdefault(ticker, []).append(mic)
        else:
            with self.cursor() as cur:
                rows = cur.execute(
                    "SELECT DISTINCT ticker, exchange_mic FROM eod ORDER BY 1, 2"
                ).fetchall()
            mapping = {}
            for ticker, mic in rows:
                mapping.setdefault(str(ticker), []).append(str(mic))
        self._series = (version, mapping)
        return mapping

    def resolve(self, symbol: str, exchange: str | None, version: int | None) -> str:
        """The exchange of `symbol` in the lake; NotFoundError if the lake has no such series."""
        mics = self._series_map(version).get(symbol, [])
        if exchange is not None:
            if exchange not in mics:
                raise NotFoundError(f"no data for {symbol} on {exchange}", symbol=symbol)
            return exchange
        if not mics:
            raise NotFoundError(f"no data for symbol {symbol!r}", symbol=symbol)
        if len(mics) > 1:
            raise InvalidInputError(
                f"{symbol} trades on {', '.join(mics)}: pass exchange=MIC",
                code="ambiguous-symbol",
            )
        return mics[0]

    # -- bars ------------------------------------------------------------------------------

    def bars(
        self,
        symbol: str,
        *,
        exchange: str,
        version: int | None,
        date_from: dt.date | None,
        date_to: dt.date | None,
        adjusted: bool,
        limit: int,
        offset: int,
        order: Order,
    ) -> tuple[Bars, int]:
        """One page of a ticker's bars in date order, and the total in the range."""
        t0 = time.perf_counter()
        index = self.index_for(version)
        if index is not None:
            sid = index.sid_of[symbol, exchange]
            if date_from is not None and date_from == date_to and offset == 0 and limit > 0:
                found = index.point_row(sid, date_from, adjusted=adjusted)  # one search
                self._timed("bars", "index", t0)
                if found is None:
                    return Bars(index=index, adjusted=adjusted), 0
                p, row = found
                return Bars(index=index, positions=[p], adjusted=adjusted, rows=[row]), 1
            lo, hi = index.range(sid, date_from, date_to)
            if order == "asc":
                pos = np.arange(lo + offset, min(hi, lo + offset + limit), dtype=np.int64)
            else:
                pos = np.arange(
                    hi - 1 - offset, max(lo, hi - offset - limit) - 1, -1, dtype=np.int64
                )
            self._timed("bars", "index", t0)
            return Bars(index=index, positions=pos, adjusted=adjusted), hi - lo
        where, params = ["ticker = ?", "exchange_mic = ?"], [symbol, exchange]
        if date_from is not None:
            where.append("trade_date >= ?")
            params.append(date_from.isoformat())
        if date_to is not None:
            where.append("trade_date <= ?")
            params.append(date_to.isoformat())
        cond = " AND ".join(where)
        with self.cursor() as cur:
            count = cur.execute(f"SELECT count(*) FROM eod WHERE {cond}", params).fetchone()
            table = cur.execute(
                f"SELECT {_bar_select(adjusted)} FROM eod WHERE {cond} "
                f"ORDER BY trade_date {order.upper()} LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).to_arrow_table()
        self._timed("bars", "duckdb", t0)
        return Bars(table=table.cast(BAR_SCHEMA)), int(count[0]) if count else 0

    def on_date(
        self,
        day: dt.date,
        *,
        exchange: str | None,
        version: int | None,
        adjusted: bool,
        limit: int,
        offset: int,
    ) -> tuple[Bars, int]:
        """Every ticker's bar on one date, by ticker."""
        t0 = time.perf_counter()
        index = self.index_for(version)
        if index is not None:
            sids = index.all_sids(exchange)
            pos = index.positions(sids, day, 0, exact=True).end
            pos = pos[pos >= 0]
            total = int(pos.size)
            page = pos[offset : offset + limit]
            self._timed("on_date", "index", t0)
            return Bars(index=index, positions=page, adjusted=adjusted), total
        where, params = ["trade_date = ?"], [day.isoformat()]
        if exchange is not None:
            where.append("exchange_mic = ?")
            params.append(exchange)
        cond = " AND ".join(where)
        with self.cursor() as cur:
            count = cur.execute(f"SELECT count(*) FROM eod WHERE {cond}", params).fetchone()
            table = cur.execute(
                f"SELECT {_bar_select(adjusted)} FROM eod WHERE {cond} "
                "ORDER BY ticker, exchange_mic LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).to_arrow_table()
        self._timed("on_date", "duckdb", t0)
        return Bars(table=table.cast(BAR_SCHEMA)), int(count[0]) if count else 0

    # -- deltas ----------------------------------------------------------------------------

    def delta(
        self,
        symbol: str,
        *,
        exchange: str,
        version: int | None,
        days: int,
        day: dt.date | None,
        adjusted: bool,
    ) -> m.Delta:
        """Change over `days` sessions ending at the last session on or before `day`."""
        t0 = time.perf_counter()
        index = self.index_for(version)
        if index is not None:
            sid = index.sid_of[symbol, exchange]
            pos = index.positions(np.asarray([sid], dtype=np.int64), day, days, exact=False)
            end, start = int(pos.end[0]), int(pos.start[0])
            closes = index.closes(adjusted=adjusted)
            if end < 0:
                raise NotFoundError(f"no bar for {symbol} on or before {day}", symbol=symbol)
            dates = index.table.column("trade_date")
            end_date = dates[end].as_py()
            available = end - int(index.starts[sid])
            row = self._delta_row(
                symbol,
                exchange,
                days,
                end_date,
                float(closes[end]),
                dates[start].as_py() if start >= 0 else None,
                float(closes[start]) if start >= 0 else None,
                available,
            )
            self._timed("delta", "index", t0)
            return row
        close = _price_sql("close", adjusted)
        params: list[Any] = [days, days, symbol, exchange]
        bound = ""
        if day is not None:
            bound = " AND trade_date <= ?"
            params.append(day.isoformat())
        sql = (
            "SELECT trade_date, c, lag(trade_date, ?) OVER w AS d0, lag(c, ?) OVER w AS c0, "
            "row_number() OVER w - 1 AS prior "
            f"FROM (SELECT trade_date, {close} AS c FROM eod "
            f"WHERE ticker = ? AND exchange_mic = ?{bound}) "
            "WINDOW w AS (ORDER BY trade_date) ORDER BY trade_date DESC LIMIT 1"
        )
        with self.cursor() as cur:
            found = cur.execute(sql, params).fetchone()
        self._timed("delta", "duckdb", t0)
        if found is None:
            raise NotFoundError(f"no bar for {symbol} on or before {day}", symbol=symbol)
        end_date, end_close, d0, c0, prior = found
        return self._delta_row(
            symbol,
            exchange,
            days,
            end_date,
            float(end_close),
            d0,
            None if c0 is None else float(c0),
            int(prior),
        )

    @staticmethod
    def _delta_row(
        symbol: str,
        exchange: str,
        days: int,
        end_date: dt.date,
        end_close: float,
        start_date: dt.date | None,
        start_close: float | None,
        available: int,
    ) -> m.Delta:
        if start_date is None or start_close is None:
            return m.Delta(
                symbol,
                exchange,
                days,
                None,
                None,
                end_date,
                end_close,
                None,
                None,
                f"only {available} session(s) before {end_date.isoformat()}; {days} needed",
            )
        return m.Delta(
            symbol,
            exchange,
            days,
            start_date,
            start_close,
            end_date,
            end_close,
            round(end_close - start_close, 10),
            _pct(end_close, start_close),
            None,
        )

    def delta_series(
        self,
        symbol: str,
        *,
        exchange: str,
        days: int,
        date_from: dt.date | None,
        date_to: dt.date | None,
        adjusted: bool,
        limit: int,
        offset: int,
    ) -> tuple[pa.Table, int]:
        """The rolling `days`-session change for every session in the range (window functions)."""
        t0 = time.perf_counter()
        close = _price_sql("close", adjusted)
        inner, params = ["ticker = ?", "exchange_mic = ?"], [symbol, exchange]
        if date_to is not None:
            inner.append("trade_date <= ?")
            params.append(date_to.isoformat())
        outer, oparams = "", []
        if date_from is not None:
            outer = "WHERE end_date >= ?"
            oparams.append(date_from.isoformat())
        base = (
            "SELECT ? AS ticker, ? AS exchange_mic, CAST(? AS BIGINT) AS days, "
            "lag(trade_date, ?) OVER w AS start_date, lag(c, ?) OVER w AS start_close, "
            "trade_date AS end_date, c AS end_close, "
            "c - lag(c, ?) OVER w AS change, "
            "round((c / lag(c, ?) OVER w - 1) * 100, 6) AS pct_change "
            f"FROM (SELECT trade_date, {close} AS c FROM eod WHERE {' AND '.join(inner)}) "
            "WINDOW w AS (ORDER BY trade_date)"
        )
        head = [symbol, exchange, days, days, days, days, days]
        with self.cursor() as cur:
            rel = f"SELECT * FROM ({base}) {outer}"
            count = cur.execute(
                f"SELECT count(*) FROM ({rel})", [*head, *params, *oparams]
            ).fetchone()
            table = cur.execute(
                f"{rel} ORDER BY end_date LIMIT ? OFFSET ?",
                [*head, *params, *oparams, limit, offset],
            ).to_arrow_table()
        self._timed("delta_series", "duckdb", t0)
        return table.cast(DELTA_SCHEMA), int(count[0]) if count else 0

    # -- movers ----------------------------------------------------------------------------

    def movers(
        self,
        day: dt.date,
        *,
        days: int,
        exchange: str | None,
        version: int | None,
        limit: int,
        order: MoversOrder,
        adjusted: bool,
    ) -> list[MoverRow]:
        """Tickers with a bar on `day` ranked by percent change over `days` sessions."""
        t0 = time.perf_counter()
        index = self.index_for(version)
        if index is not None:
            sids = index.all_sids(exchange)
            pos = index.positions(sids, day, days, exact=True)
            ok = pos.start >= 0
            sids, end, start = sids[ok], pos.end[ok], pos.start[ok]
            closes = index.closes(adjusted=adjusted)
            pct = (closes[end] / closes[start] - 1.0) * 100.0
            key = -pct if order == "gainers" else pct
            names = (
                np.asarray([index.series[s][0] for s in sids], dtype=object)
                if sids.size
                else np.asarray([], dtype=object)
            )
            k = min(limit, int(key.size))
            if k == 0:
                self._timed("movers", "index", t0)
                return []
            top = np.argpartition(key, k - 1)[:k] if k < key.size else np.arange(key.size)
            top = top[np.lexsort((names[top], key[top]))]
            dates = index.table.column("trade_date")
            out = []
            for rank, i in enumerate(top, start=1):
                s, e = int(start[i]), int(end[i])
                sc, ec = float(closes[s]), float(closes[e])
                ticker, mic = index.series[int(sids[i])]
                out.append(
                    MoverRow(
                        rank,
                        ticker,
                        mic,
                        dates[s].as_py(),
                        sc,
                        dates[e].as_py(),
                        ec,
                        round(ec - sc, 10),
                        _pct(ec, sc),
                    )
                )
            self._timed("movers", "index", t0)
            return out
        close = _price_sql("close", adjusted)
        where, params = ["trade_date <= ?"], [day.isoformat()]
        if exchange is not None:
            where.append("exchange_mic = ?")
            params.append(exchange)
        direction = "DESC" if order == "gainers" else "ASC"
        sql = (
            "SELECT ticker, exchange_mic, d0, c0, trade_date, c FROM ("
            "SELECT ticker, exchange_mic, trade_date, c, lag(trade_date, ?) OVER w AS d0, "
            f"lag(c, ?) OVER w AS c0 FROM (SELECT ticker, exchange_mic, trade_date, {close} AS c "
            f"FROM eod WHERE {' AND '.join(where)}) "
            "WINDOW w AS (PARTITION BY ticker, exchange_mic ORDER BY trade_date)) "
            "WHERE trade_date = ? AND c0 IS NOT NULL "
            f"ORDER BY (c / c0 - 1) {direction}, ticker LIMIT ?"
        )
        with self.cursor() as cur:
            rows = cur.execute(sql, [days, days, *params, day.isoformat(), limit]).fetchall()
        self._timed("movers", "duckdb", t0)
        return [
            MoverRow(
                rank,
                t,
                m,
                d0,
                float(c0),
                d1,
                float(c1),
                round(float(c1) - float(c0), 10),
                _pct(float(c1), float(c0)),
            )
            for rank, (t, m, d0, c0, d1, c1) in enumerate(rows, start=1)
        ]

    # -- health ----------------------------------------------------------------------------

    def ping(self) -> int | None:
        """Raise if the lake cannot be read; return the version."""
        with self.cursor() as cur:
            cur.execute("SELECT 1 FROM eod LIMIT 1").fetchall()
        return self._reader.version


VersionFn = Callable[[], int | None]
