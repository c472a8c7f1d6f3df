"""Adjustment factors computed from corporate actions, applied to as-traded bars at read time.

The method (CRSP-style, backward adjustment, docs/lake.md "Adjustment"):

- a split or stock dividend with `ratio` r (new shares per old) multiplies every earlier
  price by 1/r and every earlier volume by r;
- a cash dividend of `amount` d multiplies every earlier price by 1 - d / c, where c is the
  as-traded close of the series' last bar before the ex-date (no such bar, or d >= c:
  factor 1, and `lake check-adjustments` reports it);
- a bar on day t under basis `splits` or `all` is multiplied by the product of the factors
  of that basis over the actions with t < ex_date <= as_of (as_of: no bound by default),
  and rounded to 10 decimals so every engine (serving form, DuckDB, the SQL views) gives the
  same number.

Bases: `none` (as traded), `splits` (share-count changes only), `all` (splits and cash
dividends: a total-return series).
"""

from __future__ import annotations

import datetime as dt
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

Basis = Literal["none", "splits", "all"]
BASES: tuple[Basis, ...] = ("none", "splits", "all")
#: Decimals adjusted prices are rounded to.
DECIMALS = 10
#: Day numbers fit in 20 bits until the year 4840: a (series, day) key is one int64.
_DAY_BITS = 20
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_SCALE = 10.0**DECIMALS

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Every action with the as-traded close before its ex-date, from the `corporate_actions`
#: and `eod` views. Also the base of the `action_factors` view.
PREV_CLOSE_SQL = (
    "SELECT a.ticker, a.exchange_mic, a.ex_date, a.kind, a.ratio, a.amount, "
    "e.close AS prev_close FROM corporate_actions a ASOF LEFT JOIN eod e "
    "ON a.ticker = e.ticker AND a.exchange_mic = e.exchange_mic AND a.ex_date > e.trade_date"
)


def _factor_sql() -> str:
    split = (
        "CASE WHEN kind IN ('split', 'stock_dividend') AND ratio > 0 THEN 1.0 / ratio ELSE 1.0 END"
    )
    dividend = (
        "CASE WHEN kind = 'dividend' AND amount > 0 AND prev_close > amount "
        "THEN 1.0 - amount / prev_close ELSE 1.0 END"
    )
    volume = "CASE WHEN kind IN ('split', 'stock_dividend') AND ratio > 0 THEN ratio ELSE 1.0 END"
    return (
        f"SELECT *, {split} AS split_price_factor, {split} * {dividend} AS price_factor, "
        f"{volume} AS volume_factor FROM ({PREV_CLOSE_SQL})"
    )


def views_sql() -> list[str]:
    """Views over `eod` and `corporate_actions`: `action_factors` (one row per action),
    `eod_split_adjusted` and `eod_adjusted` (every bar adjusted for splits, or for splits
    and dividends, by the actions known to the lake: no as-of bound)."""
    stmts = [f"CREATE OR REPLACE VIEW action_factors AS {_factor_sql()}"]
    # one row per (series, ex_date), then the product of it and every later one: the bars
    # before that ex-date (and on or after the previous one) take it
    suffix = (
        "SELECT ticker, exchange_mic, ex_date, "
        "product(s) OVER w AS split_cum, product(p) OVER w AS price_cum, "
        "product(v) OVER w AS volume_cum FROM (SELECT ticker, exchange_mic, ex_date, "
        "product(split_price_factor) AS s, product(price_factor) AS p, "
        "product(volume_factor) AS v FROM action_factors GROUP BY ALL) "
        "WINDOW w AS (PARTITION BY ticker, exchange_mic ORDER BY ex_date DESC "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    )
    for view, factor in (("eod_split_adjusted", "split_cum"), ("eod_adjusted", "price_cum")):
        f = f"coalesce(f.{factor}, 1.0)"
        prices = ", ".join(
            f"round(e.{p} * {f}, {DECIMALS}) AS {p}" for p in ("open", "high", "low", "close")
        )
        stmts.append(
            f"CREATE OR REPLACE VIEW {view} AS SELECT e.ticker, e.exchange_mic, e.trade_date, "
            f"{prices}, CAST(round(e.volume * coalesce(f.volume_cum, 1.0)) AS BIGINT) AS volume, "
            f"{f} AS price_factor, e.split_factor, e.dividend, e.currency, e.source, e.period "
            f"FROM eod e ASOF LEFT JOIN ({suffix}) f ON e.ticker = f.ticker "
            "AND e.exchange_mic = f.exchange_mic AND e.trade_date < f.ex_date"
        )
    return stmts


