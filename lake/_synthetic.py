"""Deterministic synthetic bars at any scale, on an exchange's real trading calendar.

Each ticker has its own random stream (seeded by `seed` and a stable hash of the ticker) and
its own price path anchored at a fixed epoch, so any subset of tickers or any date range
yields exactly the same bars for a ticker. Adjusted fields are total-return adjusted
*forward from the epoch* (adjusted = raw x cumulative split and dividend factor), which keeps
them stable when the range grows; `adj_close / close` jumps by the split ratio on a split day
and by 1 / (1 - yield) on an ex-dividend day.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from lake._schema import BAR_SCHEMA
from stockdata.errors import InvalidInputError

#: Every synthetic path starts here (or at the calendar's first evaluable date, if later).
EPOCH = dt.date(1980, 1, 1)

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

#: Per-session probabilities of corporate actions.
_SPLIT_P = 1 / 1500
_DIVIDEND_EVERY = 63


def _sessions(exchange_mic: str, end: dt.date) -> np.ndarray:
    """Sessions (datetime64[D]) of the exchange from the epoch through `end`."""
    through_year = _sessions_through(exchange_mic, end.year)
    return through_year[: int(np.searchsorted(through_year, np.datetime64(end, "D"), "right"))]


@functools.lru_cache(maxsize=64)
def _sessions_through(exchange_mic: str, year: int) -> np.ndarray:
    """Sessions from the epoch through the end of `year` (one calendar build per MIC-year)."""
    import exchange_calendars as xc

    end = dt.date(year, 12, 31)

    try:
        cls = type(xc.get_calendar(exchange_mic))
    except xc.errors.InvalidCalendarName as exc:
        raise InvalidInputError(
            f"no trading calendar for exchange {exchange_mic!r}", code="unknown-exchange"
        ) from exc
    bound_min, bound_max = cls.bound_min(), cls.bound_max()
    start = max(EPOCH, bound_min.date()) if bound_min is not None else EPOCH
    stop = min(end, bound_max.date()) if bound_max is not None else end
    if stop < start:
        return np.array([], dtype="datetime64[D]")
    cal = xc.get_calendar(exchange_mic, start=start.isoformat(), end=stop.isoformat())
    return np.asarray(cal.sessions.values.astype("datetime64[D]"))


def _ticker_seed(seed: int, ticker: str) -> list[int]:
    digest = hashlib.blake2b(ticker.encode(), digest_size=8).digest()
    return [seed & 0xFFFFFFFF, int.from_bytes(digest, "little")]


def _one(ticker: str, n: int, seed: int) -> dict[str, np.ndarray]:
    """The whole path of one ticker over `n` sessions from the epoch."""
    # Three independent streams; per-session draws come row by row from one call each, so
    # the first m sessions are the same whatever n is (a longer range only appends).
    base = _ticker_seed(seed, ticker)
    params = np.random.default_rng([*base, 0])
    p0 = params.uniform(5.0, 150.0)
    sigma = params.uniform(0.008, 0.03)
    drift = params.normal(0.0003, 0.0002)
    pays_dividend = params.random() < 0.5
    dividend_yield = params.uniform(0.002, 0.01)  # per quarter
    phase = int(params.integers(0, _DIVIDEND_EVERY))
    level = params.normal(13.0, 1.0)
    z = np.random.default_rng([*base, 1]).standard_normal((n, 5))
    u = np.random.default_rng([*base, 2]).random((n, 2))
    ret = drift + sigma * z[:, 0]
    gap = 0.3 * sigma * z[:, 1]
    up = np.abs(0.5 * sigma * z[:, 2])
    down = np.abs(0.5 * sigma * z[:, 3])
    volume = np.exp(level + 0.4 * z[:, 4])
    split_draw = u[:, 0]
    ratio_draw = u[:, 1]

    split = np.ones(n)
    hit = split_draw < _SPLIT_P
    hit[0] = False
    split[hit] = np.where(ratio_draw[hit] < 0.6, 2.0, np.where(ratio_draw[hit] < 0.9, 3.0, 0.5))
    q = np.zeros(n)
    if pays_dividend:
        ex = (np.arange(n) % _DIVIDEND_EVERY) == phase
        ex[0] = False
        q[ex] = dividend_yield
    # Total-return (adjusted) path and the cumulative adjustment factor F: raw = adjusted / F.
    adj_close = p0 * np.exp(np.cumsum(ret))
    log_f = np.cumsum(np.log(split) - np.log1p(-q))
    factor = np.exp(log_f)
    prev_adj = np.concatenate(([p0], adj_close[:-1]))
    adj_open = prev_adj * np.exp(gap)
    close = np.maximum(np.round(adj_close / factor, 4), 0.0001)
    open_ = np.maximum(np.round(adj_open / factor, 4), 0.0001)
    high = np.maximum(np.round(np.maximum(adj_open, adj_close) * np.exp(up) / factor, 4), 0.0001)
    low = np.maximum(np.round(np.minimum(adj_open, adj_close) * np.exp(-down) / factor, 4), 0.0001)
    high = np.maximum(high, np.maximum(open_, close))
    low = np.minimum(low, np.minimum(open_, close))
    prev_close = np.concatenate(([close[0]], close[:-1]))
    split_cum = np.exp(np.cumsum(np.log(split)))
    raw_volume = np.round(volume * split_cum).astype(np.int64)
    return {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": raw_volume,
        "adj_open": open_ * factor,
        "adj_high": high * factor,
        "adj_low": low * factor,
        "adj_close": close * factor,
        "adj_volume": raw_volume / split_cum,
        "split_factor": split,
        "dividend": q * prev_close,
    }


def synthetic_bars(
    tickers: Sequence[str],
    *,
    exchange_mic: str = "XNYS",
    date_from: dt.date,
    date_to: dt.date,
    seed: int = 0,
) -> pa.Table:
    """Bars (BAR_SCHEMA) for `tickers` on every session of `exchange_mic` in [date_from, date_to].

    Deterministic: the same (ticker, seed) gives the same bar on a date whatever the other
    tickers or the range asked for.
    """
    if date_to < date_from:
        raise InvalidInputError(f"date_to {date_to} is before date_from {date_from}")
    sessions = _sessions(exchange_mic, date_to)
    lo = int(np.searchsorted(sessions, np.datetime64(date_from, "D"), side="left"))
    hi = int(np.searchsorted(sessions, np.datetime64(date_to, "D"), side="right"))
    names = [str(t) for t in tickers]
    width = max(hi - lo, 0)
    columns: dict[str, list[np.ndarray]] = {}
    for ticker in names:
        path = _one(ticker, hi, seed) if width else {}
        for key, values in path.items():
            columns.setdefault(key, []).append(values[lo:hi])
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
            arrays[field.name] = pa.array(np.concatenate(columns[field.name]), field.type)
        elif field.name not in arrays:
            arrays[field.name] = pa.nulls(total, field.type)
    currency = _CURRENCY.get(exchange_mic, "USD")
    arrays["currency"] = _const(currency, total)
    arrays["source"] = _const("synthetic", total)
    return pa.Table.from_arrays([arrays[f.name] for f in BAR_SCHEMA], schema=BAR_SCHEMA)


def _const(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], pa.string())
    ).cast(pa.string())
