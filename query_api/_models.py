"""Response and request bodies: msgspec Structs (they are the OpenAPI schemas too)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec


class Pagination(msgspec.Struct, frozen=True):
    """Where this page sits: `next_offset` is null on the last page."""

    limit: int
    offset: int
    total: int
    next_offset: int | None


class Exchange(msgspec.Struct, frozen=True):
    mic: str
    name: str
    acronym: str | None
    country: str | None
    country_code: str | None
    city: str | None
    timezone: str
    currency: str | None
    website: str | None
    active: bool


class ExchangeList(msgspec.Struct, frozen=True):
    data: list[Exchange]


class Ticker(msgspec.Struct, frozen=True):
    symbol: str
    exchange_mic: str
    name: str | None
    currency: str | None
    active: bool
    first_ingested: dt.date | None
    last_ingested: dt.date | None


class TickerPage(msgspec.Struct, frozen=True):
    data: list[Ticker]
    pagination: Pagination


class Bar(msgspec.Struct, frozen=True):
    """One end-of-day bar: as traded, or adjusted on the page's `adjust` basis."""

    ticker: str
    exchange_mic: str
    date: dt.date
    open: float
    high: float
    low: float
    close: float
    volume: int
    split_factor: float | None
    dividend: float | None
    currency: str | None
    source: str | None


class BarPage(msgspec.Struct, frozen=True):
    data: list[Bar]
    pagination: Pagination
    adjusted: bool
    lake_version: int | None
    adjust: Literal["none", "splits", "all"] = "none"
    adjust_as_of: dt.date | None = None


class LatestBar(msgspec.Struct, frozen=True):
    data: Bar
    adjusted: bool
    lake_version: int | None
    adjust: Literal["none", "splits", "all"] = "none"
    adjust_as_of: dt.date | None = None


class Delta(msgspec.Struct, frozen=True):
    """Change over `days` sessions ending at `end_date`; null start with a `reason` if too short."""

    ticker: str
    exchange_mic: str
    days: int
    start_date: dt.date | None
    start_close: float | None
    end_date: dt.date
    end_close: float
    change: float | None
    pct_change: float | None
    reason: str | None = None


class DeltaResponse(msgspec.Struct, frozen=True):
    data: Delta
    adjusted: bool
    lake_version: int | None
    adjust: Literal["none", "splits", "all"] = "none"
    adjust_as_of: dt.date | None = None


class DeltaSeries(msgspec.Struct, frozen=True):
    data: list[Delta]
    pagination: Pagination
    adjusted: bool
    lake_version: int | None
    adjust: Literal["none", "splits", "all"] = "none"
    adjust_as_of: dt.date | None = None


class Mover(msgspec.Struct, frozen=True):
    rank: int
    ticker: str
    exchange_mic: str
    start_date: dt.date
    start_close: float
    end_date: dt.date
    end_close: float
    change: float
    pct_change: float


class MoversResponse(msgspec.Struct, frozen=True):
    date: dt.date
    days: int
    order: Literal["gainers", "losers"]
    exchange_mic: str | None
    adjusted: bool
    data: list[Mover]
    lake_version: int | None
    adjust: Literal["none", "splits", "all"] = "splits"
    adjust_as_of: dt.date | None = None


class Action(msgspec.Struct, frozen=True):
    """One corporate action and the factor it puts on earlier prices (docs/lake.md)."""

    ticker: str
    exchange_mic: str
    ex_date: dt.date
    kind: Literal["split", "stock_dividend", "dividend", "symbol_change"]
    ratio: float | None
    amount: float | None
    currency: str | None
    new_symbol: str | None
    declared_date: dt.date | None
    source: str | None
    #: The as-traded close of the last bar before the ex-date (a dividend's base).
    prev_close: float | None
    #: What earlier prices are multiplied by under `adjust=all` (`splits`: split kinds only).
    price_factor: float
    volume_factor: float


class ActionList(msgspec.Struct, frozen=True):
    data: list[Action]
    lake_version: int | None
    actions_version: int | None


class SqlRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One SELECT or WITH statement over the lake views (eod, eod_deltas, eod_rejects,
    corporate_actions, action_factors, eod_split_adjusted, eod_adjusted)."""

    sql: Annotated[str, msgspec.Meta(min_length=1, description="The query text.")]
    limit: (
        Annotated[int, msgspec.Meta(ge=1, description="Rows at most (capped by SQL_MAX_ROWS).")]
        | None
    ) = None


class SqlColumn(msgspec.Struct, frozen=True):
    name: str
    type: str


class SqlResponse(msgspec.Struct, frozen=True):
    columns: list[SqlColumn]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    elapsed_ms: float


class Check(msgspec.Struct, frozen=True, omit_defaults=True):
    status: Literal["up", "down"]
    detail: str | None = None


class Health(msgspec.Struct, frozen=True):
    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, Check]
    lake_version: int | None = None
    #: Which engine answers reads of the current version: `serving` or `duckdb`.
    engine: str | None = None


class Live(msgspec.Struct, frozen=True):
    status: Literal["ok"]


class Hello(msgspec.Struct, frozen=True):
    """The trivial route (the framework floor in benchmarks)."""

    name: str
    version: str
