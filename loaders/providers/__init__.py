"""Market-data providers behind one interface, registered by name (`get_provider("marketstack")`)."""

from loaders._catalog_sync import CatalogSyncResult, sync_catalog
from loaders._http import HttpClient, Reply, RetryPolicy, parse_retry_after
from loaders._provider_settings import ProviderSettings
from loaders.providers._actions import ActionSource, split_ratio
from loaders.providers._base import (
    DEFAULT_MAX_SYMBOLS_PER_JOB,
    Provider,
    get_provider,
    max_symbols_per_job,
    provider_names,
    register,
)
from loaders.providers._eodhd import EODHD_EXCHANGE_CODES, EodhdProvider, eodhd_symbol
from loaders.providers._file import FileProvider, normalise_column, to_actions, to_bars
from loaders.providers._marketstack import MarketstackProvider, check_marketstack
from loaders.providers._synthetic import SyntheticProvider
from loaders.providers._tiingo import TiingoProvider, tiingo_symbol

__all__ = [
    "DEFAULT_MAX_SYMBOLS_PER_JOB",
    "EODHD_EXCHANGE_CODES",
    "ActionSource",
    "CatalogSyncResult",
    "EodhdProvider",
    "FileProvider",
    "HttpClient",
    "MarketstackProvider",
    "Provider",
    "ProviderSettings",
    "Reply",
    "RetryPolicy",
    "SyntheticProvider",
    "TiingoProvider",
    "check_marketstack",
    "eodhd_symbol",
    "get_provider",
    "max_symbols_per_job",
    "normalise_column",
    "parse_retry_after",
    "provider_names",
    "register",
    "split_ratio",
    "sync_catalog",
    "tiingo_symbol",
    "to_actions",
    "to_bars",
]
