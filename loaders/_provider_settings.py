"""`ProviderSettings`: where each market-data provider lives, its key, and how hard to retry."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr

from stockdata.config import StockdataSettings
from stockdata.errors import ConfigurationError


class ProviderSettings(StockdataSettings):
    """Settings of the HTTP providers (env prefix `STOCKDATA_`); keys are `SecretStr`."""

    marketstack_base_url: str = Field(
        default="https://api.marketstack.com/v2",
        description="Marketstack API root. A trailing /v1 or /v2 is replaced by "
        "STOCKDATA_MARKETSTACK_VERSION.",
    )
    marketstack_api_key: SecretStr | None = Field(
        default=None, description="Marketstack access key (sent as the access_key parameter)."
    )
    marketstack_version: Literal["v2", "v1"] = Field(
        default="v2", description="Marketstack API version: v2 (current) or v1 (legacy)."
    )
    tiingo_base_url: str = Field(
        default="https://api.tiingo.com", description="Tiingo API root (without /tiingo/daily)."
    )
    tiingo_api_key: SecretStr | None = Field(
        default=None, description="Tiingo token (sent in the Authorization header)."
    )
    eodhd_base_url: str = Field(
        default="https://eodhd.com/api", description="EODHD API root (ends with /api)."
    )
    eodhd_api_key: SecretStr | None = Field(
        default=None, description="EODHD API token (sent as the api_token parameter)."
    )
    provider_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Timeout of one HTTP request: connecting, each read, and the whole answer "
        "(a trickled body is abandoned once it passes).",
    )
    provider_max_retries: int = Field(
        default=5, ge=0, description="Retries of one request after a transient failure."
    )
    provider_backoff_base_seconds: float = Field(
        default=0.5, ge=0, description="First backoff step; doubles per retry, full jitter."
    )
    provider_backoff_max_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Longest wait between retries; a longer Retry-After is handed to the "
        "caller as a TransientError so the queue can redeliver later.",
    )
    provider_page_size: int = Field(
        default=1000, ge=1, le=1000, description="Rows per page (Marketstack `limit`, max 1000)."
    )
    provider_batch_size: int = Field(
        default=100, ge=1, le=100, description="Symbols per request (Marketstack allows 100)."
    )

    def marketstack_url(self) -> str:
        """The Marketstack root for the configured version."""
        root = re.sub(r"/v[12]/?$", "", self.marketstack_base_url.rstrip("/"))
        return f"{root}/{self.marketstack_version}"

    def api_key(self, provider: Literal["marketstack", "tiingo", "eodhd"]) -> str:
        """The provider's key, refused when missing (or a shipped default in prod)."""
        name = f"{provider}_api_key"
        value: SecretStr | None = getattr(self, name)
        self.require_real_secret(name, value)
        if value is None or not value.get_secret_value():
            raise ConfigurationError(
                f"STOCKDATA_{name.upper()} is not set: get a key from {provider} and export it"
            )
        return value.get_secret_value()
