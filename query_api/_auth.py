"""Who is calling: no auth (embedded), API keys from the catalog, or Auth0-style RS256 JWTs.

Modes (`STOCKDATA_AUTH_MODE`):

- `none`: every caller is the anonymous principal with `STOCKDATA_AUTH_ANONYMOUS_ROLE`
  (analyst by default, so the embedded demo can use SQL). Refused when the profile is prod.
- `api-key`: `Authorization: Bearer sd_...` or `X-API-Key: sd_...`, checked against the
  SHA-256 digests in the catalog (`stockdata catalog api-key create --role ...`). A verified
  key is remembered for `STOCKDATA_API_KEY_CACHE_SECONDS`: a revocation takes at most that
  long, and through a Postgres outage exactly the keys verified within that window keep
  working; any other key (a revoked one, one verified longer ago) gets 503 `auth-unavailable`.
- `jwt`: `Authorization: Bearer <JWT>` signed RS256 by a key from `STOCKDATA_JWT_JWKS_URL`
  (e.g. `https://TENANT.auth0.com/.well-known/jwks.json`), with `aud` and `iss` checked.
  Only RS256 is accepted (no `none`, no HS256 with the public key as the secret). The JWKS is
  cached for `STOCKDATA_JWKS_CACHE_SECONDS` and fetched in a worker thread at most once per
  `STOCKDATA_JWKS_MIN_REFRESH_SECONDS`, however many unknown `kid`s arrive. When the JWKS
  cannot be fetched and no cached key fits, the answer is 503 `jwks-unavailable`.

A credential longer than `MAX_CREDENTIAL_CHARS` is refused (401) before it is parsed.
`AuthMiddleware` authenticates once per request, outside the router, so the rate limiter
can key by the verified identity and failed attempts are throttled per client address.

The role of a token comes from, in order: the claim `STOCKDATA_JWT_ROLE_CLAIM` (default
`https://stockdata.dev/role`, a string: reader/analyst/admin), then Auth0 RBAC `permissions`
or the `scope` string holding `stockdata:reader|analyst|admin` (the highest wins); a valid
token with none of them is a reader.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import anyio.to_thread
import httpx
import jwt
from jwt.api_jwk import PyJWK
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from pydantic import Field
from sqlalchemy.engine import Engine

import catalog
from catalog import Role
from query_api._hardening import (
    SecuritySettings,
    TokenBuckets,
    client_address,
    problem_body,
    send_problem,
)
from stockdata.config import StockdataSettings
from stockdata.errors import (
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    TransientError,
)
from stockdata.logs import get_logger, scrub_url

log = get_logger(__name__)

AuthMode = Literal["none", "api-key", "jwt"]
#: The claim holding a role name, unless STOCKDATA_JWT_ROLE_CLAIM says otherwise.
DEFAULT_ROLE_CLAIM = "https://stockdata.dev/role"
#: Entries of `permissions` / `scope` that grant a role.
PERMISSION_PREFIX = "stockdata:"
#: Raw API keys start with this (catalog.create_api_key).
API_KEY_PREFIX = "sd_"
#: Longest credential header value read (a JWT with many permissions is ~2 KB; keys are ~50).
MAX_CREDENTIAL_CHARS = 4096


class AuthSettings(StockdataSettings):
    """How the API authenticates callers."""

    auth_mode: AuthMode = Field(
        default="none", description="none (embedded), api-key (catalog keys) or jwt (RS256/JWKS)."
    )
    auth_anonymous_role: Role = Field(
        default=Role.ANALYST, description="Role of every caller when auth_mode is none."
    )
    api_key_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a verified API key is remembered (revocation delay at most this).",
    )
    jwt_jwks_url: str | None = Field(
        default=None, description="JWKS URL, e.g. https://TENANT.auth0.com/.well-known/jwks.json."
    )
    jwt_audience: str | None = Field(default=None, description="Expected `aud` (API identifier).")
    jwt_issuer: str | None = Field(
        default=None, description="Expected `iss`, e.g. https://TENANT.auth0.com/."
    )
    jwt_leeway_seconds: int = Field(
        default=30, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat."
    )
    jwt_role_claim: str = Field(
        default=DEFAULT_ROLE_CLAIM, description="Claim holding the caller's role name."
    )
    jwks_cache_seconds: float = Field(
        default=3600.0, gt=0, description="How long fetched signing keys are trusted."
    )
    jwks_min_refresh_seconds: float = Field(
        default=60.0,
        ge=0,
        description="At most one JWKS fetch per this interval (unknown kids cannot force more).",
    )
    jwks_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Timeout of one JWKS request."
    )


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a subject (key name, token `sub`) and its role."""

    subject: str
    role: Role
    scheme: Literal["none", "api-key", "jwt"] = "none"


