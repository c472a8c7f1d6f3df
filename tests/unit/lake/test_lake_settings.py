"""LakeSettings: one object gives deltalake's storage options and DuckDB's secret."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import SecretStr

import lake
from lake._write import period_of
from stockdata.errors import ConfigurationError

KEY = "c2VjcmV0LWtleQ=="
CONN = (
    "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey="
    + KEY
    + ";BlobEndpoint=http://127.0.0.1:10000/acct;"
)


def test_local_lake_needs_no_options(tmp_path: Path) -> None:
    s = lake.LakeSettings(lake_uri=str(tmp_path / "l"))
    assert (s.is_azure, s.storage_options(), s.duckdb_secret_sql()) == (False, {}, None)
    assert s.table_uri("eod_prices") == f"{tmp_path}/l/eod_prices"


def test_connection_string_gives_both_readers_the_same_account() -> None:
    s = lake.LakeSettings(lake_uri="az://c/lake", lake_azure_connection_string=SecretStr(CONN))
    assert s.storage_options() == {
        "account_name": "acct",
        "account_key": KEY,
        "azure_endpoint": "http://127.0.0.1:10000/acct",
        "allow_http": "true",
    }
    assert s.duckdb_secret_sql() == (
        "CREATE OR REPLACE SECRET stockdata_lake (TYPE azure, CONNECTION_STRING "
        f"'DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={KEY};"
        "BlobEndpoint=http://127.0.0.1:10000/acct')"
    )
    assert s.emulator_blob_url() == "http://127.0.0.1:10000"


def test_sas_and_azure_ad() -> None:
    sas = lake.LakeSettings(
        lake_uri="abfss://c@acct.dfs.core.windows.net/lake",
        lake_azure_sas_token=SecretStr("?sv=1&sig=abc"),
    )
    assert sas.storage_options() == {"account_name": "acct", "sas_token": "sv=1&sig=abc"}
    ad = lake.LakeSettings(
        lake_uri="abfss://c@acct.dfs.core.windows.net/lake",
        lake_azure_use_azure_ad=True,
        lake_azure_client_id="cid",
    )
    assert ad.duckdb_secret_sql() == (
        "CREATE OR REPLACE SECRET stockdata_lake (TYPE azure, PROVIDER credential_chain, "
        "CHAIN 'workload_identity;managed_identity;env;cli', ACCOUNT_NAME 'acct', "
        "CLIENT_ID 'cid')"
    )


def test_azure_without_a_credential_is_a_configuration_error() -> None:
    s = lake.LakeSettings(lake_uri="az://c/lake", lake_azure_account_name="acct")
    with pytest.raises(ConfigurationError, match="no credential is set"):
        s.storage_options()


def test_duckdb_init_never_prints_the_key() -> None:
    s = lake.LakeSettings(lake_uri="az://c/lake", lake_azure_connection_string=SecretStr(CONN))
    script = lake.init_sql(s)
    assert KEY not in script
    assert (
        "CREATE OR REPLACE SECRET stockdata_lake (TYPE azure, CONNECTION_STRING "
        "'<your storage connection string>');"
    ) in script.splitlines()


def test_partition_values_by_year_and_month() -> None:
    dates = pa.array([dt.date(2019, 12, 31), dt.date(2020, 1, 2)], pa.date32())
    assert period_of(dates, "year").to_pylist() == ["2019", "2020"]
    assert period_of(dates, "month").to_pylist() == ["2019-12", "2020-01"]
