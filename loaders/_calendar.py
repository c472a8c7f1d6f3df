"""Trading calendars: which dates are sessions, which session closed last, where bars are missing."""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from stockdata.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    import exchange_calendars as xcals

    from lake import LakeSettings, RowCheck


def get_calendar(code: str) -> xcals.ExchangeCalendar:
    """The exchange-calendars calendar `code` (XNYS, XLON, ...) covering 1970 to next year."""
    from lake import exchange_calendar

    try:
        return exchange_calendar(code)
    except InvalidInputError as exc:
        raise NotFoundError(f"no trading calendar {code!r} in exchange-calendars") from exc


@functools.lru_cache(maxsize=64)
def sessions(code: str) -> pa.Array:
    """Every session of calendar `code` as a sorted date32 array."""
    from lake import all_sessions

    return pa.array(all_sessions(code), pa.date32())


def is_session(code: str, day: dt.date) -> bool:
    return bool(pc.is_in(pa.array([day], pa.date32()), value_set=sessions(code))[0].as_py())


def sessions_between(code: str, first: dt.date, last: dt.date) -> list[dt.date]:
    s = sessions(code)
    mask = pc.and_(
        pc.greater_equal(s, pa.scalar(first, pa.date32())),
        pc.less_equal(s, pa.scalar(last, pa.date32())),
    )
    return list(s.filter(mask).to_pylist())


def latest_closed_session(code: str, now: dt.datetime) -> dt.date:
    """The last session whose close is at or before `now` (an aware datetime), in the
    exchange's own timezone: weekends and holidays are skipped; before today's close, the
    previous session."""
    import pandas as pd

    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    cal = get_calendar(code)
    local = now.astimezone(zoneinfo.ZoneInfo(str(cal.tz))).date()
    session = cal.date_to_session(pd.Timestamp(local), direction="previous")
    while cal.session_close(session).to_pydatetime() > now:
        session = cal.previous_session(session)
    return session.date()  # type: ignore[no-any-return]


def local_today(timezone: str, now: dt.datetime | None = None) -> dt.date:
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(zoneinfo.ZoneInfo(timezone)).date()


def session_checks(code: str, *, timezone: str, now: dt.datetime | None = None) -> list[RowCheck]:
    """Extra lake row checks: the date is a session of `code`, and not after today in the
    exchange's timezone."""
    valid = sessions(code)
    today = pa.scalar(local_today(timezone, now), pa.date32())

    def not_a_session(t: pa.Table) -> tuple[pa.Array | pa.ChunkedArray, str]:
        return pc.invert(pc.is_in(t.column("trade_date"), value_set=valid)), (
            f"not a trading session of {code}"
        )

    def in_future(t: pa.Table) -> tuple[pa.Array | pa.ChunkedArray, str]:
        return pc.greater(t.column("trade_date"), today), f"trade date is after today in {timezone}"

    return [in_future, not_a_session]


def find_gaps(
    lake_settings: LakeSettings,
    *,
    ticker: str,
    exchange_mic: str,
    calendar_code: str,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> list[dt.date]:
    """Sessions in [date_from, date_to] (default: the ticker's first..last bar) with no bar."""
    import lake

    con = lake.connect(lake_settings)
    try:
        rows = con.execute(
            "SELECT DISTINCT trade_date FROM eod WHERE ticker = ? AND exchange_mic = ? "
            "ORDER BY trade_date",
            [ticker.upper(), exchange_mic.upper()],
        ).fetchall()
    finally:
        con.close()
    have = {r[0] for r in rows}
    if not have:
        raise NotFoundError(f"no bars for {ticker.upper()} on {exchange_mic.upper()} in the lake")
    first = date_from or min(have)
    last = date_to or max(have)
    return [d for d in sessions_between(calendar_code, first, last) if d not in have]
