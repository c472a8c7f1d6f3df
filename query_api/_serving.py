"""A published serving form (lake/_serving.py), memory-mapped, and the reads it answers.

Every array is `np.load(mmap_mode="r")`: the workers of a pod share the page cache's one
copy and a worker never copies the form into private memory. What a worker does hold is
per series (names, run offsets: a few MB at 20,000 series).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from lake import apply_prices, apply_volumes, read_manifest
from lake._adjust import round_price
from query_api._index import BarRow

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
#: Adjustment of rows: (price factors, volume factors), one per row (lake/_adjust.py).
Scale = tuple[FloatArray, FloatArray]

_EPOCH = dt.date(1970, 1, 1)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_PRICES = ("open", "high", "low", "close")


def day_number(day: dt.date) -> int:
    return day.toordinal() - _EPOCH_ORDINAL


def _day32(day: dt.date) -> np.int32:
    """A day number typed like the form's day column: a search without converting it."""
    return np.int32(day.toordinal() - _EPOCH_ORDINAL)


def to_date(day: int) -> dt.date:
    return dt.date.fromordinal(int(day) + _EPOCH_ORDINAL)


def to_dates(days: npt.NDArray[Any]) -> list[dt.date]:
    out: list[dt.date] = np.asarray(days, dtype="datetime64[D]").tolist()
    return out


def round_half_away(x: FloatArray) -> FloatArray:
    """DuckDB's (and C's) `round`: halves away from zero, unlike numpy's `round`."""
    a = np.abs(x)
    r = np.floor(a)
    r = r + (a - r >= 0.5)
    out: FloatArray = np.copysign(r, x)
    return out


