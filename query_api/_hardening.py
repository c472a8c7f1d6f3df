"""HTTP hardening for the Litestar app: CORS, hosts, security headers, rate limits, body size.

Wire-up (the app factory does this): `cors_config(security)` goes to Litestar, and the
layers wrap the app's ASGI handler, around its router and exception handler, outermost
first: request context, `SecurityHeadersMiddleware`, `AllowedHostsMiddleware`,
`AuthMiddleware` (query_api._auth), `RateLimitMiddleware`, `BodySizeLimitMiddleware`.
Litestar runs `Litestar(middleware=...)` only after routing, so its own 404 and 405
answers would skip them; wrapped outside, every answer passes through every layer. Also
here: `SqlGate`, which keeps slow SQL off the shared thread pool.

The rate limiter keys a request by the identity `AuthMiddleware` authenticated (one bucket
per API key or token subject), or else by the client address (the rightmost
`X-Forwarded-For` entry when `STOCKDATA_TRUST_FORWARDED_FOR=true`, i.e. the address our
ingress saw): a credential that has not been verified never gets a bucket of its own.
Buckets are in memory, per process: with N workers the effective limit is up to N times
the setting, which is why the ingress should keep its own coarse limit.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import anyio
import anyio.to_thread
from litestar.config.cors import CORSConfig
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from pydantic import Field

from stockdata.config import StockdataSettings, StrList
from stockdata.errors import TransientError

PROBLEM_BASE = "https://stockdata.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

#: The path of Swagger UI (the API's own copy, see query_api/_explorer.py).
DOCS_PATH = "/docs"
#: The path of the explorer page.
EXPLORER_PATH = "/"

#: A CSP for JSON/CSV/Arrow responses: nothing may load, nothing may frame them.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: The CSP of the explorer page: its own scripts, styles and API, nothing inline, nothing else.
PAGE_CSP = (
    "default-src 'none'; "
    "script-src 'self'; "
    "style-src 'self'; "
    "img-src 'self' data:; "
    "connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
#: The CSP of the docs page: Swagger UI from 'self' (no inline script); it sets inline styles.
DOCS_CSP = (
    "default-src 'none'; "
    "script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; "
    "img-src 'self' data:; "
    "connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class SecuritySettings(StockdataSettings):
    """CORS, hosts, headers, rate limits and request size of the API."""

    cors_origins: StrList = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser (comma-separated or a "
        "JSON list); empty = no CORS.",
    )
    allowed_hosts: StrList = Field(
        default_factory=lambda: ["*"],
        description="Host names accepted in the Host header (comma-separated or a JSON list; "
        "'*.example.com' matches subdomains; any port); '*' = any. /health and /metrics are "
        "exempt (kubelet probes and scrapes address the pod).",
    )
    hsts_seconds: int = Field(
        default=31_536_000, ge=0, description="Strict-Transport-Security max-age; 0 = no header."
    )
    rate_limit_per_minute: int = Field(
        default=600, ge=0, description="Sustained requests per minute per key or client; 0 = off."
    )
    rate_limit_burst: int = Field(
        default=60, ge=1, description="Requests a key or client may make at once (bucket size)."
    )
    rate_limit_exempt_paths: StrList = Field(
        default_factory=lambda: ["/health", "/metrics"],
        description="Path prefixes never rate limited (probes and scrapes).",
    )
    rate_limit_max_clients: int = Field(
        default=100_000, ge=100, description="Buckets kept in memory before idle ones are dropped."
    )
    trust_forwarded_for: bool = Field(
        default=False,
        description="Key anonymous clients by the rightmost X-Forwarded-For address (behind "
        "our ingress only).",
    )
    auth_failures_per_minute: int = Field(
        default=10,
        ge=0,
        description="Failed authentications a client address may make per minute once its "
        "burst is spent (429 auth-throttled beyond); 0 = off.",
    )
    auth_failure_burst: int = Field(
        default=10, ge=1, description="Failed authentications a client address may make at once."
    )
    max_request_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest request body accepted (413 beyond)."
    )

    @property
    def checks_hosts(self) -> bool:
        """Whether the Host header is checked (allowed_hosts is set and is not '*')."""
        return bool(self.allowed_hosts) and "*" not in self.allowed_hosts


def cors_config(settings: SecuritySettings) -> CORSConfig | None:
    """CORS for the configured origins only; None (no CORS headers at all) when there are none."""
    if not settings.cors_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "X-API-Key", "Content-Type", "Accept", "If-None-Match"],
        expose_headers=[
            "ETag",
            "X-Request-ID",
            "Retry-After",
            "RateLimit-Limit",
            "RateLimit-Remaining",
            "RateLimit-Reset",
            "RateLimit-Policy",
        ],
        allow_credentials=False,
        max_age=600,
    )


#: Paths answered whatever the Host header says: kubelet probes and Prometheus scrapes address
#: the pod by IP, not by the public host name.
HOST_CHECK_EXEMPT = ("/health/", "/metrics")


class AllowedHostsMiddleware(ASGIMiddleware):
    """400 problem+json (`invalid-host`) when the Host header names another host.

    The host name is compared without its port; `*.example.com` matches any subdomain of
    example.com (not example.com itself); `*` accepts any host (no check at all).
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, settings: SecuritySettings) -> None:
        hosts = settings.allowed_hosts
        self._pattern: re.Pattern[str] | None = None
        if settings.checks_hosts:
            alternatives = sorted(
                r"[a-z0-9-]+(?:\.[a-z0-9-]+)*\." + re.escape(h[2:])
                if h.startswith("*.")
                else re.escape(h)
                for h in (host.strip().lower() for host in hosts)
            )
            self._pattern = re.compile("|".join(alternatives))

    def allowed(self, scope: Scope) -> bool:
        if self._pattern is None:
            return True
        path = str(scope.get("path", ""))
        if path.startswith(HOST_CHECK_EXEMPT):
            return True
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value.decode("latin-1").strip().lower()
                if host.startswith("["):  # an IPv6 literal: [::1]:8000
                    name_only = host.partition("]")[0] + "]"
                else:
                    name_only = host.rpartition(":")[0] if ":" in host else host
                return bool(name_only) and self._pattern.fullmatch(name_only) is not None
        return False

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if self.allowed(scope):
            await next_app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        body = problem_body(
            400,
            "invalid-host",
            "Bad Request",
            "the Host header names a host this API does not serve",
            path,
        )
        await send_problem(send, status=400, body=body)


