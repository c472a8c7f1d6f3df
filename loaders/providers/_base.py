"""The provider interface and the registry of providers by name."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from stockdata.errors import ConfigurationError


@runtime_checkable
class Provider(Protocol):
    """A source of daily bars.

    `fetch_bars` returns an Arrow table whose columns are a subset of `lake.BAR_SCHEMA`
    (ticker, exchange_mic, trade_date, open, high, low, close, volume required; adjusted
    fields, split_factor, dividend, currency, source optional). It does not validate rows:
    the lake's validation decides what is written and what is rejected. It raises
    `TransientError` for what may succeed later (timeouts, 429, 5xx) and `PermanentError`
    (with the provider's error code as `code`) for what cannot.
    """

    name: str
    #: The most symbols one queued job may carry for this provider (an API's per-call cap,
    #: or what keeps a job's memory and message size sensible). Backfills default to it.
    max_symbols_per_job: int

    def fetch_bars(
        self,
        symbols: Sequence[str],
        *,
        exchange_mic: str,
        date_from: dt.date,
        date_to: dt.date,
    ) -> pa.Table: ...

    def list_exchanges(self) -> list[dict[str, Any]]:
        """Exchanges as catalog rows (mic, name, acronym, country, country_code, city, timezone,
        currency_code)."""
        ...

    def list_tickers(self, exchange_mic: str) -> list[dict[str, Any]]:
        """Tickers of one exchange as catalog rows (exchange_mic, symbol, name, currency_code)."""
        ...


ProviderFactory = Callable[..., Provider]
_REGISTRY: dict[str, ProviderFactory] = {}


def register(name: str) -> Callable[[ProviderFactory], ProviderFactory]:
    """Class decorator: make a provider available by `name`."""

    def wrap(factory: ProviderFactory) -> ProviderFactory:
        _REGISTRY[name] = factory
        return factory

    return wrap


def provider_names() -> list[str]:
    return sorted(_REGISTRY)


#: What a provider that does not declare `max_symbols_per_job` may carry per job.
DEFAULT_MAX_SYMBOLS_PER_JOB = 100


def max_symbols_per_job(name: str) -> int:
    """The `max_symbols_per_job` the provider registered as `name` declares (no instance
    is built, so no settings or credentials are needed)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown provider {name!r}: choose one of {', '.join(provider_names())}"
        ) from None
    return int(getattr(factory, "max_symbols_per_job", DEFAULT_MAX_SYMBOLS_PER_JOB))


def get_provider(name: str, settings: Any, **options: Any) -> Provider:
    """Build the provider registered as `name` from `ProviderSettings` (and per-call options)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown provider {name!r}: choose one of {', '.join(provider_names())}"
        ) from None
    return factory(settings, **options)
