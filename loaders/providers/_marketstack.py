"""Marketstack (v2 by default, v1 selectable): EoD bars, exchanges and tickers."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa

from loaders._http import HttpClient, Reply
from loaders._provider_settings import ProviderSettings
from loaders.providers._actions import action_rows, not_in_plan, plan_refused
from loaders.providers._arrow import batched, json_bars, unique
from loaders.providers._base import register
from stockdata.errors import CredentialError, PermanentError, TransientError
from stockdata.logs import get_logger

log = get_logger(__name__)

#: Documented codes that waiting can fix.
TRANSIENT_CODES = frozenset({"rate_limit_reached", "internal_error", "service_unavailable"})
#: Documented codes that say the key is at fault, not the job (the monthly quota included:
#: it resets next month, or with another key): the worker releases the job and stops.
CREDENTIAL_CODES = frozenset(
    {
        "invalid_access_key",
        "missing_access_key",
        "inactive_user",
        "https_access_restricted",
        "function_access_restricted",
        "usage_limit_reached",
    }
)
#: Documented codes that waiting cannot fix.
PERMANENT_CODES = CREDENTIAL_CODES | frozenset(
    {
        "invalid_api_function",
        "404_not_found",
        "validation_error",
        "too_many_requests",
        "no_valid_symbols_provided",
        "data_not_available",
    }
)


def check_marketstack(reply: Reply) -> None:
    """Raise for Marketstack's `{"error": {"code", "message", "context"}}`, under any status."""
    payload = reply.payload
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return
    code = str(error.get("code") or f"http-{reply.status}")
    message = str(error.get("message") or code)
    context = error.get("context")
    text = f"marketstack: {code}: {message}"
    if code in TRANSIENT_CODES or (
        code not in PERMANENT_CODES and (reply.status == 429 or reply.status >= 500)
    ):
        raise TransientError(text, code=code, provider="marketstack", status=reply.status)
    if code in CREDENTIAL_CODES:
        raise CredentialError(text, code=code, provider="marketstack", status=reply.status)
    raise PermanentError(
        text, code=code, provider="marketstack", status=reply.status, context=context
    )


#: BAR_SCHEMA column -> Marketstack EoD field.
FIELDS: dict[str, str] = {
    "ticker": "symbol",
    "trade_date": "date",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
    "adj_open": "adj_open",
    "adj_high": "adj_high",
    "adj_low": "adj_low",
    "adj_close": "adj_close",
    "adj_volume": "adj_volume",
    "split_factor": "split_factor",
    "dividend": "dividend",
}


