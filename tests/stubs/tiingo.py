"""A Tiingo stub: `GET /tiingo/daily/{ticker}/prices?startDate&endDate` on loopback.

The token is accepted as `Authorization: Token KEY` or as the `token` query parameter.
Prices come oldest first with dates like `2019-01-02T00:00:00.000Z`; errors are
`{"detail": "..."}` with 401 (bad token), 404 (unknown ticker), 429 (allocation used up).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.stubs._server import Fault, RecordedRequest, Response, StubServer, csv_bars, parse_date

__all__ = ["Fault", "TiingoStub", "bars_from_csv"]


def bars_from_csv(path: str | Path, symbol: str) -> dict[str, list[dict[str, Any]]]:
    """`bars` for the stub from a sample CSV."""
    return {symbol.lower(): csv_bars(path)}


class TiingoStub(StubServer):
    """Tiingo on 127.0.0.1; `bars` maps a ticker to its bars (date, open, high, ...)."""

    base_path = ""

    def __init__(
        self,
        bars: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        *,
        api_key: str = "test-key",
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self._bars: dict[str, list[dict[str, Any]]] = {}
        for ticker, rows in (bars or {}).items():
            full = [self._full(r) for r in rows]
            full.sort(key=lambda b: b["_date"])
            self._bars[ticker.lower()] = full

    @staticmethod
    def _full(row: Mapping[str, Any]) -> dict[str, Any]:
        day = parse_date(row["date"])
        volume = round(float(row["volume"]))
        return {
            "date": f"{day.isoformat()}T00:00:00.000Z",
            "close": float(row["close"]),
            "high": float(row["high"]),
            "low": float(row["low"]),
            "open": float(row["open"]),
            "volume": volume,
            "adjClose": float(row.get("adj_close", row["close"])),
            "adjHigh": float(row.get("adj_high", row["high"])),
            "adjLow": float(row.get("adj_low", row["low"])),
            "adjOpen": float(row.get("adj_open", row["open"])),
            "adjVolume": volume,
            "divCash": float(row.get("dividend", 0.0)),
            "splitFactor": float(row.get("split_factor", 1.0)),
            "_date": day,
        }

    def error_response(self, code: str, status: int, message: str | None = None) -> Response:
        detail = message or {
            "unauthorized": "Invalid token.",
            "not_found": "Error: Ticker not found",
            "rate_limit": "You have run over your hourly request allocation.",
        }.get(code, f"Error: {code}")
        return Response(status, {"detail": detail})

    def default_code(self, status: int) -> str:
        return {401: "unauthorized", 404: "not_found", 429: "rate_limit"}.get(status, "server")

    def route(self, request: RecordedRequest) -> Response:
        auth = request.headers.get("Authorization", "")
        token = auth[len("Token ") :] if auth.startswith("Token ") else request.params.get("token")
        if token != self.api_key:
            return self.error_response("unauthorized", 401, "Invalid token.")
        found = re.fullmatch(r"/tiingo/daily/([^/]+)/prices/?", request.path)
        if not found:
            return self.error_response("not_found", 404, "Not found.")
        ticker = found.group(1).lower()
        if ticker not in self._bars:
            return self.error_response(
                "not_found", 404, f"Error: Ticker '{ticker.upper()}' not found"
            )
        try:
            lo = parse_date(request.params["startDate"]) if "startDate" in request.params else None
            hi = parse_date(request.params["endDate"]) if "endDate" in request.params else None
        except ValueError:
            return self.error_response("bad_date", 400, "Error: Invalid date format")
        lo = lo or dt.date.min
        hi = hi or dt.date.max
        rows = [
            {k: v for k, v in b.items() if not k.startswith("_")}
            for b in self._bars[ticker]
            if lo <= b["_date"] <= hi
        ]
        return Response(200, rows)
