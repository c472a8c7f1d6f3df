"""EODHD: daily prices from `/api/eod/{SYMBOL}.{EXCHANGE}`, exchanges and their symbol lists."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from loaders._http import HttpClient, Reply
from loaders._provider_settings import ProviderSettings
from loaders.providers._actions import action_rows, not_in_plan, plan_refused, split_ratio
from loaders.providers._arrow import empty_bars, json_bars, unique
from loaders.providers._base import register
from stockdata.errors import CredentialError, InvalidInputError, PermanentError, TransientError
from stockdata.logs import get_logger

log = get_logger(__name__)

#: ISO 10383 MIC -> EODHD exchange code (the ticker suffix, `MSFT.US`, `VOD.LSE`).
EODHD_EXCHANGE_CODES: dict[str, str] = {
    "XNAS": "US",
    "XNYS": "US",
    "XASE": "US",
    "ARCX": "US",
    "BATS": "US",
    "XLON": "LSE",
    "XETR": "XETRA",
    "XFRA": "F",
    "XPAR": "PA",
    "XAMS": "AS",
    "XBRU": "BR",
    "XLIS": "LS",
    "XMIL": "MI",
    "XMAD": "MC",
    "XSWX": "SW",
    "XSTO": "ST",
    "XCSE": "CO",
    "XHEL": "HE",
    "XOSL": "OL",
    "XWBO": "VI",
    "XDUB": "IR",
    "XTSE": "TO",
    "XTSX": "V",
    "XASX": "AU",
    "XHKG": "HK",
    "XTKS": "TSE",
    "XKRX": "KO",
    "XSHG": "SHG",
    "XSHE": "SHE",
    "XBOM": "BSE",
    "XNSE": "NSE",
    "XJSE": "JSE",
}

#: EODHD's `Exchange` field in the US symbol list -> MIC.
_US_VENUES = {
    "NASDAQ": "XNAS",
    "NYSE": "XNYS",
    "NYSE MKT": "XASE",
    "NYSE ARCA": "ARCX",
    "BATS": "BATS",
    "AMEX": "XASE",
}


def check_eodhd(reply: Reply) -> None:
    """Map EODHD's errors: 401 bad token, 402 daily quota, 404 unknown ticker, 429 rate limit."""
    status = reply.status
    if status < 400 and not (isinstance(reply.payload, dict) and "error" in reply.payload):
        return
    detail = (
        reply.payload.get("message") or reply.payload.get("error")
        if isinstance(reply.payload, dict)
        else reply.text.strip()[:200]
    )
    text = f"eodhd: HTTP {status}: {detail}"
    if status == 429 or status >= 500:
        raise TransientError(text, code="rate_limit" if status == 429 else "server_error")
    code = {401: "unauthenticated", 402: "payment_required", 403: "forbidden", 404: "not_found"}
    if status in (401, 402, 403):  # the token or its quota, not the job
        raise CredentialError(text, code=code[status], provider="eodhd", status=status)
    raise PermanentError(
        text, code=code.get(status, "eodhd_error"), provider="eodhd", status=status
    )


def eodhd_symbol(symbol: str, exchange_mic: str, *, exchange_code: str | None = None) -> str:
    """`MSFT` on XNAS -> `MSFT.US`; share-class dots become dashes (`BRK-B.US`)."""
    code = exchange_code or EODHD_EXCHANGE_CODES.get(exchange_mic.upper())
    if code is None:
        raise InvalidInputError(
            f"eodhd: no exchange code known for MIC {exchange_mic}: pass exchange_code=..."
        )
    return f"{symbol.replace('.', '-')}.{code}"


#: BAR_SCHEMA column -> EODHD EoD field.
FIELDS: dict[str, str] = {
    "trade_date": "date",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
    "adj_close": "adjusted_close",
}


