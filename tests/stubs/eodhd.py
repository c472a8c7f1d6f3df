"""An EODHD stub: `GET /api/eod/{SYMBOL}.{EXCHANGE}?from&to&api_token&fmt=json` on loopback.

Also `GET /api/exchanges-list/`, `GET /api/exchange-symbol-list/{CODE}`,
`GET /api/splits/{SYMBOL}.{EXCHANGE}?from&to` (`[{"date", "split": "2.000000/1.000000"}]`)
and `GET /api/div/{SYMBOL}.{EXCHANGE}?from&to` (`[{"date", "value", "unadjustedValue",
"currency", "declarationDate", ...}]`); `actions_in_plan=False` answers those two with 403. Bars come
oldest first (`date` as YYYY-MM-DD, `adjusted_close`); errors are 401 `Unauthenticated`,
402 (daily limit), 404 `Ticker Not Found.`, 429 (rate limit).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.stubs._server import Fault, RecordedRequest, Response, StubServer, csv_bars, parse_date

__all__ = ["DEFAULT_EXCHANGES", "EodhdStub", "Fault", "bars_from_csv"]

DEFAULT_EXCHANGES: tuple[dict[str, Any], ...] = (
    {
        "Name": "USA Stocks",
        "Code": "US",
        "OperatingMIC": "XNAS, XNYS",
        "Country": "USA",
        "Currency": "USD",
        "CountryISO2": "US",
        "CountryISO3": "USA",
    },
    {
        "Name": "London Exchange",
        "Code": "LSE",
        "OperatingMIC": "XLON",
        "Country": "UK",
        "Currency": "GBP",
        "CountryISO2": "GB",
        "CountryISO3": "GBR",
    },
)


def bars_from_csv(path: str | Path, code: str) -> dict[str, list[dict[str, Any]]]:
    """`bars` for the stub from a sample CSV; `code` is the EODHD symbol, e.g. `MSFT.US`."""
    return {code: csv_bars(path)}


class EodhdStub(StubServer):
    """EODHD on 127.0.0.1; `bars` maps `SYMBOL.CODE` to bars, `symbols` a code to its list."""

    base_path = "/api"

    def __init__(
        self,
        bars: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        *,
        api_key: str = "test-key",
        exchanges: Sequence[Mapping[str, Any]] = DEFAULT_EXCHANGES,
        symbols: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        splits: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        dividends: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        actions_in_plan: bool = True,
    ) -> None:
        super().__init__()
        #: `SYMBOL.CODE` -> rows in EODHD's shape (oldest first)
        self.splits = {k.upper(): [dict(r) for r in v] for k, v in (splits or {}).items()}
        self.dividends = {k.upper(): [dict(r) for r in v] for k, v in (dividends or {}).items()}
        self.actions_in_plan = actions_in_plan
        self.api_key = api_key
        self.exchanges = [dict(e) for e in exchanges]
        self._bars: dict[str, list[dict[str, Any]]] = {}
        for code, rows in (bars or {}).items():
            full = [self._full(r) for r in rows]
            full.sort(key=lambda b: b["_date"])
            self._bars[code.upper()] = full
        self.symbols = {k: [dict(s) for s in v] for k, v in (symbols or {}).items()}

    @staticmethod
    def _full(row: Mapping[str, Any]) -> dict[str, Any]:
        day = parse_date(row["date"])
        return {
            "date": day.isoformat(),
            "open": float(row["open"]),
            "high": float(row["high"]),
            "low": float(row["low"]),
            "close": float(row["close"]),
            "adjusted_close": float(row.get("adj_close", row["close"])),
            "volume": round(float(row["volume"])),
            "_date": day,
        }

    def error_response(self, code: str, status: int, message: str | None = None) -> Response:
        text = message or {
            401: "Unauthenticated",
            402: "You exceeded your daily API requests limit. Please upgrade your plan.",
            404: "Ticker Not Found.",
            429: "Too Many Requests",
        }.get(status, "Server Error")
        if status == 401:
            return Response(status, {"message": text})
        return Response(status, text, content_type="text/plain; charset=utf-8")

    def default_code(self, status: int) -> str:
        return str(status)

    def route(self, request: RecordedRequest) -> Response:
        if request.params.get("api_token") != self.api_key:
            return self.error_response("401", 401)
        path = request.path
        if re.fullmatch(r"/api/exchanges-list/?", path):
            return Response(200, self.exchanges)
        found = re.fullmatch(r"/api/exchange-symbol-list/([A-Za-z0-9]+)/?", path)
        if found:
            return Response(200, self.symbols.get(found.group(1).upper(), []))
        found = re.fullmatch(r"/api/(eod|splits|div)/([^/]+)/?", path)
        if not found:
            return self.error_response("404", 404, "Not found")
        endpoint, code = found.group(1), found.group(2).upper()
        try:
            lo = parse_date(request.params["from"]) if request.params.get("from") else dt.date.min
            hi = parse_date(request.params["to"]) if request.params.get("to") else dt.date.max
        except ValueError:
            return Response(422, {"errors": {"from": ["The from must be a date."]}})
        if endpoint != "eod":
            if not self.actions_in_plan:
                return Response(403, {"message": "Forbidden. Please upgrade your plan."})
            rows_of = self.splits if endpoint == "splits" else self.dividends
            return Response(
                200, [r for r in rows_of.get(code, []) if lo <= parse_date(r["date"]) <= hi]
            )
        if code not in self._bars:
            return self.error_response("404", 404)
        rows = [
            {k: v for k, v in b.items() if not k.startswith("_")}
            for b in self._bars[code]
            if lo <= b["_date"] <= hi
        ]
        return Response(200, rows)
