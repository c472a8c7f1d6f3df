"""Auth and limits as an attacker tries them, against the real app over the real catalog.

A catalog outage is a real one: the app reaches Postgres through a socket proxy that the
test stops. Every row of the tables below is an attack from issue 11 (or its legitimate
twin) with the exact status and problem type it must get.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

import catalog
import lake
from catalog import Role
from query_api import create_app
from query_api._auth import MAX_CREDENTIAL_CHARS, AuthSettings
from query_api._hardening import API_CSP, SecuritySettings
from tests._socket_proxy import SocketProxy, proxied_postgres
from tests.integration.query_api.conftest import api_settings
from tests.stubs.logs import log_lines

PROBLEMS = "https://stockdata.dev/problems/"
POINT = "/v1/eod/MSFT?date=2008-10-10"


def _app(
    lake_settings: lake.LakeSettings,
    engine: Engine,
    *,
    cache_seconds: float = 3600.0,
    mode: str = "api-key",
    **security: Any,
) -> Litestar:
    return create_app(
        api_settings(),
        lake_settings=lake_settings,
        engine=engine,
        auth_settings=AuthSettings(auth_mode=mode, api_key_cache_seconds=cache_seconds),  # type: ignore[arg-type]
        security_settings=SecuritySettings(**{"rate_limit_per_minute": 0, **security}),
        sql=False,
        access_logs=False,
    )


def _key(engine: Engine, name: str, role: Role = Role.READER) -> str:
    with catalog.session_scope(engine) as s:
        _, raw = catalog.create_api_key(s, name=name, role=role)
    return raw


def _revoke(engine: Engine, name: str) -> None:
    with catalog.session_scope(engine) as s:
        key = next(k for k in catalog.list_api_keys(s) if k.name == name)
        catalog.revoke_api_key(s, key.id)


def _problem(response: Any) -> tuple[int, str]:
    assert response.headers["content-type"] == "application/problem+json"
    return response.status_code, response.json()["type"].removeprefix(PROBLEMS)


@pytest.fixture
def outage(pg_url: str, seeded: Engine) -> Iterator[tuple[SocketProxy, Engine]]:
    """An engine on the seeded catalog through a proxy the test can stop."""
    with proxied_postgres(pg_url) as (proxy, url):
        engine = sa.create_engine(url, pool_pre_ping=True)
        try:
            yield proxy, engine
        finally:
            engine.dispose()


# -- a catalog outage in api-key mode ------------------------------------------------------


@pytest.mark.parametrize(
    ("cache_seconds", "before_outage", "expected"),
    [
        # verified within the cache window: the documented promise, it keeps working
        (3600.0, "verified", (200, None)),
        # verified, but longer ago than the window (0 s): the catalog must say, and it is down
        (0.0, "verified", (503, "auth-unavailable")),
        # verified, then revoked: past the window it must not be served from a stale entry
        (0.0, "verified-then-revoked", (503, "auth-unavailable")),
        # the revocation was seen (401) before the outage: still refused
        (0.0, "revocation-seen", (503, "auth-unavailable")),
        # never seen before the outage
        (3600.0, "never-seen", (503, "auth-unavailable")),
    ],
)
def test_a_catalog_outage_serves_only_keys_verified_within_the_cache_window(
    sample_lake: lake.LakeSettings,
    outage: tuple[SocketProxy, Engine],
    seeded: Engine,
    cache_seconds: float,
    before_outage: str,
    expected: tuple[int, str | None],
) -> None:
    proxy, engine = outage
    headers = {"X-API-Key": _key(seeded, "dashboard")}
    with TestClient(_app(sample_lake, engine, cache_seconds=cache_seconds)) as client:
        if before_outage != "never-seen":
            assert client.get(POINT, headers=headers).status_code == 200
        if before_outage in {"verified-then-revoked", "revocation-seen"}:
            _revoke(seeded, "dashboard")
        if before_outage == "revocation-seen":
            assert _problem(client.get(POINT, headers=headers)) == (401, "unauthorized")
        proxy.stop()
        response = client.get(POINT, headers=headers)
        status, problem = expected
        if problem is None:
            assert (response.status_code, response.json()["data"][0]["close"]) == (200, 18.029)
        else:
            assert _problem(response) == (status, problem)
            assert response.headers["retry-after"] == "5"
            assert response.json()["detail"] == (
                "API keys cannot be checked right now (catalog unreachable); retry shortly"
            )


def test_readiness_follows_the_lake_and_reports_the_catalog(
    sample_lake: lake.LakeSettings, outage: tuple[SocketProxy, Engine]
) -> None:
    proxy, engine = outage
    with TestClient(_app(sample_lake, engine, mode="none")) as client:
        up = client.get("/health/ready")
        assert (up.status_code, up.json()["status"], up.json()["checks"]) == (
            200,
            "ok",
            {"catalog": {"status": "up"}, "lake": {"status": "up"}},
        )
        proxy.stop()
        down = client.get("/health/ready")
        assert down.status_code == 200
        assert down.json() == {
            "status": "degraded",
            "checks": {
                "catalog": {"status": "down", "detail": "the catalog database cannot be reached"},
                "lake": {"status": "up"},
            },
            "lake_version": up.json()["lake_version"],
            "engine": "serving",
        }
        assert str(proxy.directory) not in down.text
        assert ".s.PGSQL" not in down.text
        assert (client.get(POINT).status_code, client.get("/health/live").status_code) == (
            200,
            200,
        )
        assert _problem(client.get("/v1/exchanges")) == (503, "catalog-unavailable")


def test_readiness_reports_an_unanswering_catalog_without_waiting_for_it(
    sample_lake: lake.LakeSettings, pg_url: str, seeded: Engine
) -> None:
    with proxied_postgres(pg_url) as (proxy, url):
        engine = sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 120})
        try:
            with TestClient(_app(sample_lake, engine, mode="none")) as client:
                assert client.get("/health/ready").json()["checks"]["catalog"] == {"status": "up"}
                proxy.hang()  # connects now hang for 120 s; the kubelet waits 5 s
                ready = client.get("/health/ready")
                assert ready.status_code == 200
                assert ready.json()["status"] == "degraded"
                assert ready.json()["checks"] == {
                    "catalog": {
                        "status": "down",
                        "detail": "the catalog database did not answer within 3 s",
                    },
                    "lake": {"status": "up"},
                }
        finally:
            proxy.stop()
            engine.dispose()


# -- rate-limit identity and failed authentications -------------------------------------------


def test_a_made_up_credential_per_request_gets_no_fresh_bucket(
    sample_lake: lake.LakeSettings, seeded: Engine
) -> None:
    # one token a minute: no refill can land between these requests, however slow the machine
    app = _app(
        sample_lake, seeded, rate_limit_per_minute=1, rate_limit_burst=3, auth_failure_burst=50
    )
    with TestClient(app) as client:
        answers = [
            _problem(client.get(POINT, headers={"X-API-Key": f"sd_made-up-{i}"})) for i in range(6)
        ] + [
            _problem(client.get(POINT, headers={"Authorization": f"Bearer sd_other-{i}"}))
            for i in range(2)
        ]
    assert answers == [(401, "unauthorized")] * 3 + [(429, "rate-limited")] * 5


def test_a_hundred_wrong_keys_are_throttled_per_address(
    sample_lake: lake.LakeSettings, seeded: Engine
) -> None:
    good = _key(seeded, "dashboard")
    app = _app(
        sample_lake,
        seeded,
        rate_limit_per_minute=6000,
        rate_limit_burst=1000,
        auth_failures_per_minute=1,  # no refill can land within the test
    )
    with TestClient(app) as client:
        answers = [
            _problem(client.get(POINT, headers={"X-API-Key": f"sd_guess-{i:03d}"}))
            for i in range(100)
        ]
        # the address is throttled for failures: even a good key waits (it is not checked)
        after = client.get(POINT, headers={"X-API-Key": good})
        # probes never read credentials and are never throttled
        ready = client.get("/health/live", headers={"X-API-Key": "sd_guess-x"})
    assert answers == [(401, "unauthorized")] * 10 + [(429, "auth-throttled")] * 90
    assert _problem(after) == (429, "auth-throttled")
    retry_after = int(after.headers["retry-after"])  # 60 s less the time the test took
    assert 1 <= retry_after <= 60
    assert after.json()["detail"] == (
        f"too many failed authentications from this address; retry in {retry_after} s"
    )
    assert ready.status_code == 200


@pytest.mark.parametrize(
    "spellings",
    [
        ["Bearer {k}", "Bearer  {k}  ", "bearer {k}", "BEARER\t{k}"],
        ["X:{k}", "X: {k} ", "Bearer {k}", "X:{k}\t"],
    ],
    ids=["authorization", "x-api-key-and-authorization"],
)
def test_one_key_however_spelled_is_one_bucket_and_another_key_has_its_own(
    sample_lake: lake.LakeSettings, seeded: Engine, spellings: list[str]
) -> None:
    key, other = _key(seeded, "dashboard"), _key(seeded, "notebook")

    def headers(spelling: str, raw: str) -> dict[str, str]:
        if spelling.startswith("X:"):
            return {"X-API-Key": spelling[2:].format(k=raw)}
        return {"Authorization": spelling.format(k=raw)}

    app = _app(sample_lake, seeded, rate_limit_per_minute=1, rate_limit_burst=3)
    with TestClient(app) as client:
        statuses = [client.get(POINT, headers=headers(s, key)).status_code for s in spellings]
        theirs = client.get(POINT, headers={"X-API-Key": other})
        anonymous = client.get(POINT)
    assert statuses == [200, 200, 200, 429]
    assert (theirs.status_code, theirs.headers["ratelimit-remaining"]) == (200, "2")
    # no credential: the address's own bucket, untouched by the keys' requests
    assert (_problem(anonymous), anonymous.headers["ratelimit-remaining"]) == (
        (401, "unauthorized"),
        "2",
    )


# -- credential size and caching ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "header", "value"),
    [
        ("api-key", "X-API-Key", "sd_" + "a" * (MAX_CREDENTIAL_CHARS - 2)),
        ("api-key", "Authorization", "Bearer sd_" + "a" * 100_000),
        ("jwt", "Authorization", "Bearer " + "e" * 4095 + "." + "a" * 10 + "." + "b" * 10),
    ],
    ids=["4k-x-api-key", "100k-bearer-key", "4k-jwt"],
)
def test_an_oversized_credential_is_401_problem(
    sample_lake: lake.LakeSettings, seeded: Engine, mode: str, header: str, value: str
) -> None:
    if mode == "jwt":
        auth = AuthSettings(
            auth_mode="jwt",
            jwt_jwks_url="http://127.0.0.1:1/jwks.json",
            jwt_audience="https://api.stockdata.dev",
            jwt_issuer="https://issuer.example/",
        )
        app = create_app(
            api_settings(),
            lake_settings=sample_lake,
            engine=seeded,
            auth_settings=auth,
            security_settings=SecuritySettings(rate_limit_per_minute=0),
            sql=False,
            access_logs=False,
        )
    else:
        app = _app(sample_lake, seeded)
    with TestClient(app) as client:
        response = client.get(POINT, headers={header: value})
    assert _problem(response) == (401, "unauthorized")
    assert response.json()["detail"] == (
        f"the {header.lower()} header is longer than {MAX_CREDENTIAL_CHARS} characters; "
        "it is not a credential this API issues"
    )


def test_authenticated_answers_are_private_and_anonymous_ones_public(
    sample_lake: lake.LakeSettings, seeded: Engine
) -> None:
    key = _key(seeded, "dashboard")
    with TestClient(_app(sample_lake, seeded)) as client:
        urls = [
            POINT,
            "/v1/eod/MSFT/latest",
            "/v1/eod/MSFT/delta?days=21",
            "/v1/eod?date=2008-10-10",
        ]
        controls = [
            client.get(u, headers={"X-API-Key": key}).headers["cache-control"] for u in urls
        ]
        repeat = client.get(POINT, headers={"X-API-Key": key})  # a response-cache hit
        catalog_route = client.get("/v1/exchanges", headers={"X-API-Key": key})
    assert controls == ["private, max-age=30"] * 4
    assert repeat.headers["cache-control"] == "private, max-age=30"
    assert "public" not in catalog_route.headers.get("cache-control", "")
    with TestClient(_app(sample_lake, seeded, mode="none")) as client:
        assert client.get(POINT).headers["cache-control"] == "public, max-age=30"


# -- 404 and 405 pass through every layer ------------------------------------------------------

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "content-security-policy": API_CSP,
}


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("GET", "/nope", (404, "not-found")),
        ("GET", "/v1/nope/../../etc/passwd", (404, "not-found")),
        ("POST", "/v1/eod/MSFT", (405, "method-not-allowed")),
        ("DELETE", "/v1/exchanges", (405, "method-not-allowed")),
    ],
)
def test_404_and_405_carry_headers_request_id_metrics_and_are_rate_limited(
    sample_lake: lake.LakeSettings,
    seeded: Engine,
    method: str,
    url: str,
    expected: tuple[int, str],
) -> None:
    app = _app(sample_lake, seeded, mode="none", rate_limit_per_minute=1, rate_limit_burst=2)
    with TestClient(app) as client:
        first = client.request(method, url, headers={"X-Request-ID": "attack-1"})
        second = client.request(method, url)
        third = client.request(method, url)
        scrape = client.get("/metrics").text
    assert _problem(first) == expected
    for name, value in SECURITY_HEADERS.items():
        assert first.headers[name] == value, name
    assert first.headers["x-request-id"] == "attack-1"
    assert (first.headers["ratelimit-remaining"], second.headers["ratelimit-remaining"]) == (
        "1",
        "0",
    )
    assert _problem(third) == (429, "rate-limited")
    assert third.headers["x-request-id"] != "attack-1"
    assert third.headers["x-content-type-options"] == "nosniff"
    status = expected[0]
    assert (
        f'stockdata_api_request_seconds_count{{method="{method}",route="unmatched",'
        f'status="{status}"}} 2.0' in scrape
    )
    assert (
        f'stockdata_api_request_seconds_count{{method="{method}",route="unmatched",'
        f'status="429"}} 1.0' in scrape
    )


def test_404_and_405_are_in_the_access_log(sample_lake: lake.LakeSettings, seeded: Engine) -> None:
    app = create_app(
        api_settings(),
        lake_settings=sample_lake,
        engine=seeded,
        security_settings=SecuritySettings(rate_limit_per_minute=0),
        sql=False,
        access_logs=True,
    )
    with log_lines("INFO") as buffer, TestClient(app) as client:
        client.get("/nope")
        client.post("/v1/eod/MSFT")
    events = [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    seen = [(e["path"], e["status"], e["route"]) for e in events if e["event"] == "request"]
    assert seen == [("/nope", 404, "unmatched"), ("/v1/eod/MSFT", 405, "unmatched")]
