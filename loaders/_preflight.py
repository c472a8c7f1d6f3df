"""Checks a worker or the controller makes before taking work: a broken process refuses to
start instead of failing good jobs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from sqlalchemy.engine import Engine

import catalog
import lake
from loaders._provider_settings import ProviderSettings
from loaders.providers._base import max_symbols_per_job

#: Providers that need a key, and the name `ProviderSettings.api_key` knows it by.
_KEYED: dict[str, Literal["marketstack", "tiingo", "eodhd"]] = {
    "marketstack": "marketstack",
    "tiingo": "tiingo",
    "eodhd": "eodhd",
}


def check_providers(settings: ProviderSettings, providers: Iterable[str]) -> None:
    """Each provider is known and, where it needs one, has a key (`ConfigurationError`)."""
    for name in sorted(set(providers)):
        max_symbols_per_job(name)  # unknown provider
        if name in _KEYED:
            settings.api_key(_KEYED[name])


def served_providers(engine: Engine, configured: Iterable[str] = ()) -> list[str]:
    """The providers a worker serves: those asked for, else those of queued or running jobs."""
    chosen = sorted(set(configured))
    if chosen:
        return chosen
    with catalog.session_scope(engine) as session:
        return catalog.pending_providers(session)


def check_controller_ready(
    engine: Engine, provider_settings: ProviderSettings, providers: Iterable[str]
) -> None:
    """Before enqueueing: the catalog is at this code's revision and the provider is usable."""
    catalog.check_revision(engine)
    check_providers(provider_settings, providers)


def check_worker_ready(
    engine: Engine,
    lake_settings: lake.LakeSettings,
    provider_settings: ProviderSettings,
    providers: Iterable[str],
) -> None:
    """Before receiving: catalog revision, lake access and the served providers' keys.

    Raises `ConfigurationError` with a one-line reason; the CLI prints it and exits 1."""
    catalog.check_revision(engine)
    lake.check_access(lake_settings)
    check_providers(provider_settings, providers)


__all__ = [
    "check_controller_ready",
    "check_providers",
    "check_worker_ready",
    "served_providers",
]
