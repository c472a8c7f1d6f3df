"""A Python client of the stockdata API: DataFrames over Arrow IPC, pages followed, 429s waited
out, answers revalidated by ETag.

    from stockdata.client import Client
    api = Client("http://127.0.0.1:8000")
    msft = api.eod("MSFT")  # every bar, one pandas DataFrame
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload
from urllib.parse import urljoin

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

__all__ = ["ApiError", "Client"]

F = TypeVar("F")
ARROW = "application/vnd.apache.arrow.stream"
_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')
DateLike = dt.date | str


class ApiError(Exception):
    """An answer that is not 2xx/304: the problem document's status, type and detail."""

    def __init__(self, status: int, problem_type: str, detail: str) -> None:
        super().__init__(f"{status} {problem_type}: {detail}")
        self.status = status
        self.type = problem_type
        self.detail = detail


class Client(Generic[F]):
    """The stockdata API as DataFrames (pandas by default, or polars with `frame="polars"`).

    Every tabular answer travels as an Arrow IPC stream. Pages are followed through the
    `Link: rel="next"` header; 429 and 503 answers are retried after their `Retry-After`
    (at most `max_retries` times); answers are kept by URL and revalidated with
    `If-None-Match`, so an unchanged lake costs a 304 and no body.
    """

    @overload
    def __init__(
        self: Client[pd.DataFrame],
        base_url: str,
        api_key: str | None = None,
        *,
        frame: Literal["pandas"] = "pandas",
        timeout: float = 60.0,
        max_retries: int = 5,
        page_size: int | None = None,
        cache_entries: int = 64,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None: ...

    @overload
    def __init__(
        self: Client[pl.DataFrame],
        base_url: str,
        api_key: str | None = None,
        *,
        frame: Literal["polars"],
        timeout: float = 60.0,
        max_retries: int = 5,
        page_size: int | None = None,
        cache_entries: int = 64,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None: ...

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        frame: Literal["pandas", "polars"] = "pandas",
        timeout: float = 60.0,
        max_retries: int = 5,
        page_size: int | None = None,
        cache_entries: int = 64,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`page_size`: ask for pages of this many rows (default: whole answers where the
        API streams them); `sleep` waits out a `Retry-After`."""
        headers = {"Accept": ARROW, "User-Agent": "stockdata-client"}
        if api_key is not None:
            headers["X-API-Key"] = api_key
        self._base = base_url.rstrip("/") + "/"
        self._http = httpx.Client(base_url=self._base, headers=headers, timeout=timeout)
        self._frame = frame
        self._max_retries = max_retries
        self._page_size = page_size
        self._sleep = sleep
        #: url -> (ETag, table, Link): a 304 carries no Link, the kept one leads on.
        self._cache: OrderedDict[str, tuple[str, pa.Table, str | None]] = OrderedDict()
        self._cache_entries = cache_entries
        #: Answers by kind since the client was made: "ok", "not_modified", "retried".
        self.counts: dict[str, int] = {"ok": 0, "not_modified": 0, "retried": 0}

    # -- the API -----------------------------------------------------------------------------

    def eod(
        self,
        symbol: str,
        start: DateLike | None = None,
        end: DateLike | None = None,
        adjust: Basis | None = None,
        *,
        adjust_as_of: DateLike | None = None,
        exchange: str | None = None,
        adjusted: bool = False,
    ) -> F:
        """Every bar of `symbol` (or of `start`..`end`), oldest first.

        `adjust`: `none` (as traded, the default), `splits` or `all` (splits and cash
        dividends), computed by the server from its corporate actions, for the actions with
        an ex-date on or before `adjust_as_of` when given. `adjusted=True` is `adjust="all"`."""
        params = _params(
            {
                "from": start,
                "to": end,
                "exchange": exchange,
                "adjust": adjust,
                "adjust_as_of": adjust_as_of,
            },
            adjusted=adjusted,
        )
        return self._frame_of(self._table(f"v1/eod/{symbol}/history", params, paged=True))

    def eod_on(
        self,
        date: DateLike,
        *,
        exchange: str | None = None,
        adjust: Basis | None = None,
        adjust_as_of: DateLike | None = None,
        adjusted: bool = False,
    ) -> F:
        """Every ticker's bar on one date (`adjust` as for `eod`)."""
        params = _params(
            {"date": date, "exchange": exchange, "adjust": adjust, "adjust_as_of": adjust_as_of},
            adjusted=adjusted,
        )
        return self._frame_of(self._table("v1/eod", params, paged=True))

    def delta(
        self,
        symbol: str,
        days: int,
        *,
        date: DateLike | None = None,
        start: DateLike | None = None,
        end: DateLike | None = None,
        exchange: str | None = None,
        adjust: Basis | None = None,
        adjust_as_of: DateLike | None = None,
        adjusted: bool = False,
    ) -> F:
        """The change over `days` sessions ending at `date` (one row), or, with `start` or
        `end`, the rolling change for every session in that range. Basis: `splits` unless
        `adjust` names another, so a split is never a move."""
        series = start is not None or end is not None
        params = _params(
            {
                "days": days,
                "date": date,
                "from": start,
                "to": end,
                "exchange": exchange,
                "adjust": adjust,
                "adjust_as_of": adjust_as_of,
            },
            adjusted=adjusted,
        )
        if series:
            params["series"] = "true"
        return self._frame_of(self._table(f"v1/eod/{symbol}/delta", params, paged=series))

    def movers(
        self,
        date: DateLike,
        days: int,
        *,
        order: Literal["gainers", "losers"] = "gainers",
        limit: int = 10,
        exchange: str | None = None,
        adjust: Basis | None = None,
        adjust_as_of: DateLike | None = None,
        adjusted: bool = False,
    ) -> F:
        """The `limit` top gainers (or losers) over `days` sessions ending at `date`
        (basis `splits` unless `adjust` names another)."""
        params = _params(
            {
                "date": date,
                "days": days,
                "order": order,
                "limit": limit,
                "exchange": exchange,
                "adjust": adjust,
                "adjust_as_of": adjust_as_of,
            },
            adjusted=adjusted,
        )
        return self._frame_of(self._table("v1/movers", params, paged=False))

    def actions(
        self,
        symbol: str,
        start: DateLike | None = None,
        end: DateLike | None = None,
        *,
        kind: ActionKind | Sequence[ActionKind] | None = None,
        exchange: str | None = None,
    ) -> F:
        """The corporate actions of `symbol` (or those with an ex-date in `start`..`end`),
        oldest first, each with the factor it puts on earlier prices (`price_factor`,
        `volume_factor`); `kind` keeps only those kinds."""
        params = _params({"from": start, "to": end, "exchange": exchange}, adjusted=False)
        kinds = [kind] if isinstance(kind, str) else list(kind or ())
        query = [*params.items(), *(("kind", k) for k in kinds)]
        return self._frame_of(self._table(f"v1/actions/{symbol}", query, paged=False))

    def sql(self, query: str, *, limit: int | None = None) -> F:
        """One read-only SELECT over the lake's views: `eod`, `eod_deltas`, `eod_rejects`,
        `corporate_actions`, `action_factors`, `eod_split_adjusted`, `eod_adjusted`."""
        body: dict[str, Any] = {"sql": query}
        if limit is not None:
            body["limit"] = limit
        resp = self._send("POST", "v1/sql?format=arrow", json=body)
        return self._frame_of(_read_arrow(resp.content))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client[F]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------

    def _table(
        self,
        path: str,
        params: Mapping[str, str] | Sequence[tuple[str, str]],
        *,
        paged: bool,
    ) -> pa.Table:
        query = list(params.items()) if isinstance(params, Mapping) else list(params)
        query.append(("format", "arrow"))
        if paged and self._page_size is not None:
            query.append(("limit", str(self._page_size)))
        url: str | None = str(httpx.URL(urljoin(self._base, path), params=query))
        tables = []
        while url is not None:
            table, link = self._get(url)
            tables.append(table)
            url = _next_link(link, url) if paged else None
        if len(tables) == 1:
            return tables[0]
        return pa.concat_tables(tables)

    def _get(self, url: str) -> tuple[pa.Table, str | None]:
        cached = self._cache.get(url)
        headers = {"If-None-Match": cached[0]} if cached is not None else {}
        resp = self._send("GET", url, headers=headers)
        link = resp.headers.get("link")
        if resp.status_code == 304 and cached is not None:
            self.counts["not_modified"] += 1
            self._cache.move_to_end(url)
            return cached[1], cached[2]
        table = _read_arrow(resp.content)
        etag = resp.headers.get("etag")
        if etag is not None and self._cache_entries > 0:
            self._cache[url] = (etag, table, link)
            self._cache.move_to_end(url)
            while len(self._cache) > self._cache_entries:
                self._cache.popitem(last=False)
        return table, link

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        for attempt in range(self._max_retries + 1):
            resp = self._http.request(method, url, headers=headers, json=json)
            if resp.status_code in (429, 503) and attempt < self._max_retries:
                wait = _retry_after(resp.headers.get("retry-after"))
                if wait is not None:
                    self.counts["retried"] += 1
                    self._sleep(wait)
                    continue
            if resp.status_code >= 400:
                raise _error(resp)
            if resp.status_code != 304:
                self.counts["ok"] += 1
            return resp
        raise AssertionError("unreachable")  # pragma: no cover

    def _frame_of(self, table: pa.Table) -> F:
        if self._frame == "polars":
            import polars

            frame: Any = polars.from_arrow(table)
        else:
            frame = table.to_pandas()
        return frame  # type: ignore[no-any-return]


Basis = Literal["none", "splits", "all"]
ActionKind = Literal["split", "stock_dividend", "dividend", "symbol_change"]


def _params(values: Mapping[str, object], *, adjusted: bool) -> dict[str, str]:
    out = {
        k: v.isoformat() if isinstance(v, dt.date) else str(v)
        for k, v in values.items()
        if v is not None
    }
    if adjusted:
        out["adjusted"] = "true"
    return out


def _next_link(link: str | None, url: str) -> str | None:
    if not link:
        return None
    found = _NEXT.search(link)
    return urljoin(url, found.group(1)) if found else None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` of delay-seconds or an HTTP date; None if absent."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _read_arrow(content: bytes) -> pa.Table:
    return ipc.open_stream(pa.BufferReader(content)).read_all()


def _error(resp: httpx.Response) -> ApiError:
    try:
        problem = resp.json()
        return ApiError(resp.status_code, str(problem["type"]), str(problem["detail"]))
    except (ValueError, KeyError, TypeError):
        return ApiError(resp.status_code, "about:blank", resp.text[:200])
