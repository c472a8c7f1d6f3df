"""Where the lake lives and how to reach it: one settings object for deltalake and DuckDB."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr

from stockdata.config import StockdataSettings
from stockdata.errors import ConfigurationError

Granularity = Literal["year", "month"]


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class LakeSettings(StockdataSettings):
    """The Delta Lake location and its credentials. Unset URI = `STOCKDATA_HOME/lake` on disk."""

    lake_uri: str | None = Field(
        default=None,
        description="Root of the lake: a local path, abfss://container@account.dfs.core.windows.net/"
        "path or az://container/path. Unset: STOCKDATA_HOME/lake.",
    )
    lake_partition: Granularity = Field(
        default="year", description="Partition granularity of eod_prices: year or month."
    )
    lake_azure_account_name: str | None = Field(default=None, description="Storage account name.")
    lake_azure_account_key: SecretStr | None = Field(default=None, description="Account key.")
    lake_azure_sas_token: SecretStr | None = Field(default=None, description="SAS token.")
    lake_azure_connection_string: SecretStr | None = Field(
        default=None, description="Full storage connection string (alternative to name + key)."
    )
    lake_azure_use_azure_ad: bool = Field(
        default=False,
        description="Authenticate with Azure AD (DefaultAzureCredential: workload identity, "
        "managed identity, az login).",
    )
    lake_azure_client_id: str | None = Field(
        default=None, description="Client id of the user-assigned identity (workload identity)."
    )
    lake_azure_tenant_id: str | None = Field(default=None, description="Azure AD tenant id.")
    lake_azure_endpoint: str | None = Field(
        default=None,
        description="Blob endpoint override, e.g. http://127.0.0.1:10000/devstoreaccount1 (Azurite).",
    )
    lake_target_file_bytes: int = Field(
        default=256 * 2**20,
        ge=2**20,
        description="Target Parquet file size in bytes for writes and optimize.",
    )
    lake_row_group_rows: int = Field(
        default=8_192,
        ge=1_024,
        description="Rows per Parquet row group: small enough that a ticker's year (~252 rows) "
        "decodes little beyond itself, large enough to keep footers small (bench/run_lake.py).",
    )
    lake_vacuum_retention_hours: int = Field(
        default=168, ge=0, description="Files older than this are removed by `lake vacuum`."
    )
    lake_min_vacuum_retention_hours: int = Field(
        default=24, ge=0, description="`lake vacuum` refuses a retention shorter than this."
    )
    lake_serving_dir: str | None = Field(
        default=None,
        description="Local directory of the serving form (`lake publish`; the API maps it). "
        "Unset: <lake>/serving for a local lake, STOCKDATA_HOME/serving for ADLS.",
    )
    lake_serving_keep: int = Field(
        default=2, ge=1, le=100, description="Serving-form versions kept on disk by a publish."
    )

    # -- where --------------------------------------------------------------------------

    @property
    def root(self) -> str:
        if self.lake_uri is None:
            return str((self.home / "lake").resolve())
        uri = self.lake_uri.rstrip("/")
        if self.is_azure or "://" in uri:
            return uri
        return str(Path(uri).resolve())

    @property
    def is_azure(self) -> bool:
        return (self.lake_uri or "").split("://", 1)[0].lower() in {"abfss", "abfs", "az", "azure"}

    def table_uri(self, name: str) -> str:
        return f"{self.root}/{name}"

    @property
    def serving_root(self) -> Path:
        """Where serving forms live: always local disk (the API memory-maps them)."""
        if self.lake_serving_dir is not None:
            return Path(self.lake_serving_dir).resolve()
        if self.is_azure or "://" in self.root:
            return (self.home / "serving").resolve()
        return Path(self.root) / "serving"

    # -- how ----------------------------------------------------------------------------

    def _account_name(self) -> str | None:
        if self.lake_azure_account_name:
            return self.lake_azure_account_name
        if self.lake_azure_connection_string is not None:
            for part in self.lake_azure_connection_string.get_secret_value().split(";"):
                key, _, value = part.partition("=")
                if key.strip().lower() == "accountname":
                    return value.strip()
        host = urlsplit(self.lake_uri or "").hostname or ""
        if "@" in (self.lake_uri or "") or host.endswith(".core.windows.net"):
            return host.split(".", 1)[0] or None
        return None

    def storage_options(self) -> dict[str, str]:
        """deltalake (object_store) options for this lake; empty for local disk."""
        if not self.is_azure:
            return {}
        opts: dict[str, str] = {}
        account = self._account_name()
        if account:
            opts["account_name"] = account
        if self.lake_azure_connection_string is not None:
            for part in self.lake_azure_connection_string.get_secret_value().split(";"):
                key, _, value = part.partition("=")
                key = key.strip().lower()
                if key == "accountkey":
                    opts["account_key"] = value.strip()
                elif key == "sharedaccesssignature":
                    opts["sas_token"] = value.strip()
                elif key == "blobendpoint" and not self.lake_azure_endpoint:
                    opts["azure_endpoint"] = value.strip().rstrip("/")
        if self.lake_azure_account_key is not None:
            opts["account_key"] = self.lake_azure_account_key.get_secret_value()
        if self.lake_azure_sas_token is not None:
            opts["sas_token"] = self.lake_azure_sas_token.get_secret_value().lstrip("?")
        if self.lake_azure_use_azure_ad:
            if self.lake_azure_client_id:
                opts["client_id"] = self.lake_azure_client_id
            if self.lake_azure_tenant_id:
                opts["tenant_id"] = self.lake_azure_tenant_id
            token_file = os.environ.get("AZURE_FEDERATED_TOKEN_FILE")
            if token_file:
                opts["federated_token_file"] = token_file
            else:
                opts["use_azure_cli"] = "true"
        if self.lake_azure_endpoint:
            opts["azure_endpoint"] = self.lake_azure_endpoint.rstrip("/")
        if opts.get("azure_endpoint", "").startswith("http://"):
            opts["allow_http"] = "true"
        if not ({"account_key", "sas_token"} & opts.keys()) and not self.lake_azure_use_azure_ad:
            raise ConfigurationError(
                "the lake is on Azure but no credential is set: set STOCKDATA_LAKE_AZURE_ACCOUNT_KEY, "
                "_SAS_TOKEN, _CONNECTION_STRING or STOCKDATA_LAKE_AZURE_USE_AZURE_AD=true"
            )
        return opts

    def duckdb_secret_sql(self, name: str = "stockdata_lake") -> str | None:
        """The `CREATE SECRET` statement giving DuckDB the same access; None for local disk."""
        if not self.is_azure:
            return None
        opts = self.storage_options()
        account = opts.get("account_name")
        if "account_key" in opts or "sas_token" in opts:
            endpoint = opts.get("azure_endpoint") or f"https://{account}.blob.core.windows.net"
            parts = [f"AccountName={account}", f"BlobEndpoint={endpoint}"]
            if "account_key" in opts:
                parts.insert(1, f"AccountKey={opts['account_key']}")
                parts.insert(0, f"DefaultEndpointsProtocol={endpoint.split(':', 1)[0]}")
            else:
                parts.append(f"SharedAccessSignature={opts['sas_token']}")
            return (
                f"CREATE OR REPLACE SECRET {name} "
                f"(TYPE azure, CONNECTION_STRING {_sql_literal(';'.join(parts))})"
            )
        chain = (
            "workload_identity;managed_identity;env;cli" if self.lake_azure_use_azure_ad else "cli"
        )
        fields = [
            f"TYPE azure, PROVIDER credential_chain, CHAIN {_sql_literal(chain)}",
            f"ACCOUNT_NAME {_sql_literal(account or '')}",
        ]
        if self.lake_azure_client_id:
            fields.append(f"CLIENT_ID {_sql_literal(self.lake_azure_client_id)}")
        return f"CREATE OR REPLACE SECRET {name} ({', '.join(fields)})"

    def emulator_blob_url(self) -> str | None:
        """The Azurite base URL when the endpoint is a loopback emulator (DuckDB needs it in env)."""
        endpoint = self.storage_options().get("azure_endpoint", "") if self.is_azure else ""
        parts = urlsplit(endpoint)
        if parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}:
            return f"{parts.scheme}://{parts.netloc}"
        return None
