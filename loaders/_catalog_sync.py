"""Exchanges and tickers from a provider's list endpoints into the catalog, idempotently."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

import catalog
from loaders.providers._base import Provider
from stockdata.logs import get_logger

log = get_logger(__name__)

_EXCHANGE_COLUMNS = (
    "mic",
    "name",
    "acronym",
    "country",
    "country_code",
    "city",
    "timezone",
    "currency_code",
    "website",
)
_TICKER_COLUMNS = ("exchange_mic", "symbol", "name", "currency_code")
_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class CatalogSyncResult:
    """What one sync changed: a second run against the same provider data changes nothing."""

    provider: str
    currencies_inserted: int
    exchanges_inserted: int
    exchanges_updated: int
    exchanges_skipped: int
    tickers_inserted: int
    tickers_updated: int

    def __str__(self) -> str:
        return (
            f"{self.provider}: exchanges: {self.exchanges_inserted} new, "
            f"{self.exchanges_updated} changed, {self.exchanges_skipped} skipped; "
            f"tickers: {self.tickers_inserted} new, {self.tickers_updated} changed; "
            f"currencies: {self.currencies_inserted} new"
        )


def _clean(row: dict[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """Known columns with a value: what the provider does not say is left as it is."""
    return {k: row[k] for k in columns if row.get(k) not in (None, "")}


def _grouped(rows: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by their key set (one multi-row INSERT needs the same columns)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return [g[i : i + _CHUNK] for g in groups.values() for i in range(0, len(g), _CHUNK)]


def _ensure_currencies(session: Session, codes: Iterable[str | None]) -> int:
    wanted = {c for c in codes if c and len(c) == 3}
    if not wanted:
        return 0
    have = set(
        session.scalars(sa.select(catalog.Currency.code).where(catalog.Currency.code.in_(wanted)))
    )
    missing = sorted(wanted - have)
    catalog.upsert_currencies(session, [{"code": c, "name": c} for c in missing])
    return len(missing)


def sync_catalog(
    session: Session, provider: Provider, *, exchanges: Sequence[str] | None = None
) -> CatalogSyncResult:
    """Upsert the provider's exchanges (all, or those in `exchanges`) and their tickers.

    Fields the provider leaves empty keep their catalog value (a calendar-seeded exchange
    keeps its timezone and calendar); an exchange new to the catalog without a timezone is
    skipped, since the controller cannot schedule it.
    """
    wanted = {m.upper() for m in exchanges} if exchanges else None
    known = {e.mic: e for e in catalog.list_exchanges(session)}
    by_mic: dict[str, dict[str, Any]] = {}
    skipped = 0
    for row in provider.list_exchanges():
        clean = _clean(row, _EXCHANGE_COLUMNS)
        mic = str(clean.get("mic", "")).upper()
        if wanted is not None and mic not in wanted:
            continue
        if "currency_code" in clean and len(str(clean["currency_code"])) != 3:
            del clean["currency_code"]
        if "timezone" not in clean:
            if mic not in known:
                skipped += 1
                log.warning("catalog_sync_skipped_exchange", mic=mic, reason="no timezone")
                continue
            # Postgres checks NOT NULL on the proposed row before ON CONFLICT: restate it.
            clean["timezone"] = known[mic].timezone
        by_mic[mic] = {**clean, "mic": mic}
    currencies = _ensure_currencies(session, (r.get("currency_code") for r in by_mic.values()))
    ex_inserted = ex_updated = 0
    for group in _grouped(by_mic.values()):
        result = catalog.upsert_exchanges(session, group)
        ex_inserted += result.inserted
        ex_updated += result.updated

    currency_of = {mic: r.get("currency_code") for mic, r in by_mic.items()}
    for mic, ex in known.items():
        currency_of.setdefault(mic, ex.currency_code)
    tickers: dict[tuple[str, str], dict[str, Any]] = {}
    for mic in sorted(by_mic):
        for row in provider.list_tickers(mic):
            clean = _clean({**row, "exchange_mic": mic}, _TICKER_COLUMNS)
            if "symbol" not in clean:
                continue
            currency = clean.get("currency_code") or currency_of.get(mic)
            if currency and len(str(currency)) == 3:
                clean["currency_code"] = currency
            else:
                clean.pop("currency_code", None)
            tickers[(mic, clean["symbol"])] = clean
    currencies += _ensure_currencies(session, (r.get("currency_code") for r in tickers.values()))
    tk_inserted = tk_updated = 0
    for group in _grouped(tickers.values()):
        result = catalog.upsert_tickers(session, group)
        tk_inserted += result.inserted
        tk_updated += result.updated
    outcome = CatalogSyncResult(
        provider=provider.name,
        currencies_inserted=currencies,
        exchanges_inserted=ex_inserted,
        exchanges_updated=ex_updated,
        exchanges_skipped=skipped,
        tickers_inserted=tk_inserted,
        tickers_updated=tk_updated,
    )
    log.info("catalog_synced", **dataclasses.asdict(outcome))
    return outcome