def _day(d: dt.date) -> int:
    return d.toordinal() - _EPOCH_ORDINAL


@dataclass(frozen=True, slots=True)
class _SeriesFactors:
    """One series' ex-days and cumulative factors: lists for `bisect`, arrays (with a
    trailing 1 for "no later action") for vectorised reads."""

    days: list[int]
    split: list[float]
    all: list[float]
    volume: list[float]
    days_a: IntArray
    split_a: FloatArray
    all_a: FloatArray
    volume_a: FloatArray


@dataclass(frozen=True, slots=True)
class _Dated:
    """Every (series, ex-date) key under one basis, ordered by ex day: its day, series id
    and own factor; and per series id (a trailing 1 for id -1) the product of its factors
    below 1, a lower bound of any bar's factor."""

    days: IntArray
    sids: IntArray
    own: FloatArray
    lowest: FloatArray


@dataclass(frozen=True, slots=True)
class Adjustment:
    """Every action's factors, by series and ex-date, ready to apply to any rows.

    Built once per (lake version, actions version); `factors` is vectorised over rows of
    any number of series, so a cross-section costs a few `searchsorted` calls."""

    series: list[tuple[str, str]]
    id_of: dict[tuple[str, str], int]
    #: sorted (series id << 20 | ex day), one per (series, ex-date)
    keys: IntArray
    #: per key: the product of that key's factor and every later one of the same series,
    #: and a trailing 1.0 (index `keys.size`: "no action applies")
    split_cum: FloatArray
    all_cum: FloatArray
    volume_cum: FloatArray
    #: per series id: index one past its last key; a trailing 0 for id -1
    series_end: IntArray
    #: the actions table's version (None: no table)
    actions_version: int | None = None
    #: per series id: its keys' day numbers and cumulative factors as Python lists (built
    #: on first use: a point lookup then costs two `bisect` calls, no numpy)
    _series: dict[int, _SeriesFactors] = field(default_factory=dict, repr=False, compare=False)
    #: per basis: `_Dated` (built on first use by `window_ratio`)
    _dated: dict[str, _Dated] = field(default_factory=dict, repr=False, compare=False)

    @property
    def empty(self) -> bool:
        return self.keys.size == 0

    def ids(self, series: list[tuple[str, str]]) -> IntArray:
        """Adjustment series ids of `series` (-1: no actions)."""
        return np.asarray([self.id_of.get(s, -1) for s in series], dtype=np.int64)

    def _of(self, sid: int) -> _SeriesFactors:
        cached = self._series.get(sid)
        if cached is None:
            a = int(np.searchsorted(self.keys, sid << _DAY_BITS))
            b = int(np.searchsorted(self.keys, (sid + 1) << _DAY_BITS))
            days = self.keys[a:b] & ((1 << _DAY_BITS) - 1)
            cums = (self.split_cum[a:b], self.all_cum[a:b], self.volume_cum[a:b])
            split, total, volume = cums
            cached = _SeriesFactors(
                days.tolist(),
                split.tolist(),
                total.tolist(),
                volume.tolist(),
                days,
                np.append(split, 1.0),
                np.append(total, 1.0),
                np.append(volume, 1.0),
            )
            self._series[sid] = cached
        return cached

    def _dated_of(self, basis: Basis) -> _Dated:
        cached = self._dated.get(basis)
        if cached is None:
            cum = self.split_cum if basis == "splits" else self.all_cum
            n = self.keys.size
            group = self.keys >> _DAY_BITS
            # a key's own factor: its cumulative product over the next key's, if that key
            # is of the same series (the cumulative arrays end with a 1.0)
            same_next = np.zeros(n, dtype=bool)
            same_next[:-1] = group[1:] == group[:-1]
            own = cum[:n] / np.where(same_next, cum[1 : n + 1], 1.0)
            days = self.keys & ((1 << _DAY_BITS) - 1)
            order = np.argsort(days, kind="stable")
            starts = np.flatnonzero(np.concatenate([[True], group[1:] != group[:-1]]))
            lowest = np.ones(len(self.series) + 1, dtype=np.float64)
            lowest[group[starts]] = np.multiply.reduceat(np.minimum(own, 1.0), starts)
            cached = _Dated(days[order], group[order], own[order], lowest)
            self._dated[basis] = cached
        return cached

    def window_ratio(
        self, ids: IntArray, after: int, through: int, basis: Basis
    ) -> tuple[FloatArray, FloatArray]:
        """For series `ids` (-1: none): the product of their factors under `basis` over the
        actions with `after` < ex day <= `through` (day numbers), which is a bar's factor on
        day `after` over its factor on day `through`; and a lower bound of every factor any
        of their bars can have. Both approximate (a few ulps): for ranking a cross-section
        before computing the exact factors of its few leading rows (`factors`)."""
        ones = np.ones(ids.size, dtype=np.float64)
        if basis == "none" or self.empty or ids.size == 0:
            return ones, ones
        dated = self._dated_of(basis)
        lowest = dated.lowest[ids]
        a = int(dated.days.searchsorted(after, side="right"))
        b = int(dated.days.searchsorted(through, side="right"))
        if b <= a:
            return ones, lowest
        product = np.ones(len(self.series) + 1, dtype=np.float64)
        np.multiply.at(product, dated.sids[a:b], dated.own[a:b])
        return product[ids], lowest

    def factor_at(
        self, sid: int, day: int, basis: Basis, as_of: dt.date | None = None
    ) -> tuple[float, float]:
        """(price factor, volume factor) of one row: series `sid` (-1: none) on day number
        `day`. The same arithmetic as `factors`, without numpy."""
        if basis == "none" or sid < 0:
            return 1.0, 1.0
        of = self._of(sid)
        ex, split_cum, all_cum, vol_cum = of.days, of.split, of.all, of.volume
        lo = bisect_right(ex, day)
        hi = len(ex) if as_of is None else bisect_right(ex, _day(as_of))
        if hi <= lo:
            return 1.0, 1.0
        cum = split_cum if basis == "splits" else all_cum
        if hi == len(ex):
            return cum[lo], vol_cum[lo]
        return cum[lo] / cum[hi], vol_cum[lo] / vol_cum[hi]

    def series_factors(
        self, sid: int, days: IntArray, basis: Basis, as_of: dt.date | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """`factors` for rows of one series (a range, a delta series): searches only that
        series' few actions."""
        n = days.size
        if basis == "none" or sid < 0 or n == 0:
            ones = np.ones(n, dtype=np.float64)
            return ones, ones
        of = self._of(sid)
        cum = of.split_a if basis == "splits" else of.all_a
        vol = of.volume_a
        hi = len(of.days) if as_of is None else bisect_right(of.days, _day(as_of))
        # factor of a row = cum[lo] / cum[hi] for lo < hi, with cum[len] = 1
        lo = np.searchsorted(of.days_a, days, side="right")
        if hi == len(of.days):
            return cum[lo], vol[lo]
        np.minimum(lo, hi, out=lo)
        return cum[lo] / cum[hi], vol[lo] / vol[hi]

    def factors(
        self, ids: IntArray, days: IntArray, basis: Basis, as_of: dt.date | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """(price factor, volume factor) for rows of series `ids` (-1: none) on day numbers
        `days`: one `searchsorted` over every action's key (two with `as_of`)."""
        n = ids.size
        if basis == "none" or self.empty or n == 0:
            ones = np.ones(n, dtype=np.float64)
            return ones, ones
        ids = np.asarray(ids, dtype=np.int64)
        base = ids << _DAY_BITS  # negative for -1: before every key
        lo = np.searchsorted(self.keys, base | np.asarray(days, np.int64), side="right")
        end = self.series_end[ids]  # 0 for -1 (the sentinel at the end)
        if as_of is None:
            hi = end
        else:
            hi = np.searchsorted(self.keys, base | _day(as_of), side="right")
            np.minimum(hi, end, out=hi)
        sentinel = self.keys.size  # the cumulative arrays end with a 1.0 there
        idx = np.where(lo < hi, lo, sentinel)
        cum = self.split_cum if basis == "splits" else self.all_cum
        price, volume = cum[idx], self.volume_cum[idx]
        if as_of is not None:
            # actions after as_of: divide out their product (none past the series' end)
            cut = np.where((lo < hi) & (hi < end), hi, sentinel)
            price = price / cum[cut]
            volume = volume / self.volume_cum[cut]
        return price, volume


def round_prices(x: FloatArray) -> FloatArray:
    """`x` to DECIMALS decimals as DuckDB's `round(x, 10)` does (scale, round half away
    from zero, unscale), so every engine returns the same double. Adding 0.5 before
    truncating is exact for every scaled price of at least 5e-11 (below that a price
    rounds to 0 or 1e-10)."""
    y = np.multiply(x, _SCALE, dtype=np.float64)
    y += np.copysign(0.5, y)
    np.trunc(y, out=y)
    y /= _SCALE
    return y


def round_price(x: float) -> float:
    """`round_prices` of one value, in plain Python (the same IEEE operations)."""
    y = x * _SCALE
    y += math.copysign(0.5, y)
    return math.trunc(y) / _SCALE if abs(y) < 2**53 else y / _SCALE


def apply_prices(raw: FloatArray, factor: FloatArray) -> FloatArray:
    """Adjusted prices: raw times factor, rounded to DECIMALS (every row, factor 1 too, as
    the SQL views do)."""
    return round_prices(np.asarray(raw, np.float64) * factor)


def apply_volumes(raw: IntArray, factor: FloatArray) -> IntArray:
    scaled = np.asarray(raw, np.float64) * factor
    a = np.abs(scaled)
    r = np.floor(a)
    r = r + (a - r >= 0.5)  # DuckDB's round: halves away from zero
    out: IntArray = np.where(factor == 1.0, raw, np.copysign(r, scaled).astype(np.int64))
    return out


def build_adjustment(actions: pa.Table, *, actions_version: int | None = None) -> Adjustment:
    """An `Adjustment` from `action_factors` rows (ticker, exchange_mic, ex_date,
    split_price_factor, price_factor, volume_factor), as `PREV_CLOSE_SQL` plus
    `factor_columns` give them."""
    if actions.num_rows == 0:
        one = np.ones(1, np.float64)
        return Adjustment(
            [], {}, np.empty(0, np.int64), one, one, one, np.zeros(1, np.int64), actions_version
        )
    tickers = actions.column("ticker").to_pylist()
    mics = actions.column("exchange_mic").to_pylist()
    series = sorted(set(zip(tickers, mics, strict=True)))
    id_of = {s: i for i, s in enumerate(series)}
    sid = np.asarray([id_of[k] for k in zip(tickers, mics, strict=True)], np.int64)
    ex = np.asarray(
        actions.column("ex_date").combine_chunks().cast(pa.int32()).to_numpy(), np.int64
    )
    split = np.asarray(actions.column("split_price_factor").to_numpy(), np.float64)
    price = np.asarray(actions.column("price_factor").to_numpy(), np.float64)
    vol = np.asarray(actions.column("volume_factor").to_numpy(), np.float64)
    key = (sid << _DAY_BITS) | ex
    order = np.argsort(key, kind="stable")
    key, split, price, vol = key[order], split[order], price[order], vol[order]
    keys, first = np.unique(key, return_index=True)
    # one factor per (series, ex-date): the product of that day's actions
    split_d = np.multiply.reduceat(split, first)
    price_d = np.multiply.reduceat(price, first)
    vol_d = np.multiply.reduceat(vol, first)
    group = keys >> _DAY_BITS
    bounds = np.flatnonzero(np.diff(group)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [keys.size]])
    split_cum, all_cum, vol_cum = (np.ones(keys.size + 1) for _ in range(3))
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        # latest first, as the SQL views multiply (ORDER BY ex_date DESC)
        split_cum[a:b] = np.multiply.accumulate(split_d[a:b][::-1])[::-1]
        all_cum[a:b] = np.multiply.accumulate(price_d[a:b][::-1])[::-1]
        vol_cum[a:b] = np.multiply.accumulate(vol_d[a:b][::-1])[::-1]
    series_end = np.zeros(len(series) + 1, dtype=np.int64)
    series_end[group[starts]] = ends
    return Adjustment(series, id_of, keys, split_cum, all_cum, vol_cum, series_end, actions_version)


def factor_columns(actions: pa.Table) -> pa.Table:
    """Add split_price_factor, price_factor, volume_factor to (kind, ratio, amount,
    prev_close) rows, the same arithmetic as the `action_factors` view."""
    kind = np.asarray(actions.column("kind").to_pylist(), dtype=object)
    ratio = np.asarray(actions.column("ratio").to_numpy(zero_copy_only=False), np.float64)
    amount = np.asarray(actions.column("amount").to_numpy(zero_copy_only=False), np.float64)
    prev = np.asarray(actions.column("prev_close").to_numpy(zero_copy_only=False), np.float64)
    shares = np.isin(kind, ["split", "stock_dividend"]) & (np.nan_to_num(ratio) > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        split = np.where(shares, 1.0 / ratio, 1.0)
        div_ok = (
            (kind == "dividend")
            & (np.nan_to_num(amount) > 0)
            & (np.nan_to_num(prev) > np.nan_to_num(amount))
        )
        dividend = np.where(div_ok, 1.0 - amount / prev, 1.0)
    vol = np.where(shares, ratio, 1.0)
    out = actions
    for name, values in (
        ("split_price_factor", split),
        ("price_factor", split * dividend),
        ("volume_factor", vol),
    ):
        out = out.append_column(name, pa.array(values, pa.float64()))
    return out
