"""A Marketstack stub: the v2 and v1 JSON API on loopback, errors included.

Served under both `/v2` and `/v1` (`base_url` is the v2 root, `v1_url` the v1 root):

- `GET /eod?symbols=A,B&date_from&date_to&exchange&limit&offset` and `GET /eod/{date}`
- `GET /exchanges`, `GET /exchanges/{mic}`, `GET /exchanges/{mic}/tickers`
- `GET /exchanges/{mic}/eod?symbols&date_from&date_to` and `GET /exchanges/{mic}/eod/{date}`
  (the exchange-scoped EoD the old system used: `data` is the exchange with an `eod` list)
- `GET /tickers?exchange=MIC` (v1 shape, `symbol`) and `GET /v2/tickerslist?exchange=MIC`
  (v2 shape, `ticker`)
- `GET /splits?symbols&date_from&date_to` (`{date, split_factor, symbol}`) and
  `GET /dividends?symbols&date_from&date_to` (`{date, dividend, symbol}`), newest first;
  `actions_in_plan=False` answers them with `function_access_restricted` (403), as a plan
  without them does

Every call needs `access_key`; lists page with `limit` (≤ 1000, default 100) and `offset`,
EoD rows come newest first like the real API. Errors use the documented body
`{"error": {"code", "message", "context"}}`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.stubs._server import (
    Fault,
    RecordedRequest,
    Response,
    StubServer,
    csv_bars,
    page,
    parse_date,
)

__all__ = ["DEFAULT_EXCHANGES", "Fault", "MarketstackStub", "bars_from_csv"]

#: Documented error codes and the HTTP status Marketstack sends with each.
ERROR_STATUS: dict[str, int] = {
    "invalid_access_key": 401,
    "missing_access_key": 401,
    "inactive_user": 401,
    "https_access_restricted": 403,
    "function_access_restricted": 403,
    "invalid_api_function": 404,
    "404_not_found": 404,
    "validation_error": 422,
    "usage_limit_reached": 429,
    "too_many_requests": 429,
    "rate_limit_reached": 429,
    "internal_error": 500,
}

DEFAULT_EXCHANGES: tuple[dict[str, Any], ...] = (
    {
        "name": "NASDAQ Stock Exchange",
        "acronym": "NASDAQ",
        "mic": "XNAS",
        "country": "USA",
        "country_code": "US",
        "city": "New York",
        "website": "www.nasdaq.com",
        "timezone": "America/New_York",
        "currency": "USD",
    },
    {
        "name": "New York Stock Exchange",
        "acronym": "NYSE",
        "mic": "XNYS",
        "country": "USA",
        "country_code": "US",
        "city": "New York",
        "website": "www.nyse.com",
        "timezone": "America/New_York",
        "currency": "USD",
    },
)

_TZ_ABBR = {"America/New_York": ("EST", "EDT"), "Europe/London": ("GMT", "BST")}
_CURRENCY = {"USD": ("$", "US Dollar"), "GBP": ("£", "Pound Sterling"), "EUR": ("€", "Euro")}


def bars_from_csv(
    path: str | Path, symbol: str, exchange: str = "XNAS"
) -> dict[str, list[dict[str, Any]]]:
    """`bars` for the stub from a sample CSV (Date,Open,High,Low,Close,Volume[,Adj Close])."""
    return {symbol: [{**b, "exchange": exchange} for b in csv_bars(path)]}


class MarketstackStub(StubServer):
    """Marketstack on 127.0.0.1; `bars` maps a symbol to its bars (date, open, high, ...)."""

    base_path = "/v2"

    def __init__(
        self,
        bars: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        *,
        api_key: str = "test-key",
        exchanges: Sequence[Mapping[str, Any]] = DEFAULT_EXCHANGES,
        tickers: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        splits: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        dividends: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        actions_in_plan: bool = True,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        #: symbol -> [{"date": "YYYY-MM-DD", "split_factor": 2.0}], and dividends likewise
        self.splits = {k: [dict(r) for r in v] for k, v in (splits or {}).items()}
        self.dividends = {k: [dict(r) for r in v] for k, v in (dividends or {}).items()}
        self.actions_in_plan = actions_in_plan
        self.exchanges = {e["mic"]: dict(e) for e in exchanges}
        self._bars: dict[str, list[dict[str, Any]]] = {}
        self._queries: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for symbol, rows in (bars or {}).items():
            self.set_bars(symbol, rows)
        if tickers is None:
            derived: dict[str, list[dict[str, Any]]] = {}
            for symbol, rows in self._bars.items():
                mic = rows[0]["exchange"] if rows else "XNAS"
                derived.setdefault(mic, []).append({"symbol": symbol, "name": symbol})
            tickers = derived
        self.tickers = {mic: [dict(t) for t in ts] for mic, ts in tickers.items()}

    def set_bars(self, symbol: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Replace one symbol's bars (kept newest first, as the API sorts them)."""
        full = [self._full_bar(symbol, r) for r in rows]
        full.sort(key=lambda b: b["_date"], reverse=True)
        with self._lock:
            self._bars[symbol] = full
            self._queries.clear()

    @property
    def v1_url(self) -> str:
        return f"{self.root_url}/v1"

    # -- format ---------------------------------------------------------------------------

    @staticmethod
    def _full_bar(symbol: str, row: Mapping[str, Any]) -> dict[str, Any]:
        day = parse_date(row["date"])
        bar = {
            "open": float(row["open"]),
            "high": float(row["high"]),
            "low": float(row["low"]),
            "close": float(row["close"]),
            "volume": float(row["volume"]),
            "adj_high": row.get("adj_high", row["high"]),
            "adj_low": row.get("adj_low", row["low"]),
            "adj_close": row.get("adj_close", row["close"]),
            "adj_open": row.get("adj_open", row["open"]),
            "adj_volume": row.get("adj_volume", float(row["volume"])),
            "split_factor": row.get("split_factor", 1.0),
            "dividend": row.get("dividend", 0.0),
            "symbol": symbol,
            "exchange": row.get("exchange", "XNAS"),
            "date": f"{day.isoformat()}T00:00:00+0000",
            "_date": day,
        }
        return bar

    @staticmethod
    def _public(bar: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in bar.items() if not k.startswith("_")}

    def _exchange_obj(self, mic: str, *, v1: bool) -> dict[str, Any]:
        e = self.exchanges[mic]
        tz = e.get("timezone", "UTC")
        std, dst = _TZ_ABBR.get(tz, ("UTC", "UTC"))
        cur = e.get("currency") or "USD"
        sym, cname = _CURRENCY.get(cur, (cur, cur))
        obj = {k: e.get(k) for k in ("name", "acronym", "mic", "country", "country_code", "city")}
        obj["website"] = e.get("website")
        obj["timezone"] = {"timezone": tz, "abbr": std, "abbr_dst": dst}
        obj["currency"] = {"code": cur, "symbol": sym, "name": cname}
        if not v1:
            obj["operating_mic"] = mic
            obj["exchange_status"] = "ACTIVE"
        return obj

    def error_response(self, code: str, status: int, message: str | None = None) -> Response:
        body: dict[str, Any] = {
            "error": {
                "code": code,
                "message": message or code.replace("_", " ").capitalize() + ".",
            }
        }
        if code == "validation_error":
            body["error"]["context"] = {"symbols": [{"key": "missing_symbols", "message": message}]}
        return Response(status, body)

    def default_code(self, status: int) -> str:
        return {
            401: "invalid_access_key",
            403: "function_access_restricted",
            404: "404_not_found",
            422: "validation_error",
            429: "rate_limit_reached",
        }.get(status, "internal_error")

    def _error(self, code: str, message: str | None = None) -> Response:
        return self.error_response(code, ERROR_STATUS.get(code, 400), message)

    # -- routes ---------------------------------------------------------------------------

    def route(self, request: RecordedRequest) -> Response:
        found = re.fullmatch(r"/(v1|v2)/(.*?)/?", request.path)
        if not found:
            return self._error("invalid_api_function", "This API function does not exist.")
        version, rest = found.groups()
        key = request.params.get("access_key")
        if not key:
            return self._error("missing_access_key", "You have not supplied an API Access Key.")
        if key != self.api_key:
            return self._error(
                "invalid_access_key", "You have not supplied a valid API Access Key."
            )
        try:
            limit = int(request.params.get("limit") or 100)
            int(request.params.get("offset") or 0)
        except ValueError:
            return self._error("validation_error", "limit and offset must be integers")
        if not 1 <= limit <= 1000:
            return self._error("validation_error", "The limit must be between 1 and 1000.")
        parts = rest.split("/")
        v1 = version == "v1"
        match parts:
            case ["eod"]:
                return self._eod(request, symbols_required=True)
            case ["eod", day]:
                return self._eod(request, symbols_required=True, day=day)
            case ["exchanges"]:
                items = [self._exchange_obj(m, v1=v1) for m in sorted(self.exchanges)]
                return self._paged(items, request)
            case ["exchanges", mic]:
                if mic not in self.exchanges:
                    return self._error("404_not_found", f"Exchange {mic} not found.")
                return Response(200, self._exchange_obj(mic, v1=v1))
            case ["exchanges", mic, "tickers"]:
                if mic not in self.exchanges:
                    return self._error("404_not_found", f"Exchange {mic} not found.")
                rows = [
                    {
                        "name": t.get("name"),
                        "symbol": t["symbol"],
                        "has_intraday": False,
                        "has_eod": True,
                    }
                    for t in sorted(self.tickers.get(mic, []), key=lambda t: t["symbol"])
                ]
                chunk, pagination = page(rows, request.params)
                data = {**self._exchange_obj(mic, v1=v1), "tickers": chunk}
                return Response(200, {"pagination": pagination, "data": data})
            case ["exchanges", mic, "eod"]:
                return self._eod(request, symbols_required=False, mic=mic)
            case ["exchanges", mic, "eod", day]:
                return self._eod(request, symbols_required=False, mic=mic, day=day)
            case ["splits"] | ["dividends"]:
                return self._actions(
                    request, self.splits if parts == ["splits"] else self.dividends
                )
            case ["tickers"] | ["tickerslist"]:
                if parts == ["tickerslist"] and v1:
                    return self._error("invalid_api_function", "This API function does not exist.")
                return self._tickers(request, v2_list=parts == ["tickerslist"], v1=v1)
        return self._error("invalid_api_function", "This API function does not exist.")

    def _actions(
        self, request: RecordedRequest, by_symbol: Mapping[str, Sequence[Mapping[str, Any]]]
    ) -> Response:
        if not self.actions_in_plan:
            return self._error(
                "function_access_restricted",
                "The current subscription plan does not support this API endpoint.",
            )
        symbols = [s for s in request.params.get("symbols", "").split(",") if s]
        if not symbols:
            return self._error("validation_error", "You did not specify any symbols.")
        if len(symbols) > 100:
            return self._error("validation_error", "You can request at most 100 symbols.")
        try:
            lo = parse_date(request.params.get("date_from") or "0001-01-01")
            hi = parse_date(request.params.get("date_to") or "9999-12-31")
        except ValueError:
            return self._error("validation_error", "Dates must be formatted as YYYY-MM-DD.")
        rows = [
            {**r, "symbol": s}
            for s in symbols
            for r in by_symbol.get(s, [])
            if lo <= parse_date(r["date"]) <= hi
        ]
        rows.sort(key=lambda r: (r["date"], r["symbol"]), reverse=True)
        return self._paged(rows, request)

    def _paged(self, items: Sequence[Any], request: RecordedRequest) -> Response:
        chunk, pagination = page(items, request.params)
        return Response(200, {"pagination": pagination, "data": chunk})

    def _tickers(self, request: RecordedRequest, *, v2_list: bool, v1: bool) -> Response:
        wanted = request.params.get("exchange")
        rows = []
        for mic in sorted(self.tickers):
            if wanted and mic != wanted:
                continue
            ex = self._exchange_obj(mic, v1=v1) if mic in self.exchanges else {"mic": mic}
            short = {k: ex.get(k) for k in ("name", "acronym", "mic", "country_code", "city")}
            for t in sorted(self.tickers[mic], key=lambda t: t["symbol"]):
                row = {
                    "name": t.get("name"),
                    ("ticker" if v2_list else "symbol"): t["symbol"],
                    "has_intraday": False,
                    "has_eod": True,
                    "stock_exchange": short,
                }
                rows.append(row)
        return self._paged(rows, request)

    def _query(
        self,
        symbols: Sequence[str],
        lo: dt.date,
        hi: dt.date,
        exchange_filter: str | None,
        *,
        latest: bool,
    ) -> list[dict[str, Any]]:
        """Matching bars, newest first (cached per query so paging stays cheap)."""
        rows = [
            b
            for s in symbols
            for b in self._bars.get(s, [])
            if lo <= b["_date"] <= hi
            and (exchange_filter is None or b["exchange"] == exchange_filter)
        ]
        rows.sort(key=lambda b: (-b["_date"].toordinal(), b["symbol"]))
        if latest:
            newest: dict[str, dict[str, Any]] = {}
            for b in rows:
                newest.setdefault(b["symbol"], b)
            rows = list(newest.values())
        return rows

    def _eod(
        self,
        request: RecordedRequest,
        *,
        symbols_required: bool,
        mic: str | None = None,
        day: str | None = None,
    ) -> Response:
        params = request.params
        if mic is not None and mic not in self.exchanges:
            return self._error("404_not_found", f"Exchange {mic} not found.")
        raw_symbols = params.get("symbols", "")
        symbols = [s for s in raw_symbols.split(",") if s]
        if symbols_required and not symbols:
            return self._error("validation_error", "You did not specify any symbols.")
        if len(symbols) > 100:
            return self._error("validation_error", "You can request at most 100 symbols.")
        if mic is not None and not symbols:
            symbols = [t["symbol"] for t in self.tickers.get(mic, [])]
        try:
            if day is not None and day != "latest":
                lo = hi = parse_date(day)
            else:
                lo = parse_date(params["date_from"]) if params.get("date_from") else dt.date.min
                hi = parse_date(params["date_to"]) if params.get("date_to") else dt.date.max
        except ValueError:
            return self._error("validation_error", "Dates must be formatted as YYYY-MM-DD.")
        exchange_filter = mic or params.get("exchange")
        key = (tuple(symbols), lo, hi, exchange_filter, day == "latest")
        with self._lock:
            rows = self._queries.get(key)
        if rows is None:
            rows = self._query(symbols, lo, hi, exchange_filter, latest=day == "latest")
            with self._lock:
                if len(self._queries) > 64:
                    self._queries.clear()
                self._queries[key] = rows
        chunk, pagination = page(rows, params)
        chunk = [self._public(b) for b in chunk]
        if mic is None:
            return Response(200, {"pagination": pagination, "data": chunk})
        data = {**self._exchange_obj(mic, v1=request.path.startswith("/v1")), "eod": chunk}
        return Response(200, {"pagination": pagination, "data": data})
