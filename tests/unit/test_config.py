"""Settings: the profile guard refuses development defaults in production."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from catalog import DatabaseSettings, database_url
from stockdata.config import StockdataSettings
from stockdata.errors import ConfigurationError

AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@pytest.mark.parametrize("value", [None, "", "devstoreaccount1", AZURITE_KEY])
def test_prod_refuses_missing_or_shipped_secrets(value: str | None) -> None:
    settings = StockdataSettings(profile="prod")
    secret = None if value is None else SecretStr(value)
    with pytest.raises(ConfigurationError) as err:
        settings.require_real_secret("marketstack_api_key", secret)
    assert str(err.value) == (
        "STOCKDATA_MARKETSTACK_API_KEY must be set to a real secret when STOCKDATA_PROFILE=prod"
    )


def test_prod_accepts_a_real_secret_and_dev_accepts_anything() -> None:
    StockdataSettings(profile="prod").require_real_secret("k", SecretStr("a-real-one"))
    StockdataSettings(profile="embedded").require_real_secret("k", None)


def test_prod_refuses_the_embedded_database() -> None:
    with pytest.raises(ConfigurationError, match="STOCKDATA_DATABASE_URL must point at a managed"):
        database_url(DatabaseSettings(profile="prod"))


def test_database_url_is_normalised_to_psycopg_and_keeps_sslmode() -> None:
    settings = DatabaseSettings(
        database_url=SecretStr("postgresql://app:pw@db.example.org:5432/stockdata?sslmode=require")
    )
    assert database_url(settings) == (
        "postgresql+psycopg://app:pw@db.example.org:5432/stockdata?sslmode=require"
    )


def test_env_prefix_and_malformed_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKDATA_DATABASE_POOL_SIZE", "7")
    assert DatabaseSettings().database_pool_size == 7
    monkeypatch.setenv("STOCKDATA_DATABASE_POOL_SIZE", "0")
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        DatabaseSettings()


def test_a_misspelt_setting_in_code_is_an_error_not_a_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from query_api import ApiSettings

    with pytest.raises(TypeError, match=r"^ApiSettings has no setting\(s\) api_hot_index$"):
        ApiSettings(api_hot_index=False)
    # other classes' variables share the prefix: the environment stays forgiving
    monkeypatch.setenv("STOCKDATA_QUEUE_NAME", "elsewhere")
    assert ApiSettings(api_serving=False).api_serving is False
