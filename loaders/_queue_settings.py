"""Settings of the job queue: which backend, its name, visibility, retries and credentials."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from stockdata.config import StockdataSettings

QueueBackend = Literal["postgres", "azure"]


class QueueSettings(StockdataSettings):
    """Where jobs wait. Defaults serve the embedded profile: a Postgres queue in the catalog."""

    queue_backend: QueueBackend = Field(
        default="postgres",
        description="postgres: the catalog's queue_messages table (embedded default); "
        "azure: an Azure Storage Queue (production, KEDA scales workers on its length).",
    )
    queue_name: str = Field(
        default="eod-jobs",
        pattern=r"^[a-z0-9][a-z0-9-]{1,54}[a-z0-9]$",
        description="Queue name (Azure rules: 3-56 lowercase letters, digits, single hyphens); "
        "poisoned messages go to `<name>-poison`.",
    )
    queue_visibility_timeout_seconds: int = Field(
        default=300, ge=1, le=7 * 24 * 3600, description="How long a received message stays hidden."
    )
    queue_renew_every_seconds: float = Field(
        default=60.0, gt=0, description="How often a worker extends the visibility of its job."
    )
    queue_max_deliveries: int = Field(
        default=5, ge=1, description="The delivery that fails this many times poisons a message."
    )
    queue_backoff_base_seconds: float = Field(
        default=5.0, ge=0, description="First retry delay after a transient failure (doubles)."
    )
    queue_backoff_max_seconds: float = Field(
        default=600.0, ge=0, description="Cap of the retry delay."
    )
    queue_poll_seconds: float = Field(
        default=1.0, gt=0, description="Pause between receives when the queue has nothing visible."
    )
    queue_azure_connection_string: SecretStr | None = Field(
        default=None, description="Storage account connection string (Azurite or an account key)."
    )
    queue_azure_account_url: str | None = Field(
        default=None,
        description="https://<account>.queue.core.windows.net (with a key or Azure AD).",
    )
    queue_azure_account_key: SecretStr | None = Field(
        default=None, description="Storage account key used with queue_azure_account_url."
    )
    queue_azure_use_azure_ad: bool = Field(
        default=False,
        description="Authenticate with DefaultAzureCredential (workload identity, managed identity).",
    )
    queue_azure_client_id: str | None = Field(
        default=None, description="Client id of the user-assigned identity (workload identity)."
    )

    @property
    def poison_queue_name(self) -> str:
        return f"{self.queue_name}-poison"
