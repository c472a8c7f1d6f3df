"""Flags, auth and the SQL sandbox wired into the real app (create_app) over HTTP."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

import catalog
import lake
from catalog import Role
from query_api import ApiSettings, create_app
from query_api._auth import AuthSettings
from query_api._flags import DELTA_API, SQL_API, TICKER_API, FlagSettings, environment_document
from query_api._hardening import API_CSP, DOCS_CSP
from query_api._sandbox import SqlSettings

PROBLEMS = "https://stockdata.dev/problems/"


@pytest.fixture(scope="module")
def lake_settings(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> lake.LakeSettings:
    with (samples / "MSFT.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    bars = pa.table(
        {
            "ticker": ["MSFT"] * len(rows),
            "exchange_mic": ["XNAS"] * len(rows),
            "trade_date": [dt.date.fromisoformat(r["Date"]) for r in rows],
            "open": [float(r["Open"]) for r in rows],
            "high": [float(r["High"]) for r in rows],
            "low": [float(r["Low"]) for r in rows],
            "close": [float(r["Close"]) for r in rows],
            "volume": [int(r["Volume"]) for r in rows],
        }
    )
    settings = lake.LakeSettings(lake_uri=str(tmp_path_factory.mktemp("e2e-lake")))
    lake.write_bars(settings, bars, job_id="auth-e2e")
    return settings


def _flags_file(tmp_path: Path, **flags: bool) -> Path:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(environment_document(flags)))
    return path


def _client(
    lake_settings: lake.LakeSettings,
    engine: Engine,
    flags_file: Path,
    *,
    sql: bool = False,
) -> TestClient[Litestar]:
    app = create_app(
        ApiSettings(),
        lake_settings=lake_settings,
        engine=engine,
        flag_settings=FlagSettings(flags_file=flags_file),
        auth_settings=AuthSettings(auth_mode="api-key", api_key_cache_seconds=0),
        sql_settings=SqlSettings(sql_timeout_seconds=10, sql_workers=1),
        sql=sql,
        access_logs=False,
    )
    return TestClient(app)


@pytest.fixture
def keys(seeded: Engine) -> dict[str, str]:
    with catalog.session_scope(seeded) as s:
        _, reader = catalog.create_api_key(s, name="dashboard", role=Role.READER)
        _, analyst = catalog.create_api_key(s, name="notebook", role=Role.ANALYST)
    return {"reader": reader, "analyst": analyst}


def test_flags_off_answer_feature_disabled_on_new_and_old_routes(
    lake_settings: lake.LakeSettings, seeded: Engine, keys: dict[str, str], tmp_path: Path
) -> None:
    path = _flags_file(tmp_path, **{TICKER_API: False, DELTA_API: False, SQL_API: False})
    headers = {"X-API-Key": keys["reader"]}
    with _client(lake_settings, seeded, path) as client:
        for url in (
            "/v1/eod/MSFT",
            "/eod/ticker/MSFT",
            "/v1/eod/MSFT/delta?days=21",
            "/eod/ticker/MSFT/delta/21",
        ):
            response = client.get(url, headers=headers)
            assert response.status_code == 404, url
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["type"] == PROBLEMS + "feature-disabled", url
        assert client.get("/health/live").status_code == 200


def test_flags_on_and_api_keys(
    lake_settings: lake.LakeSettings, seeded: Engine, keys: dict[str, str], tmp_path: Path
) -> None:
    path = _flags_file(tmp_path, **{TICKER_API: True, DELTA_API: True, SQL_API: True})
    with _client(lake_settings, seeded, path) as client:
        unauthenticated = client.get("/v1/eod/MSFT/latest")
        assert unauthenticated.status_code == 401
        assert unauthenticated.json()["type"] == PROBLEMS + "unauthorized"
        assert unauthenticated.headers["www-authenticate"] == 'Bearer realm="stockdata"'
        wrong = client.get("/v1/eod/MSFT/latest", headers={"X-API-Key": "sd_nope"})
        assert (wrong.status_code, wrong.json()["type"]) == (401, PROBLEMS + "unauthorized")
        assert (
            wrong.headers["www-authenticate"] == 'Bearer realm="stockdata", error="invalid_token"'
        )
        assert client.get("/health/live").status_code == 200
        docs = client.get("/docs")
        assert docs.status_code == 200
        assert docs.headers["content-security-policy"] == DOCS_CSP
        assert "ratelimit-limit" not in client.get("/health/live").headers

        legacy = client.get("/eod/ticker/MSFT", headers={"X-API-Key": keys["reader"]})
        assert legacy.status_code == 200
        assert legacy.headers["content-security-policy"] == API_CSP
        assert legacy.headers["x-frame-options"] == "DENY"
        assert legacy.headers["ratelimit-limit"] == "600"
        assert legacy.json()["data"]["close"] == 83.87
        assert legacy.json()["data"]["date"] == "2017-11-10"


def test_sql_needs_the_analyst_role(
    lake_settings: lake.LakeSettings, seeded: Engine, keys: dict[str, str], tmp_path: Path
) -> None:
    path = _flags_file(tmp_path, **{TICKER_API: True, DELTA_API: True, SQL_API: True})
    query = {"sql": "select close from eod where ticker='MSFT' and trade_date='2008-10-10'"}
    with _client(lake_settings, seeded, path, sql=True) as client:
        reader = client.post("/v1/sql", json=query, headers={"X-API-Key": keys["reader"]})
        assert reader.status_code == 403
        assert reader.json()["type"] == PROBLEMS + "forbidden"

        analyst = client.post(
            "/v1/sql", json=query, headers={"Authorization": f"Bearer {keys['analyst']}"}
        )
        assert analyst.status_code == 200
        body = analyst.json()
        assert body["rows"] == [[18.029]]
        assert body["truncated"] is False

        refused = client.post(
            "/v1/sql",
            json={"sql": "select * from read_csv('/etc/passwd')"},
            headers={"X-API-Key": keys["analyst"]},
        )
        assert refused.status_code == 400
        assert refused.json()["type"] == PROBLEMS + "sql-refused"
        assert "root:" not in refused.text
