"""A real Delta lake of the bundled MSFT/GOOG histories and the API built over it."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

import lake
from catalog import DatabaseSettings
from query_api import ApiSettings, create_app
from query_api._hardening import SecuritySettings

#: A URL where nothing listens: the catalog is "down".
DEAD_DATABASE_URL = "postgresql://stockdata:unused@127.0.0.1:1/stockdata"


def read_sample(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as fh:
        return [
            {
                "date": dt.date.fromisoformat(r["Date"]),
                "open": float(r["Open"]),
                "high": float(r["High"]),
                "low": float(r["Low"]),
                "close": float(r["Close"]),
                "volume": int(r["Volume"]),
            }
            for r in csv.DictReader(fh)
        ]


def bars_table(ticker: str, rows: list[dict[str, Any]], *, mic: str = "XNAS") -> pa.Table:
    return pa.table(
        {
            "ticker": [ticker] * len(rows),
            "exchange_mic": [mic] * len(rows),
            "trade_date": pa.array([r["date"] for r in rows], pa.date32()),
            "open": [r["open"] for r in rows],
            "high": [r["high"] for r in rows],
            "low": [r["low"] for r in rows],
            "close": [r["close"] for r in rows],
            "volume": pa.array([r["volume"] for r in rows], pa.int64()),
        }
    )


@pytest.fixture(scope="session")
def msft_rows(samples: Path) -> list[dict[str, Any]]:
    return read_sample(samples / "MSFT.csv")


@pytest.fixture(scope="session")
def sample_lake(
    tmp_path_factory: pytest.TempPathFactory, samples: Path, msft_rows: list[dict[str, Any]]
) -> lake.LakeSettings:
    """MSFT and GOOG written through lake.write_bars; never modified by tests."""
    settings = lake.LakeSettings(lake_uri=str(tmp_path_factory.mktemp("api-lake") / "lake"))
    lake.write_bars(settings, bars_table("MSFT", msft_rows), job_id="api-msft")
    lake.write_bars(
        settings, bars_table("GOOG", read_sample(samples / "GOOG.csv")), job_id="api-goog"
    )
    return settings


def api_settings(**overrides: Any) -> ApiSettings:
    base: dict[str, Any] = {"api_lake_poll_seconds": 0.0, "api_staleness_seconds": 30.0}
    base.update(overrides)
    return ApiSettings(**base)


@pytest.fixture(params=[True, False], ids=["serving", "duckdb"])
def hot_index(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def make_app(
    lake_settings: lake.LakeSettings,
    *,
    engine: Engine | None = None,
    database_url: str | None = None,
    sql: bool = False,
    security: SecuritySettings | None = None,
    **overrides: Any,
) -> Litestar:
    db = None
    if engine is None:
        db = DatabaseSettings(
            database_url=database_url or DEAD_DATABASE_URL, database_connect_timeout=1
        )
    if overrides.get("api_serving", True) and lake.open_table(lake_settings, lake.EOD_TABLE):
        lake.publish(lake_settings)  # as `lake publish` after ingest: the form is there at start
    return create_app(
        api_settings(**overrides),
        lake_settings=lake_settings,
        database_settings=db,
        engine=engine,
        sql=sql,
        security_settings=security or SecuritySettings(rate_limit_per_minute=0),
        access_logs=False,
    )


@pytest.fixture
def client(
    sample_lake: lake.LakeSettings, seeded: Engine, hot_index: bool
) -> Iterator[TestClient[Litestar]]:
    """The API over the sample lake and the seeded catalog, with and without the hot index."""
    with TestClient(make_app(sample_lake, engine=seeded, api_serving=hot_index)) as test_client:
        yield test_client
