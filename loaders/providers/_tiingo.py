"""Tiingo: daily prices per ticker from `/tiingo/daily/{ticker}/prices`."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from loaders._http import HttpClient, Reply
from loaders._provider_settings import ProviderSettings
from loaders.providers._actions import ActionsOnBars
from loaders.providers._arrow import empty_bars, json_bars, unique
from loaders.providers._base import register
from stockdata.errors import CredentialError, PermanentError, TransientError
from stockdata.logs import get_logger

log = get_logger(__name__)


def check_tiingo(reply: Reply) -> None:
    """Raise for Tiingo's `{"detail": "..."}` error bodies (sent with 4xx, sometimes 200)."""
    payload = reply.payload
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if detail is None:
        if reply.status in (401, 403):
            raise CredentialError("tiingo: token refused", code="unauthorized", provider="tiingo")
        return
    text = f"tiingo: {detail}"
    lowered = str(detail).lower()
    if reply.status == 429 or "allocation" in lowered or reply.status >= 500:
        raise TransientError(text, code="rate_limit" if reply.status < 500 else "server_error")
    if reply.status in (401, 403) or "token" in lowered:
        raise CredentialError(text, code="unauthorized", provider="tiingo")
    if reply.status == 404 or "not found" in lowered:
        raise PermanentError(text, code="not_found", provider="tiingo")
    raise PermanentError(text, code="tiingo_error", provider="tiingo", status=reply.status)


def tiingo_symbol(symbol: str) -> str:
    """Tiingo spells share classes with a dash (BRK-B) where others use a dot (BRK.B)."""
    return symbol.replace(".", "-").lower()


#: BAR_SCHEMA column -> Tiingo daily-prices field.
FIELDS: dict[str, str] = {
    "trade_date": "date",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
    "adj_open": "adjOpen",
    "adj_high": "adjHigh",
    "adj_low": "adjLow",
    "adj_close": "adjClose",
    "adj_volume": "adjVolume",
    "split_factor": "splitFactor",
    "dividend": "divCash",
}


@register("tiingo")
class TiingoProvider(ActionsOnBars):
    """Tiingo end-of-day prices; the token travels in the Authorization header, never the URL."""

    name = "tiingo"
    #: a per-symbol endpoint: 100 calls per job
    max_symbols_per_job = 100

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        client: HttpClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._key = settings.api_key("tiingo")
        self.base_url = settings.tiingo_base_url.rstrip("/")
        self.http = client or HttpClient.for_settings(
            self.name, settings, check=check_tiingo, secrets=[self._key], sleep=sleep
        )

    def fetch_bars(
        self,
        symbols: Sequence[str],
        *,
        exchange_mic: str,
        date_from: dt.date,
        date_to: dt.date,
    ) -> pa.Table:
        """One request per ticker (Tiingo's daily endpoint takes one)."""
        tables: list[pa.Table] = []
        for symbol in unique(symbols):
            payload = self.http.get_json(
                f"{self.base_url}/tiingo/daily/{tiingo_symbol(symbol)}/prices",
                params={
                    "startDate": date_from.isoformat(),
                    "endDate": date_to.isoformat(),
                    "format": "json",
                },
                headers={
                    "Authorization": f"Token {self._key}",
                    "Content-Type": "application/json",
                },
            )
            if not isinstance(payload, list):
                raise TransientError(
                    f"tiingo: answer for {symbol} is not a list of prices", code="invalid-body"
                )
            tables.append(
                json_bars(
                    payload, FIELDS, source=self.name, exchange_mic=exchange_mic, ticker=symbol
                )
            )
        table = pa.concat_tables(tables) if tables else empty_bars()
        log.info("provider_fetched", provider=self.name, symbols=len(symbols), rows=table.num_rows)
        return table

    def list_exchanges(self) -> list[dict[str, Any]]:
        raise PermanentError(
            "tiingo has no exchange list endpoint: seed the catalog from `calendars`, "
            "`marketstack` or `eodhd`",
            code="not-supported",
        )

    def list_tickers(self, exchange_mic: str) -> list[dict[str, Any]]:
        raise PermanentError(
            "tiingo publishes its tickers as a zip file, not an API: seed tickers from "
            "`marketstack` or `eodhd`, or add them with `stockdata catalog add-ticker`",
            code="not-supported",
        )
