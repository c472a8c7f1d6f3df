"""Each auth mode with good and bad credentials: catalog API keys and RS256 JWTs via JWKS."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import anyio
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

import catalog
from catalog import Role
from query_api._auth import (
    AuthSettings,
    JwtAuthenticator,
    Principal,
    build_authenticator,
    require_role,
)
from stockdata.errors import (
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    StockDataError,
    TransientError,
)
from tests import _services
from tests.stubs.jwks import AUDIENCE, ISSUER, JwksServer, SigningKey


def _auth(authenticator: object, headers: Mapping[str, str]) -> Principal:
    result: Principal = anyio.run(authenticator.authenticate, headers)  # type: ignore[attr-defined]
    return result


def _refused(authenticator: object, headers: Mapping[str, str]) -> StockDataError:
    with pytest.raises(StockDataError) as caught:
        _auth(authenticator, headers)
    return caught.value


# -- none -----------------------------------------------------------------------------------


def test_none_mode_is_an_anonymous_analyst() -> None:
    authenticator = build_authenticator(AuthSettings(), engine=None)
    assert _auth(authenticator, {}) == Principal("anonymous", Role.ANALYST, "none")
    require_role(_auth(authenticator, {}), Role.ANALYST)


def test_none_mode_is_refused_in_prod() -> None:
    with pytest.raises(ConfigurationError) as caught:
        build_authenticator(AuthSettings(profile="prod"), engine=None)
    assert str(caught.value) == (
        "STOCKDATA_AUTH_MODE=none is refused when STOCKDATA_PROFILE=prod: use api-key or jwt"
    )


# -- api keys -------------------------------------------------------------------------------


@pytest.fixture
def keys(db: Engine) -> dict[str, str]:
    with catalog.session_scope(db) as s:
        _, reader = catalog.create_api_key(s, name="dashboard", role=Role.READER)
        _, analyst = catalog.create_api_key(s, name="notebook", role=Role.ANALYST)
        revoked_key, revoked = catalog.create_api_key(s, name="old", role=Role.ADMIN)
        catalog.revoke_api_key(s, revoked_key.id)
    return {"reader": reader, "analyst": analyst, "revoked": revoked}


def test_api_keys_from_the_catalog(db: Engine, keys: dict[str, str]) -> None:
    auth = build_authenticator(
        AuthSettings(auth_mode="api-key", api_key_cache_seconds=0), engine=db
    )
    reader = _auth(auth, {"Authorization": f"Bearer {keys['reader']}"})
    assert reader == Principal("dashboard", Role.READER, "api-key")
    analyst = _auth(auth, {"x-api-key": keys["analyst"]})
    assert analyst == Principal("notebook", Role.ANALYST, "api-key")

    require_role(analyst, Role.ANALYST)
    with pytest.raises(PermissionDeniedError) as denied:
        require_role(reader, Role.ANALYST)
    assert (denied.value.http_status, denied.value.code) == (403, "forbidden")
    assert str(denied.value) == "this needs the analyst role; the caller has reader"

    with catalog.session_scope(db) as s:
        used = {k.name: k.last_used_at is not None for k in catalog.list_api_keys(s)}
    assert used == {"dashboard": True, "notebook": True, "old": False}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "an API key is required: send 'Authorization: Bearer sd_...' or 'X-API-Key: sd_...'"),
        ({"Authorization": "Bearer sd_not-a-real-key"}, "the API key is unknown or revoked"),
        ({"X-API-Key": "not-our-format"}, "the API key is malformed; keys start with 'sd_'"),
        (
            {"Authorization": "Basic dXNlcjpwYXNz"},
            "the Authorization header must be 'Bearer <credentials>'",
        ),
    ],
)
def test_bad_api_keys_are_401(db: Engine, headers: dict[str, str], message: str) -> None:
    auth = build_authenticator(AuthSettings(auth_mode="api-key"), engine=db)
    error = _refused(auth, headers)
    assert (type(error), error.http_status, error.code, str(error)) == (
        AuthenticationError,
        401,
        "unauthorized",
        message,
    )


def test_a_revoked_key_is_401(db: Engine, keys: dict[str, str]) -> None:
    auth = build_authenticator(AuthSettings(auth_mode="api-key"), engine=db)
    error = _refused(auth, {"X-API-Key": keys["revoked"]})
    assert (error.http_status, str(error)) == (401, "the API key is unknown or revoked")


def test_a_key_revoked_after_use_is_refused_once_the_cache_expires(
    db: Engine, keys: dict[str, str]
) -> None:
    auth = build_authenticator(
        AuthSettings(auth_mode="api-key", api_key_cache_seconds=0), engine=db
    )
    assert _auth(auth, {"X-API-Key": keys["reader"]}).subject == "dashboard"
    with catalog.session_scope(db) as s:
        key = next(k for k in catalog.list_api_keys(s) if k.name == "dashboard")
        catalog.revoke_api_key(s, key.id)
    assert _refused(auth, {"X-API-Key": keys["reader"]}).http_status == 401


def test_catalog_down_is_503_not_401(pg_url: str) -> None:
    url = sa.engine.make_url(pg_url).set(port=_services.free_port())
    engine = sa.create_engine(url, pool_pre_ping=False)
    try:
        auth = build_authenticator(AuthSettings(auth_mode="api-key"), engine=engine)
        error = _refused(auth, {"X-API-Key": "sd_whatever"})
        assert (type(error), error.http_status, error.code) == (
            TransientError,
            503,
            "auth-unavailable",
        )
    finally:
        engine.dispose()


# -- JWT ------------------------------------------------------------------------------------


@pytest.fixture
def idp() -> Iterator[JwksServer]:
    with JwksServer() as server:
        yield server


def _jwt_settings(idp: JwksServer, **overrides: object) -> AuthSettings:
    return AuthSettings(
        auth_mode="jwt",
        jwt_jwks_url=idp.jwks_url,
        jwt_audience=AUDIENCE,
        jwt_issuer=ISSUER,
        **overrides,  # type: ignore[arg-type]
    )


def _jwt(idp: JwksServer, **overrides: object) -> JwtAuthenticator:
    auth = build_authenticator(_jwt_settings(idp, **overrides), engine=None)
    assert isinstance(auth, JwtAuthenticator)
    return auth


def _tamper(token: str) -> str:
    header, body, signature = token.split(".")
    return f"{header}.{body}.{signature[::-1]}"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_good_rs256_token_carries_its_role(idp: JwksServer) -> None:
    auth = _jwt(idp)
    token = idp.token(extra={"https://stockdata.dev/role": "analyst"})
    assert _auth(auth, _bearer(token)) == Principal("auth0|alice", Role.ANALYST, "jwt")
    rbac = idp.token(sub="auth0|bob", permissions=["read:things", "stockdata:admin"])
    assert _auth(auth, _bearer(rbac)) == Principal("auth0|bob", Role.ADMIN, "jwt")
    scoped = idp.token(sub="client@clients", scope="openid stockdata:analyst")
    assert _auth(auth, _bearer(scoped)) == Principal("client@clients", Role.ANALYST, "jwt")
    plain = idp.token(sub="auth0|carol")
    assert _auth(auth, _bearer(plain)) == Principal("auth0|carol", Role.READER, "jwt")
    assert idp.requests == 1


@pytest.mark.parametrize(
    ("forge", "message"),
    [
        (lambda idp: idp.unsigned_token(), "token algorithm 'none' is not allowed; use RS256"),
        (
            lambda idp: idp.hs256_with_public_key(),
            "token algorithm 'HS256' is not allowed; use RS256",
        ),
        (lambda idp: idp.token(expires_in=-3600), "the token has expired"),
        (lambda idp: idp.token(aud="https://other.api"), "the token's audience is not this API"),
        (
            lambda idp: idp.token(iss="https://evil.example.com/"),
            "the token's issuer is not trusted",
        ),
        (
            lambda idp: idp.token(key=SigningKey("rotated-away")),
            "the token's signing key is unknown",
        ),
        (
            lambda idp: (
                idp.token()[:-8] + ("A" * 8 if not idp.token().endswith("A" * 8) else "B" * 8)
            ),
            "the token's signature or claims are invalid",
        ),
        (lambda idp: "not.a.jwt", "the bearer token is not a well-formed JWT"),
        (
            lambda idp: idp.token(extra={"https://stockdata.dev/role": "root"}),
            "the token's role 'root' is unknown",
        ),
    ],
)
def test_bad_tokens_are_refused(idp: JwksServer, forge: object, message: str) -> None:
    auth = _jwt(idp)
    error = _refused(auth, _bearer(forge(idp)))  # type: ignore[operator]
    assert str(error) == message
    expected = 403 if "role" in message else 401
    assert error.http_status == expected


def test_a_missing_token_is_401(idp: JwksServer) -> None:
    error = _refused(_jwt(idp), {})
    assert (error.http_status, str(error)) == (
        401,
        "a bearer token is required: send 'Authorization: Bearer ...'",
    )
    assert error.fields == {"headers": {"WWW-Authenticate": 'Bearer realm="stockdata"'}}
    expired = _refused(_jwt(idp), _bearer(idp.token(expires_in=-3600)))
    assert expired.fields == {
        "headers": {"WWW-Authenticate": 'Bearer realm="stockdata", error="invalid_token"'}
    }


def test_unknown_kids_cannot_force_jwks_fetches(idp: JwksServer) -> None:
    auth = _jwt(idp, jwks_min_refresh_seconds=3600)
    assert _auth(auth, _bearer(idp.token())).subject == "auth0|alice"
    for i in range(25):
        error = _refused(auth, _bearer(idp.token(key=SigningKey(f"attacker-{i % 2}"))))
        assert str(error) == "the token's signing key is unknown"
    assert idp.requests == 1
    assert auth.jwks.fetches == 1


def test_a_rotated_key_is_picked_up_by_one_refetch(idp: JwksServer) -> None:
    auth = _jwt(idp, jwks_min_refresh_seconds=0)
    assert _auth(auth, _bearer(idp.token())).subject == "auth0|alice"
    rotated = SigningKey("test-key-2")
    idp.publish(idp.key, rotated)
    for _ in range(3):
        assert _auth(auth, _bearer(idp.token(key=rotated, sub="auth0|dave"))).subject == (
            "auth0|dave"
        )
    assert idp.requests == 2


def test_jwks_down_is_503_and_attempts_are_bounded() -> None:
    with JwksServer() as idp:
        settings = _jwt_settings(idp, jwks_min_refresh_seconds=3600)
        token = idp.token()
    auth = build_authenticator(settings, engine=None)
    assert isinstance(auth, JwtAuthenticator)
    for _ in range(5):
        error = _refused(auth, _bearer(token))
        assert (type(error), error.http_status, error.code) == (
            TransientError,
            503,
            "jwks-unavailable",
        )
    assert auth.jwks.fetches == 1


def test_jwt_mode_needs_its_settings() -> None:
    with pytest.raises(ConfigurationError) as caught:
        build_authenticator(AuthSettings(auth_mode="jwt"), engine=None)
    assert str(caught.value) == (
        "STOCKDATA_AUTH_MODE=jwt needs STOCKDATA_JWT_JWKS_URL, STOCKDATA_JWT_AUDIENCE, "
        "STOCKDATA_JWT_ISSUER"
    )
