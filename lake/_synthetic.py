"""Deterministic synthetic bars at any scale, on an exchange's real trading calendar.

Every ticker has its own random streams (seeded by `seed` and a stable hash of the ticker)
and its own price path anchored at a fixed epoch, so any subset of tickers or any date
range yields exactly the same bars for a ticker.

The cost is proportional to the rows asked for, not to the path's length since the epoch:
each calendar year has its own stream, and a ticker's level at the start of a year comes
from one annual draw per earlier year. A year's log return is drawn first (drift x n +
sigma x sqrt(n) x Z for its n sessions); the daily returns are then a Brownian bridge that
sums exactly to it, so the marginal law of the path is still a geometric random walk.
Corporate actions follow the same scheme: at most one split a year (at a drawn session),
quarterly dividends every 63 sessions of the year for dividend payers.

Adjusted fields are total-return adjusted *forward from the epoch* (adjusted = raw x
cumulative split and dividend factor), which keeps them stable when the range grows;
`adj_close / close` jumps by the split ratio on a split day and by 1 / (1 - yield) on an
ex-dividend day.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lake._calendar import all_sessions
from lake._schema import BAR_SCHEMA
from stockdata.errors import InvalidInputError

_CURRENCY = {
    "XNYS": "USD",
    "XNAS": "USD",
    "XASE": "USD",
    "ARCX": "USD",
    "XTSE": "CAD",
    "XLON": "GBP",
    "XETR": "EUR",
    "XPAR": "EUR",
    "XAMS": "EUR",
    "XTKS": "JPY",
    "XHKG": "HKD",
    "XASX": "AUD",
}

#: Annual draws are made for this many years from the first year of the calendar; a
#: fixed count keeps every stream's layout independent of the range asked for.
_YEARS = 160
#: Per-session probability of a split (at most one a year); dividends every 63 sessions.
_SPLIT_P = 1 / 1500
_DIVIDEND_EVERY = 63
_PRICE_FLOOR = 0.0001


def _ticker_seed(seed: int, ticker: str) -> list[int]:
    digest = hashlib.blake2b(ticker.encode(), digest_size=8).digest()
    return [seed & 0xFFFFFFFF, int.from_bytes(digest, "little")]


@dataclass(frozen=True, slots=True)
class _Paths:
    """Per-ticker parameters (shape (T,)) and per-year state (shape (T, years))."""

    sigma: np.ndarray
    drift: np.ndarray
    level: np.ndarray
    dividend_yield: np.ndarray  # 0 for tickers that pay none
    phase: np.ndarray
    year_return: np.ndarray  # log return of each year
    split_ratio: np.ndarray  # 1.0 in a year without a split
    split_at: np.ndarray  # session index of the split within its year
    start_adj: np.ndarray  # adjusted close just before the year's first session
    start_log_factor: np.ndarray  # log cumulative adjustment factor before the year
    start_log_split: np.ndarray  # log cumulative split ratio before the year


def _paths(
    bases: list[list[int]], year_sessions: np.ndarray, first_is_origin: np.ndarray
) -> _Paths:
    """Everything about each ticker's path that does not need its daily draws.

    `year_sessions[y]` is the number of sessions in year y (counted from the calendar's
    first year); `first_is_origin[y]` is True for the year holding the path's first
    session, which carries no corporate action.
    """
    t = len(bases)
    params = np.empty((t, 7))
    annual_z = np.empty((t, _YEARS))
    annual_u = np.empty((t, _YEARS, 3))
    for i, base in enumerate(bases):
        rng = np.random.default_rng([*base, 0])
        params[i] = rng.random(7)
        annual_z[i] = rng.standard_normal(_YEARS)
        annual_u[i] = rng.random((_YEARS, 3))
    p0 = 5.0 + 145.0 * params[:, 0]
    sigma = 0.008 + 0.022 * params[:, 1]
    drift = 0.0001 + 0.0004 * params[:, 2]
    pays = params[:, 3] < 0.5
    dividend_yield = np.where(pays, 0.002 + 0.008 * params[:, 4], 0.0)  # per quarter
    phase = np.minimum((params[:, 5] * _DIVIDEND_EVERY).astype(np.int64), _DIVIDEND_EVERY - 1)
    level = 12.0 + 2.0 * params[:, 6]

    years = len(year_sessions)
    n = year_sessions[None, :years].astype(np.float64)
    year_return = drift[:, None] * n + sigma[:, None] * np.sqrt(n) * annual_z[:, :years]
    # P(at least one split among n sessions); its session, and its ratio (2:1, 3:1 or 1:2)
    p_split = 1.0 - (1.0 - _SPLIT_P) ** n
    split_at = np.minimum(annual_u[:, :years, 1] * n, np.maximum(n - 1, 0)).astype(np.int64)
    has_split = (annual_u[:, :years, 0] < p_split) & ~(first_is_origin[None, :] & (split_at == 0))
    ratio_draw = annual_u[:, :years, 2]
    split_ratio = np.where(
        has_split, np.where(ratio_draw < 0.6, 2.0, np.where(ratio_draw < 0.9, 3.0, 0.5)), 1.0
    )
    # ex-dividend sessions in each year: indices i < n with i % 63 == phase (not the origin)
    ex_count = np.maximum(
        (year_sessions[None, :years] - phase[:, None] + _DIVIDEND_EVERY - 1) // _DIVIDEND_EVERY, 0
    ) - (first_is_origin[None, :] & (phase[:, None] == 0))
    log_split = np.log(split_ratio)
    log_factor = log_split - ex_count * np.log1p(-dividend_yield)[:, None]

    def before(values: np.ndarray) -> np.ndarray:
        out = np.zeros_like(values)
        np.cumsum(values[:, :-1], axis=1, out=out[:, 1:])
        return out

    return _Paths(
        sigma=sigma,
        drift=drift,
        level=level,
        dividend_yield=dividend_yield,
        phase=phase,
        year_return=year_return,
        split_ratio=split_ratio,
        split_at=split_at,
        start_adj=p0[:, None] * np.exp(before(year_return)),
        start_log_factor=before(log_factor),
        start_log_split=before(log_split),
    )


def _year(
    bases: list[list[int]], paths: _Paths, y: int, n: int, origin: bool
) -> dict[str, np.ndarray]:
    """Every column of year `y` (index from the calendar's first year), shape (T, n).

    Corporate actions are sparse (one split, four dividends a year at most): they are
    placed by index rather than computed for every session."""
    t = len(bases)
    z = np.empty((t, 5, n))
    for i, base in enumerate(bases):
        z[i] = np.random.default_rng([*base, 1, y]).standard_normal((5, n))
    sigma = paths.sigma[:, None]
    ret = paths.drift[:, None] + sigma * z[:, 0]
    ret += ((paths.year_return[:, y] - ret.sum(axis=1)) / n)[:, None]  # the bridge
    np.cumsum(ret, axis=1, out=ret)
    start_adj = paths.start_adj[:, y, None]
    adj_close = start_adj * np.exp(ret)

    # where the actions fall: (row, session) pairs
    ratio, at = paths.split_ratio[:, y], paths.split_at[:, y]
    split_rows = np.flatnonzero(ratio != 1.0)
    ex_rows, ex_cols = [], []
    for k in range(n // _DIVIDEND_EVERY + 1):
        col = paths.phase + k * _DIVIDEND_EVERY
        hit = (col < n) & (paths.dividend_yield > 0) & ~((col == 0) & origin)
        ex_rows.append(np.flatnonzero(hit))
        ex_cols.append(col[hit])
    div_rows, div_cols = np.concatenate(ex_rows), np.concatenate(ex_cols)
    dy = paths.dividend_yield[div_rows]

    log_f = np.zeros((t, n))
    log_f[split_rows, at[split_rows]] = np.log(ratio[split_rows])
    log_f[div_rows, div_cols] -= np.log1p(-dy)
    log_f[:, 0] += paths.start_log_factor[:, y]
    factor = np.exp(np.cumsum(log_f, axis=1, out=log_f))
    split = np.ones((t, n))
    split[split_rows, at[split_rows]] = ratio[split_rows]
    after_split = np.arange(n)[None, :] >= at[:, None]
    split_cum = np.exp(paths.start_log_split[:, y])[:, None] * np.where(
        after_split, ratio[:, None], 1.0
    )

    prev_adj = np.empty_like(adj_close)
    prev_adj[:, 0] = start_adj[:, 0]
    prev_adj[:, 1:] = adj_close[:, :-1]
    adj_open = prev_adj * np.exp(0.3 * sigma * z[:, 1])
    up = np.exp(np.abs(0.5 * sigma * z[:, 2]))
    down = np.exp(-np.abs(0.5 * sigma * z[:, 3]))

    def raw(adjusted: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.maximum(np.round(adjusted / factor, 4), _PRICE_FLOOR)
        return out

    close, open_ = raw(adj_close), raw(adj_open)
    high = np.maximum(raw(np.maximum(adj_open, adj_close) * up), np.maximum(open_, close))
    low = np.minimum(raw(np.minimum(adj_open, adj_close) * down), np.minimum(open_, close))
    # the dividend is a share of the previous close (the previous year's last one on day 0)
    dividend = np.zeros((t, n))
    inner = div_cols > 0
    dividend[div_rows[inner], div_cols[inner]] = (
        dy[inner] * close[div_rows[inner], div_cols[inner] - 1]
    )
    first = div_rows[~inner]
    if len(first):
        start_close = np.maximum(
            np.round(paths.start_adj[first, y] / np.exp(paths.start_log_factor[first, y]), 4),
            _PRICE_FLOOR,
        )
        dividend[first, 0] = dy[~inner] * start_close
    volume = np.round(np.exp(paths.level[:, None] + 0.4 * z[:, 4]) * split_cum).astype(np.int64)
    return {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "adj_open": open_ * factor,
        "adj_high": high * factor,
        "adj_low": low * factor,
        "adj_close": close * factor,
        "adj_volume": volume / split_cum,
        "split_factor": split,
        "dividend": dividend,
    }


@functools.lru_cache(maxsize=64)
def _calendar_years(exchange_mic: str) -> tuple[np.ndarray, np.ndarray]:
    """Sessions per calendar year (from the calendar's first year), and each session's year."""
    years_of = all_sessions(exchange_mic).astype("datetime64[Y]").astype(np.int64)
    index = years_of - int(years_of[0])
    return np.bincount(index), index


@functools.lru_cache(maxsize=4)
def _batch_paths(
    exchange_mic: str, seed: int, names: tuple[str, ...]
) -> tuple[list[list[int]], _Paths]:
    """The seeds and yearly state of a ticker batch (a backfill asks for it once a year)."""
    year_sessions, _ = _calendar_years(exchange_mic)
    origin = np.zeros(len(year_sessions), dtype=bool)
    origin[0] = True
    bases = [_ticker_seed(seed, name) for name in names]
    return bases, _paths(bases, year_sessions[:_YEARS], origin[:_YEARS])


def synthetic_bars(
    tickers: Sequence[str],
    *,
    exchange_mic: str = "XNYS",
    date_from: dt.date,
    date_to: dt.date,
    seed: int = 0,
    source: str = "synthetic",
) -> pa.Table:
    """Bars (BAR_SCHEMA) for `tickers` on every session of `exchange_mic` in [date_from, date_to].

    Deterministic: the same (ticker, seed) gives the same bar on a date whatever the other
    tickers or the range asked for. Rows come ticker by ticker in the order given, each
    ticker's by date.
    """
    if date_to < date_from:
        raise InvalidInputError(f"date_to {date_to} is before date_from {date_from}")
    sessions = all_sessions(exchange_mic)
    lo = int(np.searchsorted(sessions, np.datetime64(date_from, "D"), side="left"))
    hi = int(np.searchsorted(sessions, np.datetime64(date_to, "D"), side="right"))
    names = [str(t) for t in tickers]
    width = max(hi - lo, 0)
    columns: dict[str, np.ndarray] = {}
    if width and names:
        year_sessions, index = _calendar_years(exchange_mic)
        if int(index[hi - 1]) >= _YEARS:
            raise InvalidInputError(f"synthetic bars stop {_YEARS} years after the calendar starts")
        bases, paths = _batch_paths(exchange_mic, seed, tuple(names))
        year_start = np.concatenate(([0], np.cumsum(year_sessions)))
        parts: dict[str, list[np.ndarray]] = {}
        for y in range(int(index[lo]), int(index[hi - 1]) + 1):
            n = int(year_sessions[y])
            block = _year(bases, paths, y, n, origin=y == 0)
            a = max(lo - int(year_start[y]), 0)
            b = min(hi - int(year_start[y]), n)
            for key, values in block.items():
                parts.setdefault(key, []).append(values if (a, b) == (0, n) else values[:, a:b])
        columns = {
            k: (v[0] if len(v) == 1 else np.concatenate(v, axis=1)).ravel()
            for k, v in parts.items()
        }
    total = width * len(names)
    indices = np.repeat(np.arange(len(names), dtype=np.int32), width)
    ticker_col = pa.DictionaryArray.from_arrays(pa.array(indices), pa.array(names, pa.string()))
    dates = np.tile(sessions[lo:hi], len(names))
    arrays: dict[str, pa.Array] = {
        "ticker": ticker_col.cast(pa.string()),
        "exchange_mic": _const(exchange_mic, total),
        "trade_date": pa.array(dates.astype("datetime64[D]"), pa.date32()),
    }
    for field in BAR_SCHEMA:
        if field.name in columns:
            arrays[field.name] = pa.array(columns[field.name], field.type)
        elif field.name not in arrays:
            arrays[field.name] = pa.nulls(total, field.type)
    currency = _CURRENCY.get(exchange_mic, "USD")
    arrays["currency"] = _const(currency, total)
    arrays["source"] = _const(source, total)
    return pa.Table.from_arrays([arrays[f.name] for f in BAR_SCHEMA], schema=BAR_SCHEMA)


def _const(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], pa.string())
    ).cast(pa.string())