def problem_body(status: int, code: str, title: str, detail: str, path: str) -> bytes:
    return json.dumps(
        {
            "type": PROBLEM_BASE + code,
            "title": title,
            "status": status,
            "detail": detail,
            "instance": path,
        }
    ).encode()


async def send_problem(
    send: Send,
    *,
    status: int,
    body: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class SecurityHeadersMiddleware(ASGIMiddleware):
    """HSTS, nosniff, no framing (CSP frame-ancestors + X-Frame-Options), no referrer, a CSP."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, settings: SecuritySettings) -> None:
        base = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-site"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]
        if settings.hsts_seconds:
            base.append(
                (
                    b"strict-transport-security",
                    f"max-age={settings.hsts_seconds}; includeSubDomains".encode(),
                )
            )
        self._api = [*base, (b"content-security-policy", API_CSP.encode())]
        self._docs = [*base, (b"content-security-policy", DOCS_CSP.encode())]
        self._page = [*base, (b"content-security-policy", PAGE_CSP.encode())]

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        path = str(scope.get("path", ""))
        if path == EXPLORER_PATH:
            extra = self._page
        elif path == DOCS_PATH or path.startswith(DOCS_PATH + "/"):
            extra = self._docs
        else:
            extra = self._api

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Raw header pairs: one set lookup per header instead of a parsed-headers scan.
                raw = list(message.get("headers", ()))
                present = {name.lower() for name, _ in raw}
                raw.extend(pair for pair in extra if pair[0] not in present)
                message["headers"] = raw
            await send(message)

        await next_app(scope, receive, send_wrapper)


class TokenBuckets:
    """In-memory token buckets: `rate` tokens per second up to `burst`, one bucket per key."""

    def __init__(self, *, per_minute: int, burst: int, max_keys: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, *, now: float | None = None) -> tuple[bool, float, float]:
        """Take one token: (allowed, tokens left, seconds until the next token)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, stamp = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            if key not in self._buckets and len(self._buckets) >= self.max_keys:
                self._prune(now)
            self._buckets[key] = (tokens, now)
        wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
        return allowed, tokens, wait

    def available(self, key: str, *, now: float | None = None) -> tuple[float, float]:
        """(tokens the bucket holds now, seconds until it holds one) without taking any."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, stamp = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
        return tokens, 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def charge(self, key: str, *, now: float | None = None) -> None:
        """Take one token even from an empty bucket (down to -burst): a debt refilled later.

        Failures are counted after they happen, so concurrent ones can overdraw a bucket;
        the debt keeps the client throttled for as long as it overdrew.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, stamp = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
            if key not in self._buckets and len(self._buckets) >= self.max_keys:
                self._prune(now)
            self._buckets[key] = (max(-float(self.burst), tokens - 1.0), now)

    def seconds_to_full(self, tokens: float) -> float:
        return (self.burst - tokens) / self.rate if self.rate else 0.0

    def _prune(self, now: float) -> None:
        full_after = self.burst / self.rate if self.rate else 0.0
        idle = [k for k, (_, stamp) in self._buckets.items() if now - stamp >= full_after]
        for key in idle:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()


def client_address(scope: Scope, *, trust_forwarded: bool) -> str:
    """The caller's address: the socket peer, or our ingress's rightmost X-Forwarded-For entry."""
    if trust_forwarded:
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-for":
                last = value.decode("latin-1").split(",")[-1].strip()
                if last:
                    return last[:64]
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware(ASGIMiddleware):
    """429 problem+json past a token bucket per identity or client; RateLimit-* on every answer."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, settings: SecuritySettings) -> None:
        self._enabled = settings.rate_limit_per_minute > 0
        self._exempt = tuple(settings.rate_limit_exempt_paths)
        self._trust_forwarded = settings.trust_forwarded_for
        self._limit = settings.rate_limit_per_minute
        self._policy = f"{settings.rate_limit_per_minute};w=60;burst={settings.rate_limit_burst}"
        self.buckets = TokenBuckets(
            per_minute=max(1, settings.rate_limit_per_minute),
            burst=settings.rate_limit_burst,
            max_keys=settings.rate_limit_max_clients,
        )

    def client_key(self, scope: Scope) -> str:
        """The bucket of a request: its authenticated identity, or its client address."""
        identity = scope.get("state", {}).get("identity")
        if identity is not None:
            return "id:" + str(identity)
        return "ip:" + client_address(scope, trust_forwarded=self._trust_forwarded)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        path = str(scope.get("path", ""))
        if not self._enabled or any(
            path == p or path.startswith(p.rstrip("/") + "/") for p in self._exempt
        ):
            await next_app(scope, receive, send)
            return
        allowed, tokens, wait = self.buckets.take(self.client_key(scope))
        headers = [
            (b"ratelimit-limit", str(self._limit).encode()),
            (b"ratelimit-remaining", str(math.floor(tokens)).encode()),
            (b"ratelimit-reset", str(math.ceil(self.buckets.seconds_to_full(tokens))).encode()),
            (b"ratelimit-policy", self._policy.encode()),
        ]
        if not allowed:
            retry_after = max(1, math.ceil(wait))
            body = problem_body(
                429,
                "rate-limited",
                "Too Many Requests",
                f"rate limit of {self._limit} requests per minute exceeded; retry in "
                f"{retry_after} s",
                path,
            )
            await send_problem(
                send,
                status=429,
                body=body,
                headers=[*headers, (b"retry-after", str(retry_after).encode())],
            )
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await next_app(scope, receive, send_wrapper)


class BodySizeLimitMiddleware(ASGIMiddleware):
    """413 problem+json, before any handler runs, for a declared body over `max_request_bytes`.

    Chunked bodies without a Content-Length are bounded by Litestar's own
    `request_max_body_size` (set it to the same value): it raises a 413 while reading.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, settings: SecuritySettings) -> None:
        self._max = settings.max_request_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self._max + 1
                if declared > self._max:
                    path = str(scope.get("path", ""))
                    detail = f"the request body is larger than {self._max} bytes"
                    body = problem_body(413, "request-too-large", "Content Too Large", detail, path)
                    await send_problem(send, status=413, body=body)
                    return
                break
        await next_app(scope, receive, send)


