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
from dataclasses import dataclass
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
class Adjustment:
    """Every action's factors, by series and ex-date, ready to apply to any rows.

    Built once per (lake version, actions version); `factors` is vectorised over rows of
    any number of series, so a cross-section costs a few `searchsorted` calls."""

    series: list[tuple[str, str]]
    id_of: dict[tuple[str, str], int]
    #: sorted (series id << 20 | ex day), one per (series, ex-date)
    keys: IntArray
    #: per key: the product of that key's factor and every later one of the same series
    split_cum: FloatArray
    all_cum: FloatArray
    volume_cum: FloatArray
    #: per key: index one past its series' last key
    group_end: IntArray
    #: the actions table's version (None: no table)
    actions_version: int | None = None

    @property
    def empty(self) -> bool:
        return self.keys.size == 0

    def ids(self, series: list[tuple[str, str]]) -> IntArray:
        """Adjustment series ids of `series` (-1: no actions)."""
        return np.asarray([self.id_of.get(s, -1) for s in series], dtype=np.int64)

    def factors(
        self, ids: IntArray, days: IntArray, basis: Basis, as_of: dt.date | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """(price factor, volume factor) for rows of series `ids` on day numbers `days`."""
        n = ids.size
        ones = np.ones(n, dtype=np.float64)
        if basis == "none" or self.empty or n == 0:
            return ones, ones
        has = ids >= 0
        base = np.where(has, ids, 0).astype(np.int64) << _DAY_BITS
        lo = np.searchsorted(self.keys, base + np.asarray(days, np.int64), side="right")
        if as_of is None:
            hi = np.searchsorted(self.keys, base + ((1 << _DAY_BITS) - 1), side="right")
        else:
            hi = np.searchsorted(self.keys, base + _day(as_of), side="right")
        live = has & (hi > lo)
        cum = self.split_cum if basis == "splits" else self.all_cum
        price, volume = ones.copy(), ones.copy()
        if not live.any():
            return price, volume
        lo_l, hi_l = lo[live], hi[live]
        # hi inside the series: divide out the actions after as_of
        inner = hi_l < self.group_end[lo_l]
        safe_hi = np.where(inner, hi_l, 0)
        price[live] = np.where(inner, cum[lo_l] / cum[safe_hi], cum[lo_l])
        volume[live] = np.where(
            inner, self.volume_cum[lo_l] / self.volume_cum[safe_hi], self.volume_cum[lo_l]
        )
        return price, volume


def round_prices(x: FloatArray) -> FloatArray:
    """`x` to DECIMALS decimals exactly as DuckDB's `round(x, 10)` does (scale, round half
    away from zero, unscale), so every engine returns the same double."""
    scale = 10.0**DECIMALS
    y = np.asarray(x, np.float64) * scale
    r = np.trunc(y)
    r = r + np.sign(y) * (np.abs(y - r) >= 0.5)
    out: FloatArray = r / scale
    return out


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
        empty_f = np.empty(0, np.float64)
        return Adjustment(
            [],
            {},
            np.empty(0, np.int64),
            empty_f,
            empty_f,
            empty_f,
            np.empty(0, np.int64),
            actions_version,
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
    group_end = np.repeat(ends, ends - starts).astype(np.int64)
    split_cum, all_cum, vol_cum = (np.empty_like(split_d) for _ in range(3))
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        # latest first, as the SQL views multiply (ORDER BY ex_date DESC)
        split_cum[a:b] = np.multiply.accumulate(split_d[a:b][::-1])[::-1]
        all_cum[a:b] = np.multiply.accumulate(price_d[a:b][::-1])[::-1]
        vol_cum[a:b] = np.multiply.accumulate(vol_d[a:b][::-1])[::-1]
    return Adjustment(series, id_of, keys, split_cum, all_cum, vol_cum, group_end, actions_version)


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