@register("eodhd")
class EodhdProvider:
    """EODHD end-of-day prices; the `api_token` query parameter is scrubbed from every log."""

    name = "eodhd"
    #: a per-symbol endpoint: 100 calls per job
    max_symbols_per_job = 100
    #: `/eod` bars carry no actions: bar jobs also call `/splits` and `/div`.
    actions_on_bars = False

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        client: HttpClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
        exchange_code: str | None = None,
    ) -> None:
        self._key = settings.api_key("eodhd")
        self.base_url = settings.eodhd_base_url.rstrip("/")
        self.exchange_code = exchange_code
        self.http = client or HttpClient.for_settings(
            self.name, settings, check=check_eodhd, secrets=[self._key], sleep=sleep
        )

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        query = {**(params or {}), "api_token": self._key, "fmt": "json"}
        payload = self.http.get_json(f"{self.base_url}/{path}", params=query)
        if not isinstance(payload, list):
            raise TransientError(f"eodhd: answer to /{path} is not a list", code="invalid-body")
        return payload

    def fetch_bars(
        self,
        symbols: Sequence[str],
        *,
        exchange_mic: str,
        date_from: dt.date,
        date_to: dt.date,
    ) -> pa.Table:
        """One request per ticker: `/eod/{SYMBOL}.{CODE}?from&to&period=d`."""
        tables: list[pa.Table] = []
        for symbol in unique(symbols):
            code = eodhd_symbol(symbol, exchange_mic, exchange_code=self.exchange_code)
            payload = self._get(
                f"eod/{code}",
                {"from": date_from.isoformat(), "to": date_to.isoformat(), "period": "d"},
            )
            tables.append(
                json_bars(
                    payload, FIELDS, source=self.name, exchange_mic=exchange_mic, ticker=symbol
                )
            )
        table = pa.concat_tables(tables) if tables else empty_bars()
        log.info("provider_fetched", provider=self.name, symbols=len(symbols), rows=table.num_rows)
        return table

    def fetch_actions(
        self,
        symbols: Sequence[str],
        *,
        exchange_mic: str,
        date_from: dt.date,
        date_to: dt.date,
    ) -> pa.Table:
        """Two requests per ticker: `/splits/{SYMBOL}.{CODE}` (`"4.000000/1.000000"`) and
        `/div/{SYMBOL}.{CODE}`, whose `unadjustedValue` is the cash paid (its `value` is
        split-adjusted by EODHD; ours is computed from the splits, so the paid amount is kept).

        A plan without these endpoints (403) fails the job with `actions-not-in-plan`."""
        rows: list[dict[str, Any]] = []
        span = {"from": date_from.isoformat(), "to": date_to.isoformat()}
        try:
            for symbol in unique(symbols):
                code = eodhd_symbol(symbol, exchange_mic, exchange_code=self.exchange_code)
                for r in self._get(f"splits/{code}", span):
                    rows.append(
                        {
                            "ticker": symbol,
                            "ex_date": r.get("date"),
                            "kind": "split",
                            "ratio": split_ratio(r.get("split")),
                        }
                    )
                for r in self._get(f"div/{code}", span):
                    paid = r.get("unadjustedValue")
                    rows.append(
                        {
                            "ticker": symbol,
                            "ex_date": r.get("date"),
                            "kind": "dividend",
                            "amount": r.get("value") if paid is None else paid,
                            "currency": r.get("currency"),
                            "declared_date": r.get("declarationDate"),
                        }
                    )
        except CredentialError as exc:
            if not_in_plan(exc):
                raise plan_refused(self.name, exc) from exc
            raise
        log.info(
            "provider_fetched_actions", provider=self.name, symbols=len(symbols), rows=len(rows)
        )
        return action_rows(rows, source=self.name, exchange_mic=exchange_mic)

    def list_exchanges(self) -> list[dict[str, Any]]:
        """One catalog row per operating MIC of each EODHD exchange (no timezone given)."""
        out = []
        for e in self._get("exchanges-list/"):
            mics = [m.strip().upper() for m in str(e.get("OperatingMIC") or "").split(",")]
            for mic in mics:
                if len(mic) != 4:
                    continue
                out.append(
                    {
                        "mic": mic,
                        "name": str(e.get("Name") or mic)[:200],
                        "acronym": str(e.get("Code"))[:32] if e.get("Code") else None,
                        "country": e.get("Country"),
                        "country_code": e.get("CountryISO2") or None,
                        "city": None,
                        "website": None,
                        "timezone": None,
                        "currency_code": e.get("Currency") or None,
                    }
                )
        return out

    def list_tickers(self, exchange_mic: str) -> list[dict[str, Any]]:
        """Symbols of one exchange; on the shared `US` list only those of this venue."""
        code = self.exchange_code or EODHD_EXCHANGE_CODES.get(exchange_mic.upper())
        if code is None:
            raise InvalidInputError(f"eodhd: no exchange code known for MIC {exchange_mic}")
        out = []
        for t in self._get(f"exchange-symbol-list/{code}"):
            symbol = t.get("Code")
            if not symbol:
                continue
            venue = _US_VENUES.get(str(t.get("Exchange") or "").upper())
            if code == "US" and venue != exchange_mic.upper():
                continue
            out.append(
                {
                    "exchange_mic": exchange_mic,
                    "symbol": str(symbol)[:32],
                    "name": str(t["Name"])[:300] if t.get("Name") else None,
                    "currency_code": t.get("Currency") or None,
                }
            )
        return out
