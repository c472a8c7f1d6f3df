"""The synthetic provider: the lake's deterministic generator behind the provider interface."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from loaders._provider_settings import ProviderSettings
from loaders.providers._actions import ActionsOnBars
from loaders.providers._base import register


@register("synthetic")
class SyntheticProvider(ActionsOnBars):
    """Bars from `lake.synthetic_bars` on every session of the exchange; no network.

    Options: `seed` (default 0), `tickers` (what `list_tickers` reports, e.g. for seeding).
    """

    name = "synthetic"
    #: measured in bench/run_loaders.py (500/1000/2500)
    max_symbols_per_job = 2500

    def __init__(
        self,
        settings: ProviderSettings | None = None,
        *,
        seed: int = 0,
        tickers: Sequence[str] = (),
    ) -> None:
        self.seed = seed
        self.tickers = [t.upper() for t in tickers]

    def fetch_bars(
        self,
        symbols: Sequence[str],
        *,
        exchange_mic: str,
        date_from: dt.date,
        date_to: dt.date,
    ) -> pa.Table:
        from lake import synthetic_bars

        table: pa.Table = synthetic_bars(
            list(symbols),
            exchange_mic=exchange_mic,
            date_from=date_from,
            date_to=date_to,
            seed=self.seed,
            source=self.name,
        )
        return table

    def list_exchanges(self) -> list[dict[str, Any]]:
        return []

    def list_tickers(self, exchange_mic: str) -> list[dict[str, Any]]:
        return [
            {"exchange_mic": exchange_mic, "symbol": t, "name": None, "currency_code": None}
            for t in self.tickers
        ]
