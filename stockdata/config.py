"""The settings base every concern's settings class derives from.

Each part owns its own settings class (`catalog.DatabaseSettings`, `lake.LakeSettings`,
`loaders.QueueSettings`, `loaders.ProviderSettings`, `query_api.ApiSettings`); they share
the `STOCKDATA_` prefix, the `home` directory and the profile guard defined here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stockdata.errors import ConfigurationError

Profile = Literal["embedded", "dev", "test", "prod"]


def _string_list(value: object) -> object:
    """A list setting as the environment gives it: a JSON list, or comma-separated values
    (`a.example,b.example`; one value needs no brackets or quotes)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(",") if part.strip()]


#: A list of strings read from one environment variable: JSON or comma-separated.
StrList = Annotated[list[str], NoDecode, BeforeValidator(_string_list)]

#: Secrets that ship in this repository for the embedded profile; refused anywhere else.
DEV_DEFAULT_SECRETS = frozenset(
    {
        "",
        "devstoreaccount1",
        "stockdata-dev",
        # Azurite's published development account key.
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    }
)


class StockdataSettings(BaseSettings):
    """Fields every settings class has: where embedded state lives and which profile runs."""

    model_config = SettingsConfigDict(
        env_prefix="STOCKDATA_", extra="ignore", frozen=True, validate_default=True
    )

    def __init__(self, **values: Any) -> None:
        # Environment variables of other settings classes share the prefix and are ignored;
        # a keyword argument is code, and a misspelt or renamed one is a bug, not a default
        # (`api_hot_index=False` once silently made every export build a serving form).
        unknown = sorted(
            k for k in values if not k.startswith("_") and k not in type(self).model_fields
        )
        if unknown:
            raise TypeError(f"{type(self).__name__} has no setting(s) {', '.join(unknown)}")
        super().__init__(**values)

    home: Path = Field(
        default=Path(".stockdata"),
        description="Directory for embedded state: the Postgres data directory, the local lake.",
    )
    profile: Profile = Field(
        default="embedded",
        description="embedded/dev/test allow the shipped development defaults; prod refuses them.",
    )

    def require_real_secret(self, name: str, value: SecretStr | None) -> None:
        """Refuse a missing or shipped-default secret outside the embedded/dev/test profiles."""
        if self.profile != "prod":
            return
        if value is None or value.get_secret_value() in DEV_DEFAULT_SECRETS:
            raise ConfigurationError(
                f"STOCKDATA_{name.upper()} must be set to a real secret when STOCKDATA_PROFILE=prod"
            )