T = TypeVar("T")


class SqlGate:
    """Runs blocking SQL calls on a bounded limiter of their own, never the shared thread pool.

    At most `workers` calls hold a thread (one per sandbox worker: more could only wait for a
    worker inside a thread); up to `queue` more wait on the event loop, at no thread's cost,
    for at most `wait_seconds`; beyond that, or after that wait, 503 `sql-busy` with
    Retry-After. However many slow queries arrive, health, catalog and lake routes keep the
    default thread pool (anyio's 40 threads) to themselves.
    """

    def __init__(self, *, workers: int, queue: int, wait_seconds: float) -> None:
        self.workers = workers
        self.queue = queue
        self._wait = wait_seconds
        self._slots: anyio.CapacityLimiter | None = None
        self._threads: anyio.CapacityLimiter | None = None
        #: calls running or waiting (only touched on the event loop)
        self.inflight = 0

    def _busy(self) -> TransientError:
        return TransientError(
            f"all {self.workers} SQL workers are busy and {self.queue} queries are waiting; "
            "retry shortly",
            code="sql-busy",
            retry_after=1.0,
        )

    async def run(self, fn: Callable[[], T]) -> T:
        """`fn()` in a thread of the SQL limiter, or TransientError `sql-busy`."""
        if self._slots is None or self._threads is None:
            # made on first use, inside the event loop that serves the app
            self._slots = anyio.CapacityLimiter(self.workers)
            self._threads = anyio.CapacityLimiter(self.workers)
        if self.inflight >= self.workers + self.queue:
            raise self._busy()
        self.inflight += 1
        try:
            acquired = False
            with anyio.move_on_after(self._wait):
                await self._slots.acquire()
                acquired = True
            if not acquired:
                raise self._busy()
            try:
                return await anyio.to_thread.run_sync(fn, limiter=self._threads)
            finally:
                self._slots.release()
        finally:
            self.inflight -= 1
