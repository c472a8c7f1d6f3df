"""The app with the real flags (offline document), API-key auth and the SQL sandbox wired in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

import catalog
import lake
from catalog import Role
from query_api import ApiSettings, create_app
from query_api._auth import AuthSettings
from query_api._flags import DEV_FLAGS_FILE, FlagSettings
from query_api._hardening import SecuritySettings

TYPE = "https://stockdata.dev/problems/"


def _flags_file(tmp_path: Path, **enabled: bool) -> Path:
    doc = json.loads(DEV_FLAGS_FILE.read_text())
    for state in doc["feature_states"]:
        name = state["feature"]["name"]
        if name in enabled:
            state["enabled"] = enabled[name]
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(doc))
    return path


def _app(lake_settings: lake.LakeSettings, engine: Engine, **kwargs: Any) -> Any:
    return create_app(
        ApiSettings(api_lake_poll_seconds=0.0),
        lake_settings=lake_settings,
        engine=engine,
        security_settings=SecuritySettings(rate_limit_per_minute=0),
        access_logs=False,
        **kwargs,
    )


def test_disabled_flags_answer_feature_disabled(
    tmp_path: Path, sample_lake: lake.LakeSettings, seeded: Engine
) -> None:
    flags = FlagSettings(
        flags_file=_flags_file(
            tmp_path, ticker_api_enabled=False, delta_api_enabled=True, sql_api_enabled=False
        )
    )
    with TestClient(_app(sample_lake, seeded, flag_settings=flags, sql=False)) as c:
        for url in (
            "/v1/eod/MSFT",
            "/v1/eod/MSFT/latest",
            "/eod/ticker/MSFT",
            "/v1/eod?date=2008-10-10",
        ):
            resp = c.get(url)
            assert resp.status_code == 404, url
            assert resp.headers["content-type"] == "application/problem+json"
            assert resp.json()["type"] == TYPE + "feature-disabled"
        sql = c.post("/v1/sql", json={"sql": "SELECT 1"})
        assert (sql.status_code, sql.json()["type"]) == (404, TYPE + "feature-disabled")
        delta = c.get("/eod/ticker/MSFT/delta/21")
        assert delta.status_code == 200
        assert c.get("/v1/movers", params={"date": "2008-10-10", "days": 21}).status_code == 200


def test_delta_flag_off_gates_deltas_and_movers(
    tmp_path: Path, sample_lake: lake.LakeSettings, seeded: Engine
) -> None:
    flags = FlagSettings(flags_file=_flags_file(tmp_path, delta_api_enabled=False))
    with TestClient(_app(sample_lake, seeded, flag_settings=flags, sql=False)) as c:
        assert c.get("/v1/eod/MSFT/latest").status_code == 200
        for url in (
            "/v1/eod/MSFT/delta?days=5",
            "/eod/ticker/MSFT/delta/5",
            "/v1/movers?date=2008-10-10&days=5",
        ):
            resp = c.get(url)
            assert (resp.status_code, resp.json()["type"]) == (404, TYPE + "feature-disabled"), url


def test_api_keys_and_roles(sample_lake: lake.LakeSettings, seeded: Engine) -> None:
    with catalog.session_scope(seeded) as session:
        _, reader = catalog.create_api_key(session, name="reader", role=Role.READER)
        _, analyst = catalog.create_api_key(session, name="analyst", role=Role.ANALYST)
    app = _app(sample_lake, seeded, auth_settings=AuthSettings(auth_mode="api-key"), sql=True)
    with TestClient(app) as c:
        anonymous = c.get("/v1/eod/MSFT/latest")
        assert (anonymous.status_code, anonymous.json()["type"]) == (401, TYPE + "unauthorized")
        wrong = c.get("/v1/eod/MSFT/latest", headers={"X-API-Key": "sd_not-a-real-key"})
        assert wrong.status_code == 401
        assert c.get("/health/live").status_code == 200
        assert c.get("/docs/openapi.json").status_code == 200
        ok = c.get("/v1/eod/MSFT/latest", headers={"X-API-Key": reader})
        assert (ok.status_code, ok.json()["data"]["close"]) == (200, 83.87)
        denied = c.post("/v1/sql", json={"sql": "SELECT 1 AS x"}, headers={"X-API-Key": reader})
        assert (denied.status_code, denied.json()["type"]) == (403, TYPE + "forbidden")
        query = {"sql": "SELECT ticker, count(*) AS n FROM eod GROUP BY ticker ORDER BY ticker"}
        rows = c.post("/v1/sql", json=query, headers={"Authorization": f"Bearer {analyst}"})
        assert rows.status_code == 200
        body = rows.json()
        assert body["rows"] == [["GOOG", 2148], ["MSFT", 7983]]
        assert [col["name"] for col in body["columns"]] == ["ticker", "n"]
        assert (body["row_count"], body["truncated"]) == (2, False)
        arrow = c.post(
            "/v1/sql",
            json=query,
            headers={"X-API-Key": analyst, "Accept": "application/vnd.apache.arrow.stream"},
        )
        table = ipc.open_stream(pa.BufferReader(arrow.content)).read_all()
        assert table.column("n").to_pylist() == [2148, 7983]
        refused = c.post("/v1/sql", json={"sql": "DROP VIEW eod"}, headers={"X-API-Key": analyst})
        assert (refused.status_code, refused.json()["type"]) == (400, TYPE + "sql-refused")
        still = c.post("/v1/sql", json={"sql": "SELECT 42 AS x"}, headers={"X-API-Key": analyst})
        assert still.json()["rows"] == [[42]]
