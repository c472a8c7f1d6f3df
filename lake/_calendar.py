"""Exchange trading calendars, built once per exchange per process.

exchange-calendars takes about a second to build fifty years of XNYS; the loaders' session
checks, the controller, the synthetic generator and the cross-section SQL all share the
one calendar (and its sessions as a numpy array) cached here.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import TYPE_CHECKING

import numpy as np

from stockdata.errors import InvalidInputError

if TYPE_CHECKING:
    import exchange_calendars as xcals

#: Calendars start here (or at the calendar's own first evaluable date, if later) and end
#: at exchange-calendars' default, about a year after today.
CALENDAR_START = dt.date(1970, 1, 1)


@functools.lru_cache(maxsize=64)
def exchange_calendar(code: str) -> xcals.ExchangeCalendar:
    """The exchange-calendars calendar `code` (XNYS, XLON, ...) from 1970 to next year."""
    import exchange_calendars as xcals

    try:
        cls = type(xcals.get_calendar(code))
    except xcals.errors.InvalidCalendarName as exc:
        raise InvalidInputError(
            f"no trading calendar for exchange {code!r}", code="unknown-exchange"
        ) from exc
    bound_min = cls.bound_min()
    start = max(CALENDAR_START, bound_min.date()) if bound_min is not None else CALENDAR_START
    return xcals.get_calendar(code, start=start.isoformat())


@functools.lru_cache(maxsize=64)
def all_sessions(code: str) -> np.ndarray:
    """Every session (datetime64[D], ascending, read-only) of calendar `code`."""
    sessions = np.asarray(exchange_calendar(code).sessions.values.astype("datetime64[D]"))
    sessions.setflags(write=False)
    return sessions


def sessions_through(code: str, end: dt.date) -> np.ndarray:
    """Sessions of calendar `code` from its start through `end` (a read-only view)."""
    sessions = all_sessions(code)
    return sessions[: int(np.searchsorted(sessions, np.datetime64(end, "D"), "right"))]
