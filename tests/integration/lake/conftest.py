"""The lake on local disk and on Azurite: every test taking `lake_settings` runs on both."""

from __future__ import annotations

import csv
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

import lake
from tests._services import Azurite


@pytest.fixture(params=["local", pytest.param("azurite", marks=pytest.mark.azure)])
def lake_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[lake.LakeSettings]:
    """LakeSettings for a fresh local directory or a fresh Azurite container."""
    if request.param == "local":
        yield lake.LakeSettings(lake_uri=str(tmp_path / "lake"), home=tmp_path)
        return
    from azure.storage.blob import BlobServiceClient

    azurite: Azurite = request.getfixturevalue("azurite")
    container = f"lake-{uuid.uuid4().hex[:12]}"
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    service.create_container(container)
    try:
        yield lake.LakeSettings(
            lake_uri=f"az://{container}/lake",
            lake_azure_connection_string=azurite.connection_string,
            home=tmp_path,
        )
    finally:
        service.delete_container(container)


def read_csv_bars(path: Path, ticker: str, mic: str = "XNAS") -> pa.Table:
    """A sample CSV (Date,Open,High,Low,Close,Volume,OpenInt) as a BAR_SCHEMA batch."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return pa.table(
        {
            "ticker": [ticker] * len(rows),
            "exchange_mic": [mic] * len(rows),
            "trade_date": [dt.date.fromisoformat(r["Date"]) for r in rows],
            "open": [float(r["Open"]) for r in rows],
            "high": [float(r["High"]) for r in rows],
            "low": [float(r["Low"]) for r in rows],
            "close": [float(r["Close"]) for r in rows],
            "volume": [int(r["Volume"]) for r in rows],
            "source": ["sample"] * len(rows),
        }
    )


@pytest.fixture(scope="session")
def msft_bars(samples: Path) -> pa.Table:
    return read_csv_bars(samples / "MSFT.csv", "MSFT")


@pytest.fixture
def log_files() -> Callable[[lake.LakeSettings], list[str]]:
    """A function listing a table's _delta_log file names (disk or Azurite)."""
    return _log_files


def _log_files(settings: lake.LakeSettings, table: str = lake.EOD_TABLE) -> list[str]:
    """File names in a table's _delta_log, on disk or in the Azurite container."""
    if not settings.is_azure:
        return sorted(p.name for p in (Path(settings.table_uri(table)) / "_delta_log").iterdir())
    from azure.storage.blob import BlobServiceClient

    assert settings.lake_azure_connection_string is not None
    service = BlobServiceClient.from_connection_string(
        settings.lake_azure_connection_string.get_secret_value()
    )
    container, _, prefix = settings.root.split("://", 1)[1].partition("/")
    client = service.get_container_client(container)
    log_prefix = f"{prefix}/{table}/_delta_log/"
    return sorted(b.name.removeprefix(log_prefix) for b in client.list_blobs(log_prefix))
