"""Reads of the lake for the API: the memory-mapped serving form, else DuckDB over Delta.

Every method is blocking; route handlers run them in worker threads, one cursor each.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

import lake
from lake import Adjustment, Basis, LakeReader, LakeSettings, all_sessions, build_adjustment
from query_api import _models as m
from query_api._index import BarRow
from query_api._metrics import ApiMetrics
from query_api._serving import Scale, ServingForm, day_number, to_date, to_dates
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
ACTION_SCHEMA = pa.schema(
    [
        pa.field("ticker", pa.string()),
        pa.field("exchange_mic", pa.string()),
        pa.field("ex_date", pa.date32()),
        pa.field("kind", pa.string()),
        pa.field("ratio", pa.float64()),
        pa.field("amount", pa.float64()),
        pa.field("currency", pa.string()),
        pa.field("new_symbol", pa.string()),
        pa.field("declared_date", pa.date32()),
        pa.field("source", pa.string()),
        pa.field("prev_close", pa.float64()),
        pa.field("price_factor", pa.float64()),
        pa.field("volume_factor", pa.float64()),
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
        pa.field("reason", pa.string()),
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


@dataclass(frozen=True, slots=True)
class Adjust:
    """How an answer's prices are adjusted: `basis` (lake/_adjust.py) for the actions with
    an ex-date on or before `as_of` (None: every action the lake knows)."""

    basis: Basis = "none"
    as_of: dt.date | None = None

    @property
    def adjusted(self) -> bool:
        return self.basis != "none"


AS_TRADED = Adjust()
#: The basis of changes (deltas, delta series, movers) when a request names none: a split
#: is a share-count change, not a price move; a dividend's drop is a real price move.
CHANGE_BASIS: Basis = "splits"


def _series_ids(adjustment: Adjustment, tickers: Any, mics: Any) -> npt.NDArray[np.int64]:
    """Adjustment series ids of Arrow ticker / exchange columns (-1: no actions)."""
    if adjustment.empty or len(tickers) == 0:
        return np.full(len(tickers), -1, dtype=np.int64)
    keys = pc.binary_join_element_wise(tickers, mics, "\x1f")
    known = pa.array([f"{t}\x1f{m}" for t, m in adjustment.series], pa.string())
    found = pc.index_in(keys, value_set=known)
    out: npt.NDArray[np.int64] = np.asarray(
        pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    return out


def _adjust_table(table: pa.Table, adjustment: Adjustment, adjust: Adjust) -> pa.Table:
    """Bars (BAR_SCHEMA) adjusted per `adjust`; as-traded `table` when basis is none."""
    if not adjust.adjusted or table.num_rows == 0:
        return table
    ids = _series_ids(
        adjustment,
        table.column("ticker").combine_chunks(),
        table.column("exchange_mic").combine_chunks(),
    )
    days = np.asarray(
        table.column("date").combine_chunks().cast(pa.int32()).to_numpy(), dtype=np.int64
    )
    pf, vf = adjustment.factors(ids, days, adjust.basis, adjust.as_of)
    for name in _PRICES:
        raw = np.asarray(table.column(name).to_numpy(), dtype=np.float64)
        table = table.set_column(
            table.schema.get_field_index(name), name, pa.array(lake.apply_prices(raw, pf))
        )
    vol = np.asarray(table.column("volume").to_numpy(), dtype=np.int64)
    return table.set_column(
        table.schema.get_field_index("volume"), "volume", pa.array(lake.apply_volumes(vol, vf))
    )


_NO_FACTORS = pa.table(
    {
        "ticker": pa.array([], pa.string()),
        "exchange_mic": pa.array([], pa.string()),
        "ex_date": pa.array([], pa.date32()),
        "split_price_factor": pa.array([], pa.float64()),
        "price_factor": pa.array([], pa.float64()),
        "volume_factor": pa.array([], pa.float64()),
    }
)


def _pct(end: float, start: float) -> float:
    return round((end / start - 1.0) * 100.0, 6)


def _bar_select() -> str:
    """The as-traded bar columns; adjustment is applied to the rows afterwards."""
    prices = ", ".join(_PRICES)
    return (
        f"ticker, exchange_mic, trade_date AS date, {prices}, volume, "
        "split_factor, dividend, currency, source"
    )


def canonical(table: pa.Table) -> pa.Table:
    """One chunk per column, nulls built one way (zeros under them): whichever engine read
    the rows, the Arrow IPC and CSV bytes are the same."""
    cols = []
    for col in table.combine_chunks().columns:
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if arr.null_count:
            if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type):
                mask = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
                if pa.types.is_floating(arr.type):
                    values = np.where(mask, 0.0, arr.to_numpy(zero_copy_only=False))
                else:
                    values = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False)
                arr = pa.array(values, arr.type, mask=mask)
            else:
                arr = pa.array(arr.to_pylist(), arr.type)
        cols.append(arr)
    return pa.Table.from_arrays(cols, schema=table.schema)


class Bars:
    """The rows of a bars answer: `BarRow` tuples for JSON, Arrow for CSV and IPC, each built
    on demand."""

    def __init__(
        self,
        *,
        table: pa.Table | None = None,
        form: ServingForm | None = None,
        positions: npt.NDArray[np.int64] | list[int] | None = None,
        scale: Scale | None = None,
        rows: list[BarRow] | None = None,
    ) -> None:
        self._table = table
        self._form = form
        self._pos = np.asarray(positions if positions is not None else np.empty(0), dtype=np.int64)
        self._scale = scale
        self._rows = rows

    def __len__(self) -> int:
        return self._table.num_rows if self._table is not None else len(self._pos)

    def rows(self) -> list[BarRow]:
        """The bars in `query_api._models.Bar` field order (BAR_SCHEMA's column order)."""
        if self._rows is None:
            if self._table is not None:
                columns = [col.to_pylist() for col in self._table.columns]
                self._rows = list(zip(*columns, strict=True)) if columns else []
            else:
                assert self._form is not None
                self._rows = self._form.rows_at(self._pos, scale=self._scale)
        return self._rows

    def table(self) -> pa.Table:
        if self._table is None:
            assert self._form is not None
            self._table = canonical(
                self._form.table_at(self._pos, scale=self._scale, schema=BAR_SCHEMA)
            )
        return self._table


@dataclass(frozen=True, slots=True)
class BarStream:
    """A whole answer to stream: its row count, and `batches()` to read it batch by batch."""

    total: int
    schema: pa.Schema
    batches: Callable[[], Iterator[pa.RecordBatch]]


#: Rows per streamed batch (and per Parquet row group): about 6 MB of bars.
STREAM_BATCH_ROWS = 65_536


def _windows(first: dt.date, last: dt.date, granularity: str) -> Iterator[tuple[dt.date, dt.date]]:
    """[start, end) windows of whole partitions (years or months) covering first..last."""
    start = first.replace(month=1, day=1) if granularity == "year" else first.replace(day=1)
    while start <= last:
        if granularity == "year":
            end = start.replace(year=start.year + 1)
        else:
            end = (start + dt.timedelta(days=32)).replace(day=1)
        yield start, end
        start = end


@dataclass(frozen=True, slots=True)
class _Closes:
    """Bars of several series reduced to what movers need (from either engine): `ids` index
    `series`, which is in (ticker, exchange_mic) order."""

    series: list[tuple[str, str]]
    ids: npt.NDArray[np.int64]
    days: npt.NDArray[np.int64]
    closes: npt.NDArray[np.float64]


def calendar_sessions(mic: str) -> npt.NDArray[np.datetime64]:
    """Every session of `mic`'s calendar; an exchange without one is a 404 `unknown-exchange`
    (a well-formed MIC that names nothing we can count sessions on)."""
    try:
        return all_sessions(mic)
    except InvalidInputError as exc:
        raise NotFoundError(exc.message, code=exc.code) from exc


def start_session(mic: str, end: dt.date, days: int) -> tuple[dt.date | None, int]:
    """The session `days` sessions of `mic`'s calendar before `end`, and how many there are."""
    sessions = calendar_sessions(mic)
    before = int(np.searchsorted(sessions, np.datetime64(end, "D")))
    if before < days:
        return None, before
    return to_date(int(sessions[before - days].astype(np.int64))), before


def _too_few(before: int, end: dt.date, days: int) -> str:
    return f"only {before} session(s) before {end.isoformat()}; {days} needed"


def _no_bar(start: dt.date) -> str:
    return f"no bar on the start session {start.isoformat()}"


class EodStore:
    """The API's view of the lake: the version answered from, the engine, every read query.

    The serving form of the current version (lake/_serving.py, memory-mapped) answers every
    read it holds; DuckDB over the pinned Delta snapshot answers while there is none. When a
    new version appears, the previous form keeps answering (with its own `lake_version`)
    until the new one is published, for at most `api_serving_grace_seconds`.
    """

    def __init__(
        self,
        lake_settings: LakeSettings,
        settings: ApiSettings,
        *,
        metrics: ApiMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._granularity = lake_settings.lake_partition
        self._lake_settings = lake_settings
        self._reader = LakeReader(
            lake_settings,
            poll_seconds=settings.api_lake_poll_seconds,
            threads=settings.api_duckdb_threads,
        )
        self._metrics = metrics
        self._form: ServingForm | None = None
        self._pending_since: float | None = None
        self._series: tuple[int | None, dict[str, list[str]]] | None = None
        self._form_lock = threading.Lock()
        self._building = False
        self._closed = False
        self._polled = float("-inf")
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._adjustment: tuple[tuple[int | None, int | None], Adjustment] | None = None
        self._adjustment_lock = threading.Lock()
        self._form_ids_cache: tuple[ServingForm, Adjustment, npt.NDArray[np.int64]] | None = None
        #: id(series list) -> (the list, exchange code per series, MICs): see _exchange_codes
        self._codes_of: dict[int, tuple[Any, npt.NDArray[np.int64], list[str]]] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Attach the current version and map its serving form, if published; if not, one
        worker of the pod builds it in the background (the others map it when it appears)
        while DuckDB answers, so start-up never waits for a build."""
        try:
            self.version()
        except StockDataError as exc:
            log.warning("lake_unavailable_at_start", error=scrub_text(exc.message))
            return
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
            return True, self._answer_version(self._reader.version)
        return False, None

    def current_version(self) -> int | None:
        """The version to answer from: the last poll's while it is recent, else poll now."""
        fresh, version = self.fresh_version()
        return version if fresh else self.version()

    def version(self) -> int | None:
        """Poll the lake (cheap) and return the version answers come from: the latest, or
        the previous serving form's while the latest one's is being published."""
        with self.cursor():
            pass
        self._polled = time.monotonic()
        latest = self._reader.version
        if self._metrics is not None and latest is not None:
            self._metrics.lake_version.set(latest)
        if self._settings.api_serving and latest is not None and not self._closed:
            self._refresh(latest)
        return self._answer_version(latest)

    def _answer_version(self, latest: int | None) -> int | None:
        form, since = self._form, self._pending_since
        if (
            form is not None
            and latest is not None
            and form.version < latest
            and since is not None
            and time.monotonic() - since <= self._settings.api_serving_grace_seconds
        ):
            return form.version
        return latest

    def _refresh(self, latest: int) -> None:
        form = self._form
        if form is not None and form.version == latest:
            return
        if self._map(latest):
            return
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        if not self._building:
            self._building = True
            threading.Thread(
                target=self._build,
                args=(latest,),
                kwargs={"wait": False},
                daemon=True,
                name="serving-build",
            ).start()

    def _map(self, version: int) -> bool:
        """Map the published form of `version` if there is one."""
        path = lake.serving_path(self._lake_settings.serving_root, version)
        if lake.read_manifest(path) is None:
            return False
        with self._form_lock:
            if self._form is not None and self._form.version == version:
                return True
            try:
                form = ServingForm(path)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("serving_form_unreadable", path=str(path), error=str(exc))
                return False
            self._form, self._pending_since = form, None
        if self._metrics is not None:
            self._metrics.serving(form.version, form.rows)
        log.info("serving_form_mapped", version=form.version, rows=form.rows, path=str(path))
        return True

    def _build(self, version: int, *, wait: bool) -> None:
        """Publish `version`'s form (one process per pod builds; the others map it)."""
        try:
            result = lake.publish(self._lake_settings, version=version, wait=wait)
            if result is not None:
                if result.built:
                    log.info(
                        "serving_form_built",
                        version=result.version,
                        rows=result.rows,
                        bytes_per_row=round(result.bytes_per_row, 1),
                        seconds=result.seconds,
                    )
                self._map(version)
        except Exception as exc:  # DuckDB keeps answering
            log.warning("serving_build_failed", error=scrub_text(str(exc).splitlines()[0]))
        finally:
            self._building = False

    def index_for(self, version: int | None) -> ServingForm | None:
        """The serving form answering `version`, or None (DuckDB answers)."""
        form = self._form
        return form if form is not None and form.version == version else None

    def engine(self) -> str:
        """Which engine answers the current version: `serving` or `duckdb`."""
        fresh, version = self.fresh_version()
        if not fresh:
            version = self._answer_version(self._reader.version)
        return "serving" if self.index_for(version) is not None else "duckdb"

    def _timed(self, kind: str, engine: str, t0: float) -> None:
        if self._metrics is not None:
            self._metrics.observe_query(kind, engine, time.perf_counter() - t0)

    # -- adjustment ------------------------------------------------------------------------

    def adjustment(self) -> Adjustment:
        """The factors of every corporate action, for the versions the reader is on: built
        once per (eod_prices, corporate_actions) version pair, by the `action_factors` view
        (the same arithmetic the SQL views use)."""
        key = (self._reader.version, self._reader.actions_version)
        cached = self._adjustment
        if cached is not None and cached[0] == key:
            return cached[1]
        with self._adjustment_lock:
            cached = self._adjustment
            if cached is not None and cached[0] == key:
                return cached[1]
            t0 = time.perf_counter()
            with self.cursor() as cur:
                key = (self._reader.version, self._reader.actions_version)
                (n,) = cur.execute("SELECT count(*) FROM corporate_actions").fetchone() or (0,)
                table = (
                    cur.execute(
                        "SELECT ticker, exchange_mic, ex_date, split_price_factor, "
                        "price_factor, volume_factor FROM action_factors"
                    ).to_arrow_table()
                    if n
                    else None
                )
            adjustment = (
                build_adjustment(table, actions_version=key[1])
                if table is not None
                else build_adjustment(_NO_FACTORS, actions_version=key[1])
            )
            self._adjustment = (key, adjustment)
            self._form_ids_cache = None
            log.info(
                "adjustment_built",
                actions=int(n),
                series=len(adjustment.series),
                seconds=round(time.perf_counter() - t0, 3),
            )
            return adjustment

    def actions_revision(self) -> str:
        """The corporate actions version answers are adjusted by, for cache keys and ETags:
        actions change without a new eod_prices version."""
        return f"|a{self._reader.actions_version}"

    def _form_ids(self, form: ServingForm, adjustment: Adjustment) -> npt.NDArray[np.int64]:
        """Adjustment series id of each serving-form series (cached per form and factors)."""
        cached = self._form_ids_cache
        if cached is None or cached[0] is not form or cached[1] is not adjustment:
            cached = (form, adjustment, adjustment.ids(form.series))
            self._form_ids_cache = cached
        return cached[2]

    def _form_scale(
        self,
        form: ServingForm,
        pos: npt.NDArray[np.int64],
        adjust: Adjust,
        *,
        sid: int | None = None,
        sids: npt.NDArray[np.int64] | None = None,
    ) -> Scale | None:
        """Factors for serving-form rows `pos` (None: as traded); `sid` when every row is
        of that one series (a range: only its own actions are searched), `sids` when the
        caller has the rows' series already."""
        if not adjust.adjusted:
            return None
        adjustment = self.adjustment()
        ids = self._form_ids(form, adjustment)
        days = np.asarray(form.days[pos], dtype=np.int64)
        if sid is not None:
            aid = int(ids[sid]) if ids.size else -1
            return adjustment.series_factors(aid, days, adjust.basis, adjust.as_of)
        if sids is None:
            sids = form.sids_at(pos)
        aids = ids[sids] if ids.size else np.full(pos.size, -1, np.int64)
        return adjustment.factors(aids, days, adjust.basis, adjust.as_of)

    def _point_scale(self, form: ServingForm, sid: int, p: int, adjust: Adjust) -> Scale | None:
        """`_form_scale` of one row, without numpy searches."""
        if not adjust.adjusted:
            return None
        adjustment = self.adjustment()
        ids = self._form_ids(form, adjustment)
        aid = int(ids[sid]) if ids.size else -1
        f, v = adjustment.factor_at(aid, int(form.days[p]), adjust.basis, adjust.as_of)
        return np.asarray([f]), np.asarray([v])

    def _adjusted(self, table: pa.Table, adjust: Adjust) -> pa.Table:
        return _adjust_table(table, self.adjustment(), adjust) if adjust.adjusted else table

    # -- symbols ---------------------------------------------------------------------------

    def _series_map(self, version: int | None) -> dict[str, list[str]]:
        cached = self._series
        if cached is not None and cached[0] == version:
            return cached[1]
        form = self.index_for(version)
        mapping: dict[str, list[str]] = {}
        if form is not None:
            for ticker, mic in form.series:
                mapping.setdefault(ticker, []).append(mic)
        else:
            with self.cursor() as cur:
                rows = cur.execute(
                    "SELECT DISTINCT ticker, exchange_mic FROM eod ORDER BY 1, 2"
                ).fetchall()
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
        adjust: Adjust,
        limit: int,
        offset: int,
        order: Order,
    ) -> tuple[Bars, int]:
        """One page of a ticker's bars in date order, and the total in the range."""
        t0 = time.perf_counter()
        form = self.index_for(version)
        if form is not None:
            sid = form.sid_of[symbol, exchange]
            if date_from is not None and date_from == date_to and offset == 0 and limit > 0:
                p = form.point(sid, date_from)  # one search
                self._timed("bars", "serving", t0)
                if p is None:
                    return Bars(form=form), 0
                at = np.asarray([p], dtype=np.int64)
                return Bars(
                    form=form, positions=at, scale=self._point_scale(form, sid, p, adjust)
                ), 1
            lo, hi = form.range(sid, date_from, date_to)
            if order == "asc":
                pos = np.arange(lo + offset, min(hi, lo + offset + limit), dtype=np.int64)
            else:
                pos = np.arange(
                    hi - 1 - offset, max(lo, hi - offset - limit) - 1, -1, dtype=np.int64
                )
            scale = self._form_scale(form, pos, adjust, sid=sid)
            self._timed("bars", "serving", t0)
            return Bars(form=form, positions=pos, scale=scale), hi - lo
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
                f"SELECT {_bar_select()} FROM eod WHERE {cond} "
                f"ORDER BY trade_date {order.upper()} LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).to_arrow_table()
        table = self._adjusted(canonical(table.cast(BAR_SCHEMA)), adjust)
        self._timed("bars", "duckdb", t0)
        return Bars(table=table), int(count[0]) if count else 0

    def on_date(
        self,
        day: dt.date,
        *,
        exchange: str | None,
        version: int | None,
        adjust: Adjust,
        limit: int,
        offset: int,
    ) -> tuple[Bars, int]:
        """Every ticker's bar on one date, by ticker."""
        t0 = time.perf_counter()
        form = self.index_for(version)
        if form is not None:
            pos = form.on_date(day, exchange)
            page = pos[offset : offset + limit]
            scale = self._form_scale(form, page, adjust)
            self._timed("on_date", "serving", t0)
            return Bars(form=form, positions=page, scale=scale), int(pos.size)
        where, params = ["trade_date = ?"], [day.isoformat()]
        if exchange is not None:
            where.append("exchange_mic = ?")
            params.append(exchange)
        cond = " AND ".join(where)
        with self.cursor() as cur:
            count = cur.execute(f"SELECT count(*) FROM eod WHERE {cond}", params).fetchone()
            table = cur.execute(
                f"SELECT {_bar_select()} FROM eod WHERE {cond} "
                "ORDER BY ticker, exchange_mic LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).to_arrow_table()
        table = self._adjusted(canonical(table.cast(BAR_SCHEMA)), adjust)
        self._timed("on_date", "duckdb", t0)
        return Bars(table=table), int(count[0]) if count else 0

    def between(
        self,
        *,
        exchange: str | None,
        date_from: dt.date | None,
        date_to: dt.date | None,
        adjust: Adjust,
        limit: int,
        offset: int,
    ) -> tuple[Bars, int]:
        """One page of every ticker's bars in a date range, by date then ticker."""
        t0 = time.perf_counter()
        cond, params = _range_where(None, exchange, date_from, date_to)
        with self.cursor() as cur:
            count = cur.execute(f"SELECT count(*) FROM eod WHERE {cond}", params).fetchone()
            table = cur.execute(
                f"SELECT {_bar_select()} FROM eod WHERE {cond} "
                "ORDER BY trade_date, ticker, exchange_mic LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).to_arrow_table()
        table = self._adjusted(table.cast(BAR_SCHEMA), adjust)
        self._timed("between", "duckdb", t0)
        return Bars(table=table), int(count[0]) if count else 0

    def stream_bars(
        self,
        *,
        symbol: str | None,
        exchange: str | None,
        version: int | None,
        date_from: dt.date | None,
        date_to: dt.date | None,
        adjust: Adjust = AS_TRADED,
        order: Order = "asc",
        batch_rows: int = STREAM_BATCH_ROWS,
    ) -> BarStream:
        """Every bar of one series (`symbol` and its resolved `exchange`), or of every ticker
        (`symbol` None; by date then ticker), in a date range, read in batches.

        Memory stays flat whatever the size: one series is at most a few thousand rows,
        sorted by DuckDB; every ticker is read one lake partition (a year, or a month) at a
        time, each sorted on its own: one query per partition reads each file once, and the
        sort holds one partition, however long the range. `batches()` reads through its own cursor of the pinned snapshot:
        a new lake version during a long download neither changes nor breaks it (a result
        reader outlives the closing of its connection).
        """
        cond, params = _range_where(symbol, exchange, date_from, date_to)
        with self.cursor() as cur:
            found = cur.execute(
                f"SELECT count(*), min(trade_date), max(trade_date) FROM eod WHERE {cond}", params
            ).fetchone()
        total, first, last = (int(found[0]), found[1], found[2]) if found else (0, None, None)
        select = f"SELECT {_bar_select()} FROM eod WHERE {cond}"
        adjustment = self.adjustment() if adjust.adjusted else None
        if symbol is not None or first is None or last is None:
            queries = [(f"{select} ORDER BY trade_date {order.upper()}", params)]
        else:
            months = list(_windows(first, last, self._granularity))
            if order == "desc":
                months.reverse()
            queries = [
                (
                    f"{select} AND trade_date >= ? AND trade_date < ? "
                    f"ORDER BY trade_date {order.upper()}, ticker, exchange_mic",
                    [*params, lo.isoformat(), hi.isoformat()],
                )
                for lo, hi in months
            ]

        def batches() -> Iterator[pa.RecordBatch]:
            t0 = time.perf_counter()
            con = self._reader.connection()
            try:
                for sql, args in queries:
                    reader = con.execute(sql, args).to_arrow_reader(batch_rows)
                    for batch in reader:
                        if not batch.num_rows:
                            continue
                        if adjustment is None:
                            yield batch.cast(BAR_SCHEMA)
                        else:
                            table = pa.Table.from_batches([batch.cast(BAR_SCHEMA)])
                            yield from _adjust_table(table, adjustment, adjust).to_batches()
            finally:
                con.close()
                self._timed("stream", "duckdb", t0)

        if total == 0:
            return BarStream(0, BAR_SCHEMA, lambda: iter(()))
        return BarStream(total, BAR_SCHEMA, batches)

    # -- deltas ----------------------------------------------------------------------------

    def _ticker_closes(
        self,
        symbol: str,
        exchange: str,
        version: int | None,
        lo: dt.date | None,
        hi: dt.date | None,
        adjust: Adjust,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], str]:
        """Day numbers and closes of one ticker's bars in lo..hi, and the engine that read them."""
        form = self.index_for(version)
        if form is not None:
            sid = form.sid_of[symbol, exchange]
            a, b = form.range(sid, lo, hi)
            pos = np.arange(a, b, dtype=np.int64)
            if pos.size == 1:
                scale = self._point_scale(form, sid, a, adjust)
            else:
                scale = self._form_scale(form, pos, adjust, sid=sid)
            return (
                np.asarray(form.days[a:b], dtype=np.int64),
                form.closes_at(pos, scale=scale),
                "serving",
            )
        where, params = ["ticker = ?", "exchange_mic = ?"], [symbol, exchange]
        if lo is not None:
            where.append("trade_date >= ?")
            params.append(lo.isoformat())
        if hi is not None:
            where.append("trade_date <= ?")
            params.append(hi.isoformat())
        with self.cursor() as cur:
            table = cur.execute(
                f"SELECT trade_date, close AS c FROM eod "
                f"WHERE {' AND '.join(where)} ORDER BY trade_date",
                params,
            ).to_arrow_table()
        days = np.asarray(
            table.column("trade_date").combine_chunks().cast(pa.int32()).to_numpy(), np.int64
        )
        closes = np.asarray(table.column("c").combine_chunks().cast(pa.float64()).to_numpy())
        return days, self._scaled_closes(symbol, exchange, days, closes, adjust), "duckdb"

    def _scaled_closes(
        self,
        symbol: str,
        exchange: str,
        days: npt.NDArray[np.int64],
        closes: npt.NDArray[np.float64],
        adjust: Adjust,
    ) -> npt.NDArray[np.float64]:
        """One series' as-traded closes adjusted per `adjust`."""
        if not adjust.adjusted:
            return closes
        adjustment = self.adjustment()
        sid = adjustment.id_of.get((symbol, exchange), -1)
        pf, _ = adjustment.series_factors(sid, days, adjust.basis, adjust.as_of)
        return lake.apply_prices(closes, pf)

    def _last_bar(
        self, symbol: str, exchange: str, version: int | None, day: dt.date | None, adjust: Adjust
    ) -> tuple[dt.date, float] | None:
        form = self.index_for(version)
        if form is not None:
            sid = form.sid_of[symbol, exchange]
            p = form.last_on_or_before(sid, day)
            if p is None:
                return None
            pos = np.asarray([p], dtype=np.int64)
            scale = self._point_scale(form, sid, p, adjust)
            return to_date(int(form.days[p])), float(form.closes_at(pos, scale=scale)[0])
        params: list[Any] = [symbol, exchange]
        bound = ""
        if day is not None:
            bound = " AND trade_date <= ?"
            params.append(day.isoformat())
        with self.cursor() as cur:
            found = cur.execute(
                f"SELECT trade_date, close FROM eod "
                f"WHERE ticker = ? AND exchange_mic = ?{bound} ORDER BY trade_date DESC LIMIT 1",
                params,
            ).fetchone()
        if found is None:
            return None
        close = self._scaled_closes(
            symbol,
            exchange,
            np.asarray([day_number(found[0])], np.int64),
            np.asarray([float(found[1])]),
            adjust,
        )
        return found[0], float(close[0])

    def delta(
        self,
        symbol: str,
        *,
        exchange: str,
        version: int | None,
        days: int,
        day: dt.date | None,
        adjust: Adjust,
    ) -> m.Delta:
        """Change over `days` sessions of the exchange's calendar, ending at the ticker's last
        bar on or before `day`; a null start with a `reason` when it has no bar there."""
        t0 = time.perf_counter()
        engine = "serving" if self.index_for(version) is not None else "duckdb"
        last = self._last_bar(symbol, exchange, version, day, adjust)
        if last is None:
            raise NotFoundError(f"no bar for {symbol} on or before {day}", symbol=symbol)
        end_date, end_close = last
        start, before = start_session(exchange, end_date, days)
        start_close = None
        reason = None
        if start is None:
            reason = _too_few(before, end_date, days)
        else:
            found, closes, _ = self._ticker_closes(symbol, exchange, version, start, start, adjust)
            if found.size:
                start_close = float(closes[0])
            else:
                reason = _no_bar(start)
        self._timed("delta", engine, t0)
        if start_close is None:
            return m.Delta(
                symbol, exchange, days, None, None, end_date, end_close, None, None, reason
            )
        return m.Delta(
            symbol,
            exchange,
            days,
            start,
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
        version: int | None,
        days: int,
        date_from: dt.date | None,
        date_to: dt.date | None,
        adjust: Adjust,
        limit: int,
        offset: int,
    ) -> tuple[pa.Table, int]:
        """The `days`-session change (exchange calendar) for every bar in the range."""
        t0 = time.perf_counter()
        sessions = calendar_sessions(exchange).astype(np.int64)
        lo = None
        if date_from is not None:
            first, _ = start_session(exchange, date_from, days)
            lo = first if first is not None else None
        bar_days, closes, engine = self._ticker_closes(
            symbol, exchange, version, lo, date_to, adjust
        )
        keep = np.flatnonzero(bar_days >= day_number(date_from)) if date_from else None
        ends = np.arange(bar_days.size) if keep is None else keep
        total = int(ends.size)
        ends = ends[offset : offset + limit]
        end_days = bar_days[ends]
        before = np.searchsorted(sessions, end_days)
        ok = before >= days
        start_days = np.where(ok, sessions[np.clip(before - days, 0, None)], -1)
        at = np.searchsorted(bar_days, start_days)
        at_c = np.clip(at, 0, max(bar_days.size - 1, 0))
        has = ok & (at < bar_days.size)
        has &= bar_days[at_c] == start_days if bar_days.size else has
        end_close = closes[ends]
        start_close = np.where(has, closes[at_c] if closes.size else 0.0, np.nan)
        end_dates = to_dates(end_days)
        start_dates = to_dates(np.where(ok, start_days, 0))
        out_start_date: list[dt.date | None] = []
        out_start_close: list[float | None] = []
        change: list[float | None] = []
        pct: list[float | None] = []
        reasons: list[str | None] = []
        for i in range(ends.size):
            if has[i]:
                sc, ec = float(start_close[i]), float(end_close[i])
                out_start_date.append(start_dates[i])
                out_start_close.append(sc)
                change.append(round(ec - sc, 10))
                pct.append(_pct(ec, sc))
                reasons.append(None)
            else:
                out_start_date.append(None)
                out_start_close.append(None)
                change.append(None)
                pct.append(None)
                reasons.append(
                    _no_bar(start_dates[i])
                    if ok[i]
                    else _too_few(int(before[i]), end_dates[i], days)
                )
        n = int(ends.size)
        table = pa.table(
            {
                "ticker": [symbol] * n,
                "exchange_mic": [exchange] * n,
                "days": pa.array([days] * n, pa.int64()),
                "start_date": pa.array(out_start_date, pa.date32()),
                "start_close": pa.array(out_start_close, pa.float64()),
                "end_date": pa.array(end_dates, pa.date32()),
                "end_close": pa.array(end_close.tolist(), pa.float64()),
                "change": pa.array(change, pa.float64()),
                "pct_change": pa.array(pct, pa.float64()),
                "reason": pa.array(reasons, pa.string()),
            },
            schema=DELTA_SCHEMA,
        )
        self._timed("delta_series", engine, t0)
        return table, total

    # -- movers ----------------------------------------------------------------------------

    def _closes_on(
        self,
        dates: list[dt.date],
        exchange: str | None,
        version: int | None,
        adjust: Adjust,
        form: ServingForm | None,
    ) -> tuple[_Closes, str]:
        """Every series' close on each of `dates`: from `form` (the caller's
        `index_for(version)`), or DuckDB when there is none."""
        if form is not None:
            pos = np.concatenate(
                [form.on_date(d, exchange) for d in dates] or [np.empty(0, np.int64)]
            )
            sids = form.sids_at(pos)
            return (
                _Closes(
                    form.series,
                    sids,
                    np.asarray(form.days[pos], dtype=np.int64),
                    form.closes_at(pos, scale=self._form_scale(form, pos, adjust, sids=sids)),
                ),
                "serving",
            )
        series = sorted((t, mic) for t, mics in self._series_map(version).items() for mic in mics)
        id_of = {key: i for i, key in enumerate(series)}
        wanted = ", ".join("?" for _ in dates)
        where, params = [f"trade_date IN ({wanted})"], [d.isoformat() for d in dates]
        if exchange is not None:
            where.append("exchange_mic = ?")
            params.append(exchange)
        with self.cursor() as cur:
            table = cur.execute(
                "SELECT ticker, exchange_mic, trade_date, close AS c "
                f"FROM eod WHERE {' AND '.join(where)}",
                params,
            ).to_arrow_table()
        if adjust.adjusted:
            adjustment = self.adjustment()
            f, _ = adjustment.factors(
                _series_ids(
                    adjustment,
                    table.column("ticker").combine_chunks(),
                    table.column("exchange_mic").combine_chunks(),
                ),
                np.asarray(
                    table.column("trade_date").combine_chunks().cast(pa.int32()).to_numpy(),
                    np.int64,
                ),
                adjust.basis,
                adjust.as_of,
            )
            raw = np.asarray(table.column("c").combine_chunks().cast(pa.float64()).to_numpy())
            table = table.set_column(3, "c", pa.array(lake.apply_prices(raw, f)))
        ids = [
            id_of[t, mic]
            for t, mic in zip(
                table.column("ticker").to_pylist(),
                table.column("exchange_mic").to_pylist(),
                strict=True,
            )
        ]
        return (
            _Closes(
                series,
                np.asarray(ids, dtype=np.int64),
                np.asarray(
                    table.column("trade_date").combine_chunks().cast(pa.int32()).to_numpy(),
                    dtype=np.int64,
                ),
                np.asarray(
                    table.column("c").combine_chunks().cast(pa.float64()).to_numpy(),
                    dtype=np.float64,
                ),
            ),
            "duckdb",
        )

    def _exchange_codes(
        self, series: Sequence[tuple[str, str]]
    ) -> tuple[npt.NDArray[np.int64], list[str]]:
        """Each series' exchange as a code into the returned MIC list; kept for the last few
        series lists (a serving form's is one object for its life)."""
        cached = self._codes_of.get(id(series))
        if cached is not None and cached[0] is series:
            return cached[1], cached[2]
        names = sorted({mic for _, mic in series})
        index = {m: i for i, m in enumerate(names)}
        codes = np.fromiter((index[mic] for _, mic in series), np.int64, len(series))
        if len(self._codes_of) >= 4:
            self._codes_of.clear()
        self._codes_of[id(series)] = (series, codes, names)
        return codes, names

    def _lead_adjusted(
        self,
        form: ServingForm,
        sids: npt.NDArray[np.int64],
        sc: npt.NDArray[np.float64],
        ec: npt.NDArray[np.float64],
        start_days: npt.NDArray[np.int64],
        distinct_starts: list[int],
        end_day: int,
        adjust: Adjust,
        order: MoversOrder,
        limit: int,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Movers' rows that can rank in the first `limit` once adjusted, with their
        adjusted start and end closes, the same numbers as adjusting every row.

        An adjusted change is the as-traded one over the product of the window's action
        factors (few actions: `Adjustment.window_ratio`), up to the rounding of the two
        adjusted closes to DECIMALS. That rounding moves a percent change by at most
        `slack` (from a lower bound of each series' factors), so only rows within it of
        the `limit`-th best, or of zero, are adjusted exactly and ranked by the caller: a
        cross-section costs a few window actions, not a factor search per row."""
        adjustment = self.adjustment()
        form_ids = self._form_ids(form, adjustment)
        aids = form_ids[sids] if form_ids.size else np.full(sids.size, -1, np.int64)
        through = end_day if adjust.as_of is None else min(end_day, day_number(adjust.as_of))
        if len(distinct_starts) == 1:  # one exchange's calendar: one window
            ratio, lowest = adjustment.window_ratio(aids, distinct_starts[0], through, adjust.basis)
        else:
            ratio, lowest = np.ones(sids.size), np.ones(sids.size)
            for start in distinct_starts:
                rows = np.flatnonzero(start_days == start)
                ratio[rows], lowest[rows] = adjustment.window_ratio(
                    aids[rows], start, through, adjust.basis
                )
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            pct = ec / (sc * ratio)
            # |adjusted - estimate| <= slack: each close rounds by at most 0.5e-10, and is
            # at least its as-traded value times `lowest`; 1e-11 covers the estimate's ulps
            slack = (1e-11 + 1e-10 / (ec * lowest) + 1e-10 / (sc * lowest)) * pct * 100.0
            pct -= 1.0
            pct *= 100.0
        key = -pct if order == "gainers" else pct  # smaller ranks first, below zero qualifies
        maybe = ~(key - slack >= 0)  # NaN: kept, adjusted exactly
        sure = key + slack < 0
        if int(np.count_nonzero(sure)) >= limit:
            worst = np.partition((key + slack)[sure], limit - 1)[limit - 1]
            maybe &= ~(key - slack > worst)
        rows = np.flatnonzero(maybe)
        n = rows.size
        f, _ = adjustment.factors(
            np.concatenate([aids[rows], aids[rows]]),
            np.concatenate([start_days[rows], np.full(n, end_day, np.int64)]),
            adjust.basis,
            adjust.as_of,
        )
        closes = lake.apply_prices(np.concatenate([sc[rows], ec[rows]]), f)
        return sids[rows], closes[:n], closes[n:]

    def movers(
        self,
        day: dt.date,
        *,
        days: int,
        exchange: str | None,
        version: int | None,
        limit: int,
        order: MoversOrder,
        adjust: Adjust,
    ) -> list[MoverRow]:
        """Tickers with a bar on `day` and on the session `days` sessions earlier (their
        exchange's calendar), ranked by percent change: `gainers` rose, `losers` fell; ties
        by ticker, then exchange."""
        t0 = time.perf_counter()
        form = self.index_for(version)
        mics = (
            [exchange]
            if exchange is not None
            else sorted(form.by_exchange)
            if form is not None
            else sorted({mic for ms in self._series_map(version).values() for mic in ms})
        )
        starts: dict[str, dt.date] = {}
        for mic in mics:
            start, _ = start_session(mic, day, days)
            if start is not None:
                starts[mic] = start
        if not starts:
            self._timed("movers", "serving" if form is not None else "duckdb", t0)
            return []
        # the serving form ranks as-traded closes over the window's actions first, and
        # adjusts the few rows that can lead exactly (`_lead_adjusted`)
        adjust_later = form is not None and adjust.adjusted
        got, engine = self._closes_on(
            sorted({day, *starts.values()}),
            exchange,
            version,
            Adjust("none") if adjust_later else adjust,
            form,
        )
        # the start session of each series (its exchange's), -1 if none
        codes, mic_names = self._exchange_codes(got.series)
        start_of_code = np.asarray(
            [day_number(starts[m]) if m in starts else -1 for m in mic_names], np.int64
        )
        start_day = start_of_code[codes]
        at_end = got.days == day_number(day)
        at_start = got.days == start_day[got.ids]
        end_ids, start_ids = got.ids[at_end], got.ids[at_start]
        both, ie, is_ = np.intersect1d(end_ids, start_ids, assume_unique=True, return_indices=True)
        ec = got.closes[at_end][ie]
        sc = got.closes[at_start][is_]
        if adjust_later and form is not None:
            both, sc, ec = self._lead_adjusted(
                form,
                both,
                sc,
                ec,
                start_day[both],
                sorted({day_number(s) for s in starts.values()}),
                day_number(day),
                adjust,
                order,
                limit,
            )
        pct = (ec / sc - 1.0) * 100.0
        pick = np.flatnonzero(pct > 0) if order == "gainers" else np.flatnonzero(pct < 0)
        key = -pct[pick] if order == "gainers" else pct[pick]
        k = min(limit, int(pick.size))
        if k < pick.size:  # every row at or better than the k-th, ties included
            kth = np.partition(key, k - 1)[k - 1]
            keep = np.flatnonzero(key <= kth)
            pick, key = pick[keep], key[keep]
        # ids are in (ticker, exchange_mic) order: the tie-break is the id
        ranked = pick[np.lexsort((both[pick], key))][:limit]
        out = []
        for rank, i in enumerate(ranked.tolist(), start=1):
            ticker, mic = got.series[int(both[i])]
            s, e = float(sc[i]), float(ec[i])
            out.append(
                MoverRow(rank, ticker, mic, starts[mic], s, day, e, round(e - s, 10), _pct(e, s))
            )
        self._timed("movers", engine, t0)
        return out

    # -- corporate actions -----------------------------------------------------------------

    def actions(
        self,
        symbol: str,
        *,
        exchange: str,
        date_from: dt.date | None,
        date_to: dt.date | None,
        kinds: tuple[str, ...] = (),
    ) -> tuple[pa.Table, int | None]:
        """One series' actions by ex-date, with their factors; and the actions version."""
        t0 = time.perf_counter()
        where, params = ["a.ticker = ?", "a.exchange_mic = ?"], [symbol, exchange]
        if date_from is not None:
            where.append("a.ex_date >= ?")
            params.append(date_from.isoformat())
        if date_to is not None:
            where.append("a.ex_date <= ?")
            params.append(date_to.isoformat())
        if kinds:
            where.append(f"a.kind IN ({', '.join('?' for _ in kinds)})")
            params.extend(kinds)
        with self.cursor() as cur:
            version = self._reader.actions_version
            table = cur.execute(
                "SELECT a.ticker, a.exchange_mic, a.ex_date, a.kind, a.ratio, a.amount, "
                "a.currency, a.new_symbol, a.declared_date, a.source, f.prev_close, "
                "f.price_factor, f.volume_factor FROM corporate_actions a JOIN action_factors f "
                "USING (ticker, exchange_mic, ex_date, kind) "
                f"WHERE {' AND '.join(where)} ORDER BY a.ex_date, a.kind",
                params,
            ).to_arrow_table()
        self._timed("actions", "duckdb", t0)
        return canonical(table.cast(ACTION_SCHEMA)), version

    # -- health ----------------------------------------------------------------------------

    def ping(self) -> int | None:
        """Raise if the lake cannot be read; return the version."""
        with self.cursor() as cur:
            cur.execute("SELECT 1 FROM eod LIMIT 1").fetchall()
        return self._reader.version


def _range_where(
    symbol: str | None, exchange: str | None, lo: dt.date | None, hi: dt.date | None
) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("ticker = ?", symbol),
        ("exchange_mic = ?", exchange),
        ("trade_date >= ?", lo.isoformat() if lo else None),
        ("trade_date <= ?", hi.isoformat() if hi else None),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    return " AND ".join(where) or "true", params


VersionFn = Callable[[], int | None]
