"""An in-memory, sorted copy of one pinned lake version for sub-millisecond point reads.

The lake changes once a day and is read all day, so each process keeps the snapshot's bars
sorted by (ticker, exchange, date) in Arrow/numpy columns: a point lookup is one binary search,
an N-session delta is two positions in the same ticker's run (session order by construction),
and movers are one vectorised search over every ticker. DuckDB over the Delta table stays the
reference and answers whenever this index is off, too large, or not yet built for the version.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from dataclasses import dataclass

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from lake import FLOAT_BAR_COLUMNS

#: Columns the API returns; the rest of `eod` (lineage, partition) stays in the lake.
INDEX_COLUMNS = (
    "ticker",
    "exchange_mic",
    "trade_date",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "adj_open",
    "adj_high",
    "adj_low",
    "adj_close",
    "adj_volume",
    "split_factor",
    "dividend",
    "currency",
    "source",
)
_EPOCH = dt.date(1970, 1, 1)
#: The index's row layout starts with the float columns of a bar, in schema order
#: (open, high, low, close, the adjusted four, adjusted volume, split factor, dividend).
_FLOAT_COLUMNS = FLOAT_BAR_COLUMNS

#: One bar in the API's field order (`query_api._models.Bar`): ticker, exchange_mic, date,
#: open, high, low, close, volume, split_factor, dividend, currency, source.
BarRow = tuple[
    str,
    str,
    dt.date,
    float,
    float,
    float,
    float,
    int,
    float | None,
    float | None,
    str | None,
    str | None,
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


#: Added to day numbers so dates before 1970 still sort inside one ticker's key range.
_DAY_OFFSET = 1 << 30


_ORDINAL_BASE = _EPOCH.toordinal() - _DAY_OFFSET


def day_number(day: dt.date) -> int:
    return day.toordinal() - _ORDINAL_BASE


@dataclass(frozen=True, slots=True)
class Positions:
    """Row positions of a vectorised lookup: `end` rows, `start` = N sessions earlier or -1."""

    sid: IntArray
    end: IntArray
    start: IntArray


class HotIndex:
    """Bars of one lake version sorted by (ticker, exchange_mic, trade_date)."""

    def __init__(self, table: pa.Table, *, version: int | None) -> None:
        self.version = version
        self.table = table
        self.rows = table.num_rows
        pairs = pc.binary_join_element_wise(
            table.column("ticker"), table.column("exchange_mic"), "\x00"
        )
        runs = pc.run_end_encode(pairs.combine_chunks())
        ends = np.asarray(runs.run_ends.to_numpy(zero_copy_only=False), dtype=np.int64)
        names = runs.values.to_pylist()
        self.starts: IntArray = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        self.ends: IntArray = ends
        self.series: list[tuple[str, str]] = [tuple(n.split("\x00", 1)) for n in names]  # type: ignore[misc]
        self.by_exchange: dict[str, list[int]] = {}
        self.sid_of: dict[tuple[str, str], int] = {}
        for sid, (ticker, mic) in enumerate(self.series):
            self.by_exchange.setdefault(mic, []).append(sid)
            self.sid_of[ticker, mic] = sid
        # Each series' row run as Python ints, for the point lookup's plain-Python search.
        self._runs: list[tuple[int, int]] = list(
            zip(self.starts.tolist(), ends.tolist(), strict=True)
        )
        self.days = (
            np.asarray(
                table.column("trade_date").combine_chunks().cast(pa.int32()).to_numpy(),
                dtype=np.int64,
            )
            + _DAY_OFFSET
        )
        # The day numbers as Python ints on indexing, without a numpy scalar per read.
        self._day_view = self.days.data
        sid_of_row = np.repeat(np.arange(len(self.series), dtype=np.int64), ends - self.starts)
        self.keys: IntArray = (sid_of_row << 32) | self.days
        # The float columns side by side, one row per bar: a point lookup reads its bar with
        # one `tolist()` instead of a scalar read per field; `_num` holds column views.
        # Volume and the currency and source codes ride along (exact as float64 below 2**53),
        # so a point lookup touches one row of one array: a cache miss, not six.
        width = len(_FLOAT_COLUMNS)
        self._rows: FloatArray = np.empty((self.rows, width + 3), dtype=np.float64)
        for i, name in enumerate(_FLOAT_COLUMNS):
            self._rows[:, i] = self._numeric(name)
        self._num: dict[str, FloatArray] = {
            name: self._rows[:, i] for i, name in enumerate(_FLOAT_COLUMNS)
        }
        self._rows[:, width] = (
            self.table.column("volume").combine_chunks().to_numpy(zero_copy_only=False)
        )
        text = {name: self._dictionary(name) for name in ("currency", "source")}
        self._rows[:, width + 1] = text["currency"][0]
        self._rows[:, width + 2] = text["source"][0]
        # column views of the packed rows for the vectorised paths (no second copy)
        self._volume = self._rows[:, width]
        self._currency_codes = self._rows[:, width + 1]
        self._source_codes = self._rows[:, width + 2]
        # the names by code; the code -1 (no value) reads the trailing None
        self._currencies = text["currency"][1]
        self._sources = text["source"][1]
        self._close = self._num["close"]
        adj = self._num["adj_close"]
        self._adj_close = np.where(np.isnan(adj), self._close, adj)

    def _dictionary(self, name: str) -> tuple[npt.NDArray[np.int32], list[str | None]]:
        encoded = self.table.column(name).combine_chunks().dictionary_encode()
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        return np.asarray(codes, dtype=np.int32), [*encoded.dictionary.to_pylist(), None]

    def rows_at(self, pos: IntArray, *, adjusted: bool) -> list[BarRow]:
        """Bars at row positions as `BarRow` tuples, without Arrow compute."""
        if pos.size == 0:
            return []
        if pos.size == 1:
            return [self._row(int(pos[0]), adjusted=adjusted)]
        sids = np.searchsorted(self.ends, pos, side="right")
        prices = []
        for name in ("open", "high", "low", "close"):
            raw = self._num[name][pos]
            if adjusted:
                adj = self._num[f"adj_{name}"][pos]
                raw = np.where(np.isnan(adj), raw, adj)
            prices.append(raw.tolist())
        if adjusted:
            adj_v = self._num["adj_volume"][pos]
            volume = (
                np.where(np.isnan(adj_v), self._volume[pos], np.round(np.nan_to_num(adj_v)))
                .astype(np.int64)
                .tolist()
            )
        else:
            volume = self._volume[pos].astype(np.int64).tolist()
        split = [None if v != v else v for v in self._num["split_factor"][pos].tolist()]
        div = [None if v != v else v for v in self._num["dividend"][pos].tolist()]
        cur = [self._currencies[c] for c in self._currency_codes[pos].astype(np.int64).tolist()]
        src = [self._sources[c] for c in self._source_codes[pos].astype(np.int64).tolist()]
        days = [_EPOCH + dt.timedelta(days=d) for d in (self.days[pos] - _DAY_OFFSET).tolist()]
        series = [self.series[sid] for sid in sids.tolist()]
        return list(
            zip(
                [t for t, _ in series],
                [mic for _, mic in series],
                days,
                *prices,
                volume,
                split,
                div,
                cur,
                src,
                strict=True,
            )
        )

    def _row(
        self, p: int, *, adjusted: bool, sid: int | None = None, day: dt.date | None = None
    ) -> BarRow:
        """One bar by one row read (a point lookup): no per-field indexing or arrays.

        `sid` and `day`, when the caller knows them, save a search and a read."""
        if sid is None:
            sid = int(self.ends.searchsorted(p, side="right"))
        if day is None:
            day = _EPOCH + dt.timedelta(days=int(self.days.item(p)) - _DAY_OFFSET)
        o, h, lo, c, adj_o, adj_h, adj_lo, adj_c, adj_v, split, div, vol, cur, src = self._rows[
            p
        ].tolist()
        volume = int(vol)
        if adjusted:
            o = adj_o if adj_o == adj_o else o
            h = adj_h if adj_h == adj_h else h
            lo = adj_lo if adj_lo == adj_lo else lo
            c = adj_c if adj_c == adj_c else c
            volume = round(adj_v) if adj_v == adj_v else volume
        ticker, mic = self.series[sid]
        return (
            ticker,
            mic,
            day,
            o,
            h,
            lo,
            c,
            volume,
            None if split != split else split,
            None if div != div else div,
            self._currencies[int(cur)],
            self._sources[int(src)],
        )

    def point_row(self, sid: int, day: dt.date, *, adjusted: bool) -> tuple[int, BarRow] | None:
        """The row position and bar of series `sid` on `day`, if it has one."""
        p = self.point(sid, day)
        return None if p is None else (p, self._row(p, adjusted=adjusted, sid=sid, day=day))

    @classmethod
    def build(cls, cursor: duckdb.DuckDBPyConnection, *, version: int | None) -> HotIndex:
        cols = ", ".join(INDEX_COLUMNS)
        table = cursor.execute(
            f"SELECT {cols} FROM eod ORDER BY ticker, exchange_mic, trade_date"
        ).to_arrow_table()
        return cls(table.combine_chunks(), version=version)

    def _numeric(self, name: str) -> FloatArray:
        col = self.table.column(name).combine_chunks().cast(pa.float64())
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)

    def closes(self, *, adjusted: bool) -> FloatArray:
        return self._adj_close if adjusted else self._close

    # -- lookups ---------------------------------------------------------------------------

    def point(self, sid: int, day: dt.date) -> int | None:
        """The row of series `sid` on `day`, if it has one: one binary search in its run.

        `bisect` over a memoryview of the day numbers: for a single key, numpy's
        `searchsorted` spends more converting its argument than searching, and searching
        one ticker's run (a few thousand rows) touches fewer cache lines than the whole index.
        """
        lo, hi = self._runs[sid]
        d = day.toordinal() - _ORDINAL_BASE
        days = self._day_view
        p = bisect_left(days, d, lo, hi)
        return p if p < hi and days[p] == d else None

    def range(self, sid: int, lo: dt.date | None, hi: dt.date | None) -> tuple[int, int]:
        base = sid << 32
        # ndarray.searchsorted directly: np.searchsorted's dispatch wrapper costs as much as
        # the search itself on a point lookup.
        a = (
            int(self.starts[sid])
            if lo is None
            else int(self.keys.searchsorted(base | day_number(lo)))
        )
        b = (
            int(self.ends[sid])
            if hi is None
            else int(self.keys.searchsorted(base | day_number(hi), side="right"))
        )
        return a, max(a, b)

    def positions(
        self, sids: IntArray, day: dt.date | None, days: int, *, exact: bool
    ) -> Positions:
        """For each series: the last row on/before `day` (or exactly on it) and N rows earlier."""
        if day is None:
            end = self.ends[sids] - 1
        else:
            key = (sids << 32) | day_number(day)
            end = np.searchsorted(self.keys, key, side="right").astype(np.int64) - 1
            ok = end >= self.starts[sids]
            if exact:
                ok &= self.days[np.clip(end, 0, None)] == day_number(day)
            end = np.where(ok, end, -1)
        start = end - days
        start = np.where((end >= 0) & (start >= self.starts[sids]), start, -1)
        return Positions(sid=sids, end=end, start=start)

    def all_sids(self, exchange: str | None) -> IntArray:
        if exchange is None:
            return np.arange(len(self.series), dtype=np.int64)
        return np.asarray(self.by_exchange.get(exchange, []), dtype=np.int64)
