"""Reference data: exchanges from exchange-calendars, currencies, and the sample tickers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from catalog._repo import upsert_currencies, upsert_exchanges, upsert_tickers

# Details exchange-calendars does not carry, for the exchanges users ask about most.
# mic: (acronym, country, country code, city, currency, name)
_DETAILS: dict[str, tuple[str, str, str, str, str, str]] = {
    "XNYS": ("NYSE", "United States", "US", "New York", "USD", "New York Stock Exchange"),
    "XNAS": ("NASDAQ", "United States", "US", "New York", "USD", "NASDAQ Stock Market"),
    "XASE": ("NYSE American", "United States", "US", "New York", "USD", "NYSE American"),
    "XTSE": ("TSX", "Canada", "CA", "Toronto", "CAD", "Toronto Stock Exchange"),
    "XLON": ("LSE", "United Kingdom", "GB", "London", "GBP", "London Stock Exchange"),
    "XPAR": ("Euronext Paris", "France", "FR", "Paris", "EUR", "Euronext Paris"),
    "XAMS": ("Euronext Amsterdam", "Netherlands", "NL", "Amsterdam", "EUR", "Euronext Amsterdam"),
    "XETR": ("XETRA", "Germany", "DE", "Frankfurt", "EUR", "Deutsche Börse Xetra"),
    "XFRA": ("FSX", "Germany", "DE", "Frankfurt", "EUR", "Frankfurt Stock Exchange"),
    "XSWX": ("SIX", "Switzerland", "CH", "Zurich", "CHF", "SIX Swiss Exchange"),
    "XMIL": ("Borsa Italiana", "Italy", "IT", "Milan", "EUR", "Borsa Italiana"),
    "XMAD": ("BME", "Spain", "ES", "Madrid", "EUR", "Bolsa de Madrid"),
    "XSTO": ("Nasdaq Stockholm", "Sweden", "SE", "Stockholm", "SEK", "Nasdaq Stockholm"),
    "XTKS": ("TSE", "Japan", "JP", "Tokyo", "JPY", "Tokyo Stock Exchange"),
    "XHKG": ("HKEX", "Hong Kong", "HK", "Hong Kong", "HKD", "Hong Kong Stock Exchange"),
    "XASX": ("ASX", "Australia", "AU", "Sydney", "AUD", "Australian Securities Exchange"),
    "XBOM": ("BSE", "India", "IN", "Mumbai", "INR", "Bombay Stock Exchange"),
    "XSHG": ("SSE", "China", "CN", "Shanghai", "CNY", "Shanghai Stock Exchange"),
    "XKRX": ("KRX", "South Korea", "KR", "Seoul", "KRW", "Korea Exchange"),
    "XJSE": ("JSE", "South Africa", "ZA", "Johannesburg", "ZAR", "Johannesburg Stock Exchange"),
}

_CURRENCIES: dict[str, tuple[str, str]] = {
    "USD": ("US Dollar", "$"),
    "CAD": ("Canadian Dollar", "CA$"),
    "GBP": ("Pound Sterling", "£"),
    "EUR": ("Euro", "€"),
    "CHF": ("Swiss Franc", "CHF"),
    "SEK": ("Swedish Krona", "kr"),
    "JPY": ("Japanese Yen", "¥"),
    "HKD": ("Hong Kong Dollar", "HK$"),
    "AUD": ("Australian Dollar", "A$"),
    "INR": ("Indian Rupee", "₹"),
    "CNY": ("Chinese Yuan", "¥"),
    "KRW": ("South Korean Won", "₩"),
    "ZAR": ("South African Rand", "R"),
}

#: The tickers whose histories ship in `stockdata/samples/`.
SAMPLE_TICKERS: tuple[dict[str, Any], ...] = (
    {
        "exchange_mic": "XNAS",
        "symbol": "MSFT",
        "name": "Microsoft Corporation",
        "currency_code": "USD",
    },
    {
        "exchange_mic": "XNAS",
        "symbol": "GOOG",
        "name": "Alphabet Inc. Class C",
        "currency_code": "USD",
    },
)


@dataclass(frozen=True, slots=True)
class SeedResult:
    currencies: int
    exchanges_inserted: int
    exchanges_updated: int
    tickers_inserted: int
    tickers_updated: int


def calendar_exchanges() -> list[dict[str, Any]]:
    """One row per ISO 10383 MIC that exchange-calendars knows, aliases such as XNAS included."""
    from exchange_calendars.calendar_utils import (
        _default_calendar_factories as factories,
    )
    from exchange_calendars.calendar_utils import (
        global_calendar_dispatcher as dispatcher,
    )

    codes = {c: c for c in factories} | {a: t for a, t in dispatcher._aliases.items()}
    rows = []
    for mic, calendar_code in sorted(codes.items()):
        if not re.fullmatch(r"X[A-Z]{3}", mic):
            continue
        cls = factories[calendar_code]
        doc = (cls.__doc__ or "").strip()
        found = re.search(r"calendar for (?:the )?(.+?)\s*\(", doc)
        acronym, country, cc, city, currency, name = _DETAILS.get(mic, (None,) * 6)
        rows.append(
            {
                "mic": mic,
                "name": name or (found.group(1) if found else mic),
                "acronym": acronym,
                "country": country,
                "country_code": cc,
                "city": city,
                "timezone": str(cls.tz),
                "currency_code": currency,
                "calendar_code": calendar_code,
            }
        )
    return rows


def seed_reference(session: Session, *, sample_tickers: bool = True) -> SeedResult:
    """Upsert currencies, exchanges and optionally the sample tickers; idempotent."""
    currencies = upsert_currencies(
        session, [{"code": c, "name": n, "symbol": s} for c, (n, s) in _CURRENCIES.items()]
    )
    exchanges = upsert_exchanges(session, calendar_exchanges())
    tickers = upsert_tickers(session, list(SAMPLE_TICKERS) if sample_tickers else [])
    return SeedResult(
        currencies=currencies.inserted,
        exchanges_inserted=exchanges.inserted,
        exchanges_updated=exchanges.updated,
        tickers_inserted=tickers.inserted,
        tickers_updated=tickers.updated,
    )
