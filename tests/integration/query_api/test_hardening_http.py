"""The hardening middlewares in a minimal Litestar app, over real HTTP via Litestar's TestClient."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from litestar import Litestar, get, post
from litestar.openapi import OpenAPIConfig
from litestar.params import JSONBody
from litestar.testing import TestClient

from query_api._explorer import LocalSwaggerUI
from query_api._hardening import (
    API_CSP,
    DOCS_CSP,
    PROBLEM_MEDIA_TYPE,
    AllowedHostsMiddleware,
    BodySizeLimitMiddleware,
    RateLimitMiddleware,
    SecurityHeadersMiddleware,
    SecuritySettings,
    cors_config,
)

ORIGIN = "https://app.stockdata.dev"


@get("/v1/ping", sync_to_thread=False)
def ping() -> dict[str, str]:
    return {"pong": "yes"}


@get("/health/live", sync_to_thread=False)
def live() -> dict[str, str]:
    return {"status": "ok"}


@post("/v1/echo", sync_to_thread=False)
def echo(data: JSONBody[dict[str, str]]) -> dict[str, str]:
    return data


def _app(settings: SecuritySettings) -> Litestar:
    return Litestar(
        route_handlers=[ping, live, echo],
        cors_config=cors_config(settings),
        middleware=[
            SecurityHeadersMiddleware(settings),
            AllowedHostsMiddleware(settings),
            RateLimitMiddleware(settings),
            BodySizeLimitMiddleware(settings),
        ],
        openapi_config=OpenAPIConfig(
            title="t", version="1", path="/docs", render_plugins=[LocalSwaggerUI(path="/")]
        ),
        request_max_body_size=settings.max_request_bytes,
    )


@pytest.fixture
def client() -> Iterator[TestClient[Litestar]]:
    settings = SecuritySettings(
        cors_origins=[ORIGIN],
        allowed_hosts=["api.stockdata.dev", "testserver.local"],
        rate_limit_per_minute=60,
        rate_limit_burst=3,
        max_request_bytes=1_024,
    )
    with TestClient(_app(settings), base_url="http://api.stockdata.dev") as c:
        yield c


SECURITY_HEADERS = {
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-site",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


def test_security_headers_on_api_responses(client: TestClient[Litestar]) -> None:
    response = client.get("/v1/ping")
    assert response.status_code == 200
    assert response.json() == {"pong": "yes"}
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert response.headers["content-security-policy"] == API_CSP
    assert "frame-ancestors 'none'" in API_CSP


def test_the_docs_page_gets_a_csp_that_allows_what_it_loads(client: TestClient[Litestar]) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == DOCS_CSP
    assert response.headers["x-frame-options"] == "DENY"
    html = response.text
    # Swagger UI from the API's own files, started by a script file: no CDN, no inline JS.
    assert '<script src="/static/vendor/swagger-ui-bundle.js"></script>' in html
    assert '<link rel="stylesheet" href="/static/vendor/swagger-ui.css">' in html
    assert '<div id="swagger-ui" data-spec-url="/docs/openapi.json"></div>' in html
    assert "https://" not in html
    assert re.search(r"<script>", html) is None
    directives = dict(d.strip().split(" ", 1) for d in DOCS_CSP.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self' 'unsafe-inline'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "https:" not in DOCS_CSP
    assert client.get("/docs/openapi.json").status_code == 200


def test_no_hsts_header_when_switched_off() -> None:
    settings = SecuritySettings(hsts_seconds=0, rate_limit_per_minute=0)
    with TestClient(_app(settings)) as c:
        response = c.get("/v1/ping")
    assert "strict-transport-security" not in response.headers
    assert "ratelimit-limit" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


def test_rate_limit_429_with_headers_and_no_bucket_per_unverified_credential(
    client: TestClient[Litestar],
) -> None:
    seen = []
    for _ in range(3):
        response = client.get("/v1/ping")
        assert response.status_code == 200
        seen.append(
            (
                response.headers["ratelimit-limit"],
                response.headers["ratelimit-remaining"],
                response.headers["ratelimit-policy"],
            )
        )
    assert seen == [
        ("60", "2", "60;w=60;burst=3"),
        ("60", "1", "60;w=60;burst=3"),
        ("60", "0", "60;w=60;burst=3"),
    ]
    refused = client.get("/v1/ping")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit-reset"] == "3"
    assert refused.headers["x-content-type-options"] == "nosniff"
    problem = refused.json()
    assert problem["type"] == "https://stockdata.dev/problems/rate-limited"
    assert problem["status"] == 429
    assert problem["title"] == "Too Many Requests"
    assert problem["instance"] == "/v1/ping"
    assert problem["detail"] == "rate limit of 60 requests per minute exceeded; retry in 1 s"

    # Without an authenticated identity a credential is no bucket of its own: made-up keys
    # share the client address's (empty) bucket.
    keyed = client.get("/v1/ping", headers={"X-API-Key": "sd_key-one"})
    assert (keyed.status_code, keyed.headers["ratelimit-remaining"]) == (429, "0")
    other = client.get("/v1/ping", headers={"Authorization": "Bearer sd_key-two"})
    assert (other.status_code, other.headers["ratelimit-remaining"]) == (429, "0")


def test_health_is_never_rate_limited(client: TestClient[Litestar]) -> None:
    for _ in range(10):
        response = client.get("/health/live")
        assert response.status_code == 200
        assert "ratelimit-limit" not in response.headers


def test_cors_preflight_for_an_allowed_and_a_refused_origin(client: TestClient[Litestar]) -> None:
    allowed = client.options(
        "/v1/ping",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "X-API-Key",
        },
    )
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "GET" in allowed.headers["access-control-allow-methods"]
    assert "x-api-key" in allowed.headers["access-control-allow-headers"].lower()

    refused = client.options(
        "/v1/ping",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers

    simple = client.get("/v1/ping", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    foreign = client.get("/v1/ping", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in foreign.headers


def test_a_disallowed_host_is_400_problem(client: TestClient[Litestar]) -> None:
    assert client.get("/v1/ping").status_code == 200
    assert client.get("/v1/ping", headers={"Host": "API.stockdata.dev:8443"}).status_code == 200
    wrong = client.get("/v1/ping", headers={"Host": "evil.example"})
    assert wrong.status_code == 400
    assert wrong.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert wrong.headers["x-content-type-options"] == "nosniff"
    assert wrong.json() == {
        "type": "https://stockdata.dev/problems/invalid-host",
        "title": "Bad Request",
        "status": 400,
        "detail": "the Host header names a host this API does not serve",
        "instance": "/v1/ping",
    }
    # kubelet probes address the pod by IP: health stays reachable
    probe = client.get("/health/live", headers={"Host": "10.244.1.17:8000"})
    assert (probe.status_code, probe.json()) == (200, {"status": "ok"})


def test_a_large_body_is_413_problem(client: TestClient[Litestar]) -> None:
    small = client.post("/v1/echo", json={"a": "b"})
    assert (small.status_code, small.json()) == (201, {"a": "b"})
    big = client.post("/v1/echo", json={"a": "x" * 2_000})
    assert big.status_code == 413
    assert big.headers["content-type"] == "application/problem+json"
    assert big.json() == {
        "type": "https://stockdata.dev/problems/request-too-large",
        "title": "Content Too Large",
        "status": 413,
        "detail": "the request body is larger than 1024 bytes",
        "instance": "/v1/echo",
    }