@register("marketstack")
class MarketstackProvider:
    """Marketstack's JSON API: `/eod` by symbol batches and pages, list endpoints for the catalog.

    Per call: ≤ `provider_batch_size` (100) symbols, `limit=provider_page_size` (1000) rows,
    `offset` paging until `pagination.total`.
    """

    name = "marketstack"
    #: Marketstack's `symbols` cap per call
    max_symbols_per_job = 100
    #: `/eod` bars carry `split_factor` and `dividend`: bar jobs need no extra call.
    actions_on_bars = True

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        client: HttpClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._key = settings.api_key("marketstack")
        self.version = settings.marketstack_version
        self.base_url = settings.marketstack_url()
        self.page_size = settings.provider_page_size
        self.batch_size = settings.provider_batch_size
        self.http = client or HttpClient.for_settings(
            self.name, settings, check=check_marketstack, secrets=[self._key], sleep=sleep
        )

    # -- transport ------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        query = {"access_key": self._key, **(params or {})}
        payload = self.http.get_json(f"{self.base_url}/{path.lstrip('/')}", params=query)
        if not isinstance(payload, dict) or "data" not in payload:
            raise TransientError(
                f"marketstack: answer to /{path} has no `data`", code="invalid-body"
            )
        return payload

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[Any]:
        """Yield each page's `data`, following `offset` until `pagination.total`."""
        offset = 0
        while True:
            payload = self._get(path, {**params, "limit": self.page_size, "offset": offset})
            data = payload["data"]
            yield data
            pagination = payload.get("pagination") or {}
            count = int(pagination.get("count") or _len_rows(data))
            total = int(pagination.get("total") or 0)
            offset += count
            if count == 0 or offset >= total:
                return

    # -- Provider -------------------------------------------------------------------------

    def fetch_bars(
        self,
        symbols: Sequence[str],
        *,
        exchange_mic: str,
        date_from: dt.date,
        date_to: dt.date,
    ) -> pa.Table:
        """Bars of `symbols` from `/eod`, in batches of ≤ 100 symbols and pages of 1,000 rows."""
        rows: list[Mapping[str, Any]] = []
        for batch in batched(unique(symbols), self.batch_size):
            params = {
                "symbols": ",".join(batch),
                "date_from": date_from.isoformat(),
                "date_to": date_to.isoformat(),
            }
            for data in self._pages("eod", params):
                rows.extend(data)
        log.info(
            "provider_fetched",
            provider=self.name,
            exchange_mic=exchange_mic,
            symbols=len(symbols),
            rows=len(rows),
            date_from=str(date_from),
            date_to=str(date_to),
        )
        return json_bars(rows, FIELDS, source=self.name, exchange_mic=exchange_mic)

    def fetch_actions(
        self,
        symbols: Sequence[str],
        *,
        exchange_mic: str,
        date_from: dt.date,
        date_to: dt.date,
    ) -> pa.Table:
        """Splits from `/splits` and cash dividends from `/dividends` (v2; v1 has both too),
        in batches of <= 100 symbols and pages of 1,000 rows.

        A plan without these endpoints (`function_access_restricted`) fails the job with
        `actions-not-in-plan`; it does not stop the worker."""
        rows: list[dict[str, Any]] = []
        try:
            for batch in batched(unique(symbols), self.batch_size):
                params = {
                    "symbols": ",".join(batch),
                    "date_from": date_from.isoformat(),
                    "date_to": date_to.isoformat(),
                }
                for data in self._pages("splits", params):
                    rows.extend(_split_row(r) for r in data)
                for data in self._pages("dividends", params):
                    rows.extend(_dividend_row(r) for r in data)
        except CredentialError as exc:
            if not_in_plan(exc):
                raise plan_refused(self.name, exc) from exc
            raise
        log.info(
            "provider_fetched_actions",
            provider=self.name,
            exchange_mic=exchange_mic,
            symbols=len(symbols),
            rows=len(rows),
        )
        return action_rows(rows, source=self.name, exchange_mic=exchange_mic)

    def fetch_exchange_day(
        self, exchange_mic: str, day: dt.date, *, symbols: Sequence[str] | None = None
    ) -> pa.Table:
        """One session of an exchange from `/exchanges/{mic}/eod/{date}` (the old system's call).

        Without `symbols` Marketstack returns every ticker of the exchange.
        """
        batches: list[list[str] | None] = (
            list(batched(unique(symbols), self.batch_size)) if symbols else [None]
        )
        rows: list[Mapping[str, Any]] = []
        for batch in batches:
            params = {"symbols": ",".join(batch)} if batch else {}
            for data in self._pages(f"exchanges/{exchange_mic}/eod/{day.isoformat()}", params):
                rows.extend(_eod_rows(data))
        return json_bars(rows, FIELDS, source=self.name, exchange_mic=exchange_mic)

    def list_exchanges(self) -> list[dict[str, Any]]:
        """Exchanges as catalog rows; those without a four-letter MIC are left out."""
        out = []
        for data in self._pages("exchanges", {}):
            for e in data:
                mic = str(e.get("mic") or "").upper()
                if len(mic) != 4:
                    continue
                tz = e.get("timezone")
                cur = e.get("currency")
                out.append(
                    {
                        "mic": mic,
                        "name": (e.get("name") or mic)[:200],
                        "acronym": _short(e.get("acronym"), 32),
                        "country": _short(e.get("country"), 100),
                        "country_code": _short(e.get("country_code"), 2),
                        "city": _short(e.get("city"), 100),
                        "website": _short(e.get("website"), 200),
                        "timezone": tz.get("timezone") if isinstance(tz, dict) else tz,
                        "currency_code": cur.get("code") if isinstance(cur, dict) else cur,
                    }
                )
        return out

    def list_tickers(self, exchange_mic: str) -> list[dict[str, Any]]:
        """Tickers of one exchange (`/v2/tickerslist` or `/v1/tickers`, filtered by MIC)."""
        path = "tickerslist" if self.version == "v2" else "tickers"
        out = []
        for data in self._pages(path, {"exchange": exchange_mic}):
            for t in data:
                symbol = t.get("ticker") or t.get("symbol")
                if not symbol:
                    continue
                ex = t.get("stock_exchange") or {}
                if ex.get("mic") and ex["mic"] != exchange_mic:
                    continue
                out.append(
                    {
                        "exchange_mic": exchange_mic,
                        "symbol": str(symbol)[:32],
                        "name": _short(t.get("name"), 300),
                        "currency_code": None,
                    }
                )
        return out


def _split_row(r: Mapping[str, Any]) -> dict[str, Any]:
    """`{"date", "split_factor", "symbol"}`: the factor is new shares per old (2 for 2:1)."""
    return {
        "ticker": r.get("symbol"),
        "ex_date": r.get("date"),
        "kind": "split",
        "ratio": r.get("split_factor"),
    }


def _dividend_row(r: Mapping[str, Any]) -> dict[str, Any]:
    """`{"date", "dividend", "symbol", ...}`: cash per share on the ex-date `date`."""
    return {
        "ticker": r.get("symbol"),
        "ex_date": r.get("date"),
        "kind": "dividend",
        "amount": r.get("dividend"),
        "currency": r.get("currency"),
        "declared_date": r.get("declaration_date"),
    }


def _eod_rows(data: Any) -> list[Any]:
    if isinstance(data, dict):
        return list(data.get("eod") or [])
    return list(data or [])


def _len_rows(data: Any) -> int:
    if isinstance(data, dict):
        return len(data.get("eod") or data.get("tickers") or [])
    return len(data or [])


def _short(value: Any, size: int) -> str | None:
    return str(value)[:size] if value not in (None, "") else None
