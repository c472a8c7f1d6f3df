"""The OpenAPI document: valid OpenAPI 3.1, formats and media types, hand-named operationIds,
deprecated legacy routes, response headers, security for the auth mode, public servers."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient
from openapi_spec_validator import validate

import lake
from catalog import DatabaseSettings, Role
from query_api import create_app
from query_api._auth import AnonymousAuthenticator, AuthSettings
from query_api._hardening import SecuritySettings
from tests.integration.query_api.conftest import DEAD_DATABASE_URL, api_settings

OPERATIONS = {
    ("get", "/v1/exchanges"): "listExchanges",
    ("get", "/v1/exchanges/{mic}"): "getExchange",
    ("get", "/v1/tickers"): "searchTickers",
    ("get", "/v1/tickers/{symbol}"): "getTicker",
    ("get", "/v1/eod/{symbol}"): "getEodBars",
    ("get", "/v1/eod/{symbol}/history"): "getEodHistory",
    ("get", "/v1/eod/{symbol}/latest"): "getLatestBar",
    ("get", "/v1/eod"): "getEodOnDate",
    ("get", "/v1/eod/{symbol}/delta"): "getDelta",
    ("get", "/v1/movers"): "getMovers",
    ("get", "/v1/actions/{symbol}"): "getActions",
    ("post", "/v1/sql"): "runSql",
    ("get", "/eod/ticker/{ticker}"): "getLatestBarLegacy",
    ("get", "/eod/ticker/{ticker}/delta/{days}"): "getDeltaLegacy",
    ("get", "/health/live"): "HealthLiveGetLive",
    ("get", "/health/ready"): "HealthReadyGetReady",
}
BAR_MEDIA = [
    "application/json",
    "text/csv",
    "application/vnd.apache.arrow.stream",
    "application/vnd.apache.parquet",
]


def _document(sample_lake: lake.LakeSettings, mode: str = "none", **overrides: Any) -> Any:
    app = create_app(
        api_settings(**overrides),
        lake_settings=sample_lake,
        database_settings=DatabaseSettings(
            database_url=DEAD_DATABASE_URL, database_connect_timeout=1
        ),
        auth_settings=AuthSettings(auth_mode=mode),  # type: ignore[arg-type]
        authenticator=AnonymousAuthenticator(Role.READER),
        sql=False,
        security_settings=SecuritySettings(rate_limit_per_minute=0),
        access_logs=False,
    )
    with TestClient(app) as client:
        return client.get("/docs/openapi.json").json()


def test_document_is_valid_and_complete(sample_lake: lake.LakeSettings) -> None:
    doc = _document(sample_lake, api_public_url="https://api.example.test")
    validate(doc)
    assert doc["servers"] == [{"url": "https://api.example.test", "description": "This API"}]
    found = {
        (method, path): op["operationId"]
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "head", "put", "delete", "patch")
    }
    assert found == OPERATIONS
    deprecated = sorted(
        op["operationId"]
        for item in doc["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and op.get("deprecated")
    )
    assert deprecated == ["getDeltaLegacy", "getLatestBarLegacy"]
    assert "security" not in doc  # auth mode none

    bars = doc["paths"]["/v1/eod/{symbol}"]["get"]
    fmt = next(p for p in bars["parameters"] if p["name"] == "format")
    assert (fmt["in"], fmt["required"], fmt["schema"]["enum"]) == (
        "query",
        False,
        ["json", "csv", "arrow", "parquet"],
    )
    ok = bars["responses"]["200"]
    assert list(ok["content"]) == BAR_MEDIA
    assert sorted(ok["headers"]) == [
        "Cache-Control",
        "Content-Disposition",
        "ETag",
        "Link",
        "RateLimit-Limit",
        "RateLimit-Policy",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "X-Total-Count",
    ]
    movers = doc["paths"]["/v1/movers"]["get"]["responses"]["200"]
    assert list(movers["content"]) == BAR_MEDIA[:3]
    assert "Link" not in movers["headers"] and "ETag" in movers["headers"]
    assert list(doc["paths"]["/v1/exchanges"]["get"]["responses"]["200"]["content"]) == [
        "application/json"
    ]


@pytest.mark.parametrize(
    ("mode", "schemes", "security"),
    [
        (
            "api-key",
            {"apiKey": {"type": "apiKey", "name": "X-API-Key", "in": "header"}},
            [{"apiKey": []}],
        ),
        (
            "jwt",
            {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            [{"bearer": []}],
        ),
    ],
)
def test_security_scheme_follows_the_auth_mode(
    sample_lake: lake.LakeSettings, mode: str, schemes: dict[str, Any], security: list[Any]
) -> None:
    doc = _document(sample_lake, mode)
    validate(doc)
    got = {
        name: {k: v for k, v in scheme.items() if k != "description"}
        for name, scheme in doc["components"]["securitySchemes"].items()
    }
    assert (got, doc["security"]) == (schemes, security)