class Authenticator(Protocol):
    """Turns request headers into a Principal or raises AuthenticationError (401)."""

    async def authenticate(self, headers: Mapping[str, str]) -> Principal: ...


def require_role(principal: Principal, role: Role) -> None:
    """Raise PermissionDeniedError (403) unless the principal's role is at least `role`."""
    if principal.role.rank < role.rank:
        raise PermissionDeniedError(
            f"this needs the {role.value} role; the caller has {principal.role.value}"
        )


def _unauthorized(message: str, *, invalid: bool = True) -> AuthenticationError:
    """A 401 whose WWW-Authenticate follows RFC 6750 (the problem handler copies `headers`)."""
    challenge = 'Bearer realm="stockdata"' + (', error="invalid_token"' if invalid else "")
    return AuthenticationError(message, headers={"WWW-Authenticate": challenge})


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _capped(headers: dict[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None and len(value) > MAX_CREDENTIAL_CHARS:
        raise _unauthorized(
            f"the {name} header is longer than {MAX_CREDENTIAL_CHARS} characters; "
            "it is not a credential this API issues"
        )
    return value


def _bearer(headers: dict[str, str]) -> str | None:
    value = _capped(headers, "authorization")
    if value is None:
        return None
    # any run of whitespace separates the scheme (case-insensitive) from the credential
    parts = value.split(maxsplit=1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise _unauthorized("the Authorization header must be 'Bearer <credentials>'")
    return parts[1].strip()


# -- none -----------------------------------------------------------------------------------


class AnonymousAuthenticator:
    """Every caller is `anonymous` with the configured role."""

    def __init__(self, role: Role) -> None:
        self._principal = Principal("anonymous", role, "none")

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        return self._principal


# -- api keys -------------------------------------------------------------------------------


class ApiKeyAuthenticator:
    """API keys verified against the catalog's digests; verified keys cached briefly."""

    def __init__(self, engine: Engine, *, cache_seconds: float) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def _verify(self, raw: str) -> Principal | None:
        with catalog.session_scope(self._engine) as session:
            key = catalog.verify_api_key(session, raw)
            if key is None:
                return None
            return Principal(key.name, Role(key.role), "api-key")

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        lower = _lower(headers)
        raw = _bearer(lower) or (_capped(lower, "x-api-key") or "").strip() or None
        if raw is None:
            raise _unauthorized(
                "an API key is required: send 'Authorization: Bearer sd_...' or 'X-API-Key: sd_...'",
                invalid=False,
            )
        if not raw.startswith(API_KEY_PREFIX) or len(raw) > 200:
            raise _unauthorized("the API key is malformed; keys start with 'sd_'")
        digest = hashlib.sha256(raw.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self._cache_seconds:
            return hit[1]
        try:
            principal = await anyio.to_thread.run_sync(self._verify, raw)
        except Exception as exc:  # the guard raises it inside the router, where the
            # No stale answers: past the cache window the catalog alone says whether a key
            # still stands, and a revoked key must not outlive the window by an outage.
            log.warning("api_key_check_failed", error=type(exc).__name__)
            raise TransientError(
                "API keys cannot be checked right now (catalog unreachable); retry shortly",
                code="auth-unavailable",
                retry_after=5.0,
            ) from exc
        if principal is None:
            with self._lock:
                self._cache.pop(digest, None)
            raise _unauthorized("the API key is unknown or revoked")
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, principal)
        return principal


# -- JWT ------------------------------------------------------------------------------------


class JwksCache:
    """Signing keys from a JWKS URL: cached, refreshed at a bounded rate, fetched in a thread."""

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float,
        min_refresh_seconds: float,
        timeout_seconds: float,
    ) -> None:
        self.url = url
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh_seconds
        self._timeout = timeout_seconds
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        #: JWKS requests made (for operations and tests).
        self.fetches = 0

    def _fetch(self) -> dict[str, PyJWK]:
        response = httpx.get(self.url, timeout=self._timeout, follow_redirects=False)
        response.raise_for_status()
        document = response.json()
        keys: dict[str, PyJWK] = {}
        for entry in document.get("keys", []):
            if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig" or "kid" not in entry:
                continue
            if entry.get("alg", "RS256") != "RS256":
                continue
            try:
                keys[str(entry["kid"])] = PyJWK(entry, algorithm="RS256")
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                log.warning("jwks_key_skipped", kid=str(entry.get("kid")))
        return keys

    def _refresh_if_allowed(self, *, force: bool) -> None:
        """Refetch if the cache expired (or `force`) and the rate bound allows it.

        Runs in a worker thread. `_fetch_lock` serialises fetches; `_lock` only guards the
        state and is never held during I/O, so the event loop never waits on a fetch.
        """
        with self._fetch_lock:
            with self._lock:
                now = time.monotonic()
                fresh = (
                    self._fetched_at is not None and now - self._fetched_at < self._cache_seconds
                )
                if fresh and not force:
                    return
                if self._attempted_at is not None and now - self._attempted_at < self._min_refresh:
                    return
                self._attempted_at = now
                self.fetches += 1
            try:
                keys = self._fetch()
            except (httpx.HTTPError, ValueError, json.JSONDecodeError) as exc:
                log.warning("jwks_fetch_failed", url=scrub_url(self.url), error=type(exc).__name__)
                return
            with self._lock:
                self._keys = keys
                self._fetched_at = time.monotonic()
            log.info("jwks_fetched", url=scrub_url(self.url), kids=sorted(keys))

    def _lookup(self, kid: str) -> PyJWK | None:
        self._refresh_if_allowed(force=False)
        with self._lock:
            key = self._keys.get(kid)
        if key is not None:
            return key
        self._refresh_if_allowed(force=True)
        with self._lock:
            key = self._keys.get(kid)
            reachable = self._fetched_at is not None
        if key is None and not reachable:
            raise TransientError(
                "the token signing keys cannot be fetched right now; retry shortly",
                code="jwks-unavailable",
                retry_after=self._min_refresh or 1.0,
            )
        return key

    async def key(self, kid: str) -> PyJWK | None:
        """The signing key `kid`, or None if the (fresh enough) JWKS does not have it."""
        with self._lock:
            now = time.monotonic()
            fresh = self._fetched_at is not None and now - self._fetched_at < self._cache_seconds
            cached = self._keys.get(kid) if fresh else None
        if cached is not None:
            return cached
        return await anyio.to_thread.run_sync(self._lookup, kid)


def _role_from_claims(claims: Mapping[str, Any], role_claim: str) -> Role:
    value = claims.get(role_claim)
    if value is not None:
        try:
            return Role(str(value).lower())
        except ValueError:
            raise PermissionDeniedError(
                f"the token's role {str(value)[:32]!r} is unknown"
            ) from None
    granted: list[str] = []
    permissions = claims.get("permissions")
    if isinstance(permissions, list):
        granted.extend(str(p) for p in permissions)
    scope = claims.get("scope")
    if isinstance(scope, str):
        granted.extend(scope.split())
    roles = [
        Role(name)
        for entry in granted
        if entry.startswith(PERMISSION_PREFIX)
        and (name := entry[len(PERMISSION_PREFIX) :]) in {r.value for r in Role}
    ]
    return max(roles, key=lambda r: r.rank, default=Role.READER)


class JwtAuthenticator:
    """RS256 bearer tokens checked against a JWKS, an audience and an issuer."""

    def __init__(self, settings: AuthSettings) -> None:
        missing = [
            name
            for name in ("jwt_jwks_url", "jwt_audience", "jwt_issuer")
            if not getattr(settings, name)
        ]
        if missing:
            raise ConfigurationError(
                "STOCKDATA_AUTH_MODE=jwt needs "
                + ", ".join(f"STOCKDATA_{m.upper()}" for m in missing)
            )
        assert settings.jwt_jwks_url and settings.jwt_audience and settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._leeway = settings.jwt_leeway_seconds
        self._role_claim = settings.jwt_role_claim
        self.jwks = JwksCache(
            settings.jwt_jwks_url,
            cache_seconds=settings.jwks_cache_seconds,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
            timeout_seconds=settings.jwks_timeout_seconds,
        )

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        token = _bearer(_lower(headers))
        if token is None:
            raise _unauthorized(
                "a bearer token is required: send 'Authorization: Bearer ...'", invalid=False
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _unauthorized("the bearer token is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg != "RS256":
            raise _unauthorized(f"token algorithm {str(alg)[:16]!r} is not allowed; use RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _unauthorized("the token has no key id (kid)")
        key = await self.jwks.key(kid)
        if key is None:
            raise _unauthorized("the token's signing key is unknown")
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=["RS256"],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise _unauthorized("the token's audience is not this API") from None
        except jwt.InvalidIssuerError:
            raise _unauthorized("the token's issuer is not trusted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthorized(f"the token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError:
            raise _unauthorized("the token's signature or claims are invalid") from None
        role = _role_from_claims(claims, self._role_claim)
        return Principal(str(claims["sub"]), role, "jwt")


# -- once per request, for every answer ---------------------------------------------------

#: Header names that carry a credential.
_CREDENTIAL_HEADERS = (b"authorization", b"x-api-key")


def _first_values(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in raw:
        out.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return out


class AuthMiddleware(ASGIMiddleware):
    """Authenticate a presented credential once, outside the router, for every answer.

    It leaves in `scope["state"]` either `principal` (and `identity`, the rate limiter's
    bucket key: `scheme:subject`) or `auth_error`, which the routes' guard raises, so a 404
    or an open route (/docs) with a bad credential is answered as usual but still counts as
    a failed attempt. A client address past `AUTH_FAILURE_BURST` failed attempts (refilled
    at `AUTH_FAILURES_PER_MINUTE`) gets 429 `auth-throttled` without its credential being
    checked: a flood of guessed keys costs neither catalog queries nor signature checks.
    Answers to an authenticated request are `Cache-Control: private`.

    Not installed in `none` mode (every caller is anonymous; credentials are not read).
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, authenticator: Authenticator, settings: SecuritySettings) -> None:
        self._authenticator = authenticator
        self._trust_forwarded = settings.trust_forwarded_for
        self._exempt = tuple(settings.rate_limit_exempt_paths)
        self.failures = (
            TokenBuckets(
                per_minute=settings.auth_failures_per_minute,
                burst=settings.auth_failure_burst,
                max_keys=settings.rate_limit_max_clients,
            )
            if settings.auth_failures_per_minute > 0
            else None
        )

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        raw = scope["headers"]
        if not any(name in _CREDENTIAL_HEADERS for name, _ in raw):
            await next_app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        if any(path == p or path.startswith(p.rstrip("/") + "/") for p in self._exempt):
            await next_app(scope, receive, send)  # probes and scrapes read no credential
            return
        address = client_address(scope, trust_forwarded=self._trust_forwarded)
        if self.failures is not None:
            tokens, wait = self.failures.available(address)
            if tokens < 1.0:
                retry_after = max(1, math.ceil(wait))
                body = problem_body(
                    429,
                    "auth-throttled",
                    "Too Many Requests",
                    f"too many failed authentications from this address; retry in {retry_after} s",
                    path,
                )
                await send_problem(
                    send,
                    status=429,
                    body=body,
                    headers=[(b"retry-after", str(retry_after).encode())],
                )
                return
        state = scope.setdefault("state", {})
        try:
            principal = await self._authenticator.authenticate(_first_values(raw))
        except Exception as exc:  # the guard raises it inside the router, where the
            # one exception handler answers it (this layer sits outside the handler)
            state["auth_error"] = exc
            if isinstance(exc, AuthenticationError) and self.failures is not None:
                self.failures.charge(address)
            await next_app(scope, receive, send)
            return
        state["principal"] = principal
        state["identity"] = f"{principal.scheme}:{principal.subject}"

        async def send_private(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, b"private" + value[6:])
                    if name.lower() == b"cache-control" and value.startswith(b"public")
                    else (name, value)
                    for name, value in message.get("headers", ())
                ]
            await send(message)

        await next_app(scope, receive, send_private)


def build_authenticator(settings: AuthSettings, *, engine: Engine | None) -> Authenticator:
    """The authenticator for `settings.auth_mode` (api-key mode needs the catalog engine)."""
    if settings.auth_mode == "none":
        if settings.profile == "prod":
            raise ConfigurationError(
                "STOCKDATA_AUTH_MODE=none is refused when STOCKDATA_PROFILE=prod: use api-key or jwt"
            )
        return AnonymousAuthenticator(settings.auth_anonymous_role)
    if settings.auth_mode == "api-key":
        if engine is None:
            raise ConfigurationError("STOCKDATA_AUTH_MODE=api-key needs the catalog database")
        return ApiKeyAuthenticator(engine, cache_seconds=settings.api_key_cache_seconds)
    return JwtAuthenticator(settings)