class ServingForm:
    """One published lake version, mapped read-only."""

    def __init__(self, path: Path) -> None:
        manifest = read_manifest(path)
        if manifest is None:
            raise FileNotFoundError(f"no serving form at {path}")
        self.path = path
        self.version: int = int(manifest["version"])
        self.rows: int = int(manifest["rows"])
        self.bytes: int = int(manifest["bytes"])
        self._spec: dict[str, dict[str, Any]] = manifest["columns"]
        self._dicts: dict[str, list[str | None]] = {
            k: [*v, None] for k, v in manifest["dictionaries"].items()
        }

        def load(name: str) -> Any:
            # a plain ndarray view of the mapping (no copy): slicing a np.memmap costs
            # microseconds more per call
            return np.asarray(np.load(path / f"{name}.npy", mmap_mode="r", allow_pickle=False))

        self._load = load
        self.days = load("days")
        # `bisect` over a memoryview: for one key, cheaper than numpy's searchsorted call
        self._day_view = memoryview(self.days) if self.rows else memoryview(b"").cast("i")
        self._num = {name: load(name) for name in _PRICES}
        self.volume = load("volume")
        self._codes = {name: load(name) for name in ("currency", "source")}
        self._by_date = load("by_date")
        self._dates = np.asarray(load("dates"))
        self._date_starts = np.asarray(load("date_starts"))
        self.ends: IntArray = np.asarray(load("series_ends"), dtype=np.int64)
        self.starts: IntArray = np.concatenate([[0], self.ends[:-1]]).astype(np.int64)
        self.series: list[tuple[str, str]] = [
            (str(t), str(m)) for t, m in json.loads((path / "series.json").read_text())
        ]
        self.sid_of: dict[tuple[str, str], int] = {s: i for i, s in enumerate(self.series)}
        self.by_exchange: dict[str, list[int]] = {}
        for sid, (_, mic) in enumerate(self.series):
            self.by_exchange.setdefault(mic, []).append(sid)
        self._runs_list = list(zip(self.starts.tolist(), self.ends.tolist(), strict=True))
        self._optional: dict[str, Any] = {}
        self._run_tables: dict[str, tuple[Any, Any]] = {}
        for name, spec in self._spec.items():
            if spec["form"] == "dense":
                self._optional[name] = load(name)
            else:
                self._optional[name] = (load(f"{name}.pos"), load(f"{name}.val"))
            if spec["form"] == "scaled" and spec["runs"] not in self._run_tables:
                key = spec["runs"]
                self._run_tables[key] = (
                    np.asarray(load(f"runs_{key}.pos")),
                    np.asarray(load(f"runs_{key}.val")),
                )

        # memoryviews for `bisect` (a scalar search without numpy's call overhead)
        self._ends_view = self.ends.data
        self._views: dict[str, memoryview] = {
            name: np.ascontiguousarray(arrays[0]).data
            for name, arrays in self._optional.items()
            if isinstance(arrays, tuple)
        }
        for key, (starts, _) in self._run_tables.items():
            self._views["runs_" + key] = np.ascontiguousarray(starts).data

    # -- columns ---------------------------------------------------------------------------

    def optional(self, name: str, pos: IntArray) -> FloatArray:
        """A nullable float column at `pos`, NaN for null."""
        spec = self._spec[name]
        if spec["form"] == "dense":
            out: FloatArray = np.asarray(self._optional[name][pos], dtype=np.float64)
            return out
        if spec["form"] == "constant":
            value = spec["value"]
            out = np.full(pos.size, np.nan if value is None else float(value))
        else:
            starts, factors = self._run_tables[spec["runs"]]
            factor = factors[starts.searchsorted(pos.astype(starts.dtype), side="right") - 1]
            base = (
                np.asarray(self._num[spec["base"]][pos])
                if spec["base"] in self._num
                else np.asarray(self.volume[pos]).astype(np.float64)
            )
            out = base * factor if spec["op"] == "mul" else base / factor
        exc_pos, exc_val = self._optional[name]
        if exc_pos.size:
            i = exc_pos.searchsorted(pos.astype(exc_pos.dtype))
            hit = i < exc_pos.size
            hit[hit] = exc_pos[i[hit]] == pos[hit]
            out[hit] = exc_val[i[hit]]
        return out

    def price(self, name: str, pos: IntArray, *, scale: Scale | None = None) -> FloatArray:
        """As-traded prices at `pos`, or adjusted by `scale`'s price factors."""
        raw: FloatArray = np.asarray(self._num[name][pos], dtype=np.float64)
        return raw if scale is None else apply_prices(raw, scale[0])

    def _prices(self, pos: IntArray, scale: Scale | None) -> npt.NDArray[np.float64]:
        """open, high, low, close at `pos` as one (4, n) array, adjusted in one pass."""
        raw = np.empty((4, pos.size), dtype=np.float64)
        for i, name in enumerate(_PRICES):
            np.take(self._num[name], pos, out=raw[i])
        return raw if scale is None else apply_prices(raw, scale[0])

    def volumes(self, pos: IntArray, *, scale: Scale | None = None) -> IntArray:
        raw: IntArray = np.asarray(self.volume[pos], dtype=np.int64)
        return raw if scale is None else apply_volumes(raw, scale[1])

    # -- lookups ---------------------------------------------------------------------------

    def point(self, sid: int, day: dt.date) -> int | None:
        """The row of series `sid` on `day`, if any: one binary search in its run."""
        lo, hi = self._runs_list[sid]
        d = day_number(day)
        days = self._day_view
        p = bisect_left(days, d, lo, hi)
        return p if p < hi and days[p] == d else None

    def range(self, sid: int, lo: dt.date | None, hi: dt.date | None) -> tuple[int, int]:
        a, b = self._runs_list[sid]
        run = self.days[a:b]
        first = a if lo is None else a + int(run.searchsorted(_day32(lo)))
        last = b if hi is None else a + int(run.searchsorted(_day32(hi), side="right"))
        return first, max(first, last)

    def last_on_or_before(self, sid: int, day: dt.date | None) -> int | None:
        a, b = self._runs_list[sid]
        if day is not None:
            b = a + int(self.days[a:b].searchsorted(_day32(day), side="right"))
        return b - 1 if b > a else None

    def on_date(self, day: dt.date, exchange: str | None) -> IntArray:
        """Rows of every series with a bar on `day`, in series (ticker, exchange) order."""
        d = day_number(day)
        i = int(self._dates.searchsorted(np.int32(d)))
        if i >= self._dates.size or int(self._dates[i]) != d:
            return np.empty(0, dtype=np.int64)
        pos = np.asarray(
            self._by_date[int(self._date_starts[i]) : int(self._date_starts[i + 1])],
            dtype=np.int64,
        )
        if exchange is not None:
            mics = np.asarray([m for _, m in self.series], dtype=object)
            keep = mics[self.sids_at(pos)] == exchange
            pos = pos[keep]
        return pos

    def sids_at(self, pos: IntArray) -> IntArray:
        out: IntArray = self.ends.searchsorted(pos.astype(np.int64), side="right")
        return out

    # -- rows ------------------------------------------------------------------------------

    def _optional_at(self, name: str, p: int) -> float | None:
        """One row of a nullable column, without building arrays (a point lookup)."""
        spec = self._spec[name]
        if spec["form"] == "dense":
            v = float(self._optional[name][p])
            return None if v != v else v
        exc_pos, exc_val = self._optional[name]
        if exc_pos.size:
            view = self._views[name]
            i = bisect_left(view, p)
            if i < len(view) and view[i] == p:
                v = float(exc_val[i])
                return None if v != v else v
        if spec["form"] == "constant":
            value = spec["value"]
            return None if value is None else float(value)
        _, factors = self._run_tables[spec["runs"]]
        factor = float(factors[bisect_right(self._views["runs_" + spec["runs"]], p) - 1])
        base = spec["base"]
        raw = float(self._num[base][p]) if base in self._num else float(self.volume[p])
        v = raw * factor if spec["op"] == "mul" else raw / factor
        return None if v != v else v

    def row(
        self, p: int, *, scale: tuple[float, float] | None = None, sid: int | None = None
    ) -> BarRow:
        """The bar at row `p` (a point lookup: scalar reads only); `scale` is the row's
        (price factor, volume factor)."""
        if sid is None:
            sid = bisect_right(self._ends_view, p)
        o, h, lo, c = (float(self._num[name][p]) for name in _PRICES)
        volume = int(self.volume[p])
        if scale is not None:
            f, v = scale
            o, h, lo, c = (
                round_price(o * f),
                round_price(h * f),
                round_price(lo * f),
                round_price(c * f),
            )
            if v != 1.0:
                scaled = volume * v
                size = abs(scaled)
                whole = math.floor(size)
                volume = int(math.copysign(whole + (size - whole >= 0.5), scaled))
        ticker, mic = self.series[sid]
        return (
            ticker,
            mic,
            to_date(int(self.days[p])),
            o,
            h,
            lo,
            c,
            volume,
            self._optional_at("split_factor", p),
            self._optional_at("dividend", p),
            self._dicts["currency"][int(self._codes["currency"][p])],
            self._dicts["source"][int(self._codes["source"][p])],
        )

    def rows_at(self, pos: IntArray, *, scale: Scale | None = None) -> list[BarRow]:
        """Bars at row positions in `query_api._models.Bar` field order."""
        if pos.size == 0:
            return []
        if pos.size == 1:
            one = None if scale is None else (float(scale[0][0]), float(scale[1][0]))
            return [self.row(int(pos[0]), scale=one)]
        series = [self.series[s] for s in self.sids_at(pos).tolist()]
        prices = self._prices(pos, scale).tolist()
        volume = self.volumes(pos, scale=scale).tolist()
        split = [None if v != v else v for v in self.optional("split_factor", pos).tolist()]
        div = [None if v != v else v for v in self.optional("dividend", pos).tolist()]
        cur = [self._dicts["currency"][c] for c in self._codes["currency"][pos].tolist()]
        src = [self._dicts["source"][c] for c in self._codes["source"][pos].tolist()]
        return list(
            zip(
                [t for t, _ in series],
                [m for _, m in series],
                to_dates(self.days[pos]),
                *prices,
                volume,
                split,
                div,
                cur,
                src,
                strict=True,
            )
        )

    def table_at(self, pos: IntArray, *, scale: Scale | None = None, schema: pa.Schema) -> pa.Table:
        """The same bars as an Arrow table of `schema` (the API's bar schema)."""
        sids = self.sids_at(pos)
        tickers = [self.series[s][0] for s in sids.tolist()]
        mics = [self.series[s][1] for s in sids.tolist()]

        def text(name: str) -> pa.Array:
            values = [self._dicts[name][c] for c in self._codes[name][pos].tolist()]
            return pa.array(values, pa.string())

        def nullable(name: str) -> pa.Array:
            values = self.optional(name, pos)
            return pa.array(values, pa.float64(), mask=np.isnan(values))

        cols = [
            pa.array(tickers, pa.string()),
            pa.array(mics, pa.string()),
            pa.array(np.asarray(self.days[pos], dtype=np.int32), pa.int32()).cast(pa.date32()),
            *(pa.array(col, pa.float64()) for col in self._prices(pos, scale)),
            pa.array(self.volumes(pos, scale=scale), pa.int64()),
            nullable("split_factor"),
            nullable("dividend"),
            text("currency"),
            text("source"),
        ]
        return pa.Table.from_arrays(cols, schema=schema)

    def closes_at(self, pos: IntArray, *, scale: Scale | None = None) -> FloatArray:
        return self.price("close", pos, scale=scale)
