"""Operations: request ids and access logs, latency metrics, health and Prometheus routes."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from typing import Any

import sqlalchemy as sa
from litestar import MediaType, Request, Response, get
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from query_api import _models as m
from query_api._state import Services
from stockdata.errors import StockDataError
from stockdata.logs import get_logger, scrub_text

access_log = get_logger("query_api.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


class RequestContextMiddleware(ASGIMiddleware):
    """X-Request-ID in (if well-formed) or new; echoed back; one access-log event; latency.

    Per request it does no more than it must: new request ids are a per-process random prefix
    plus a counter (unique, 32 hex digits, no UUID object), the latency histogram child is
    bound once per (route, method, status), and the access logger is resolved once.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, *, access_logs: bool = True) -> None:
        self.access_logs = access_logs
        self._prefix = secrets.token_hex(8)
        self._seq = itertools.count(1)
        self._log: Any = None

    def _logger(self) -> Any:
        # Bound on first use (after `configure_logging`), not through the lazy proxy per call.
        if self._log is None:
            self._log = access_log.bind()
        return self._log

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        start = time.perf_counter()
        incoming = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        if incoming and _REQUEST_ID.match(incoming):
            request_id = incoming
        else:
            request_id = f"{self._prefix}{next(self._seq):016x}"
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers")
                message["headers"] = [*headers, header] if headers else [header]
            await send(message)

        try:
            await next_app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("path_template") or "unmatched"
            method = str(scope.get("method", "GET"))
            services: Services | None = getattr(scope["app"].state, "services", None)
            if services is not None:
                services.metrics.observe_request(route, method, status, elapsed)
            if self.access_logs:
                self._logger().info(
                    "request",
                    method=method,
                    path=scope["path"],
                    route=route,
                    status=status,
                    ms=round(elapsed * 1000, 3),
                    request_id=request_id,
                    client=(scope.get("client") or ("-",))[0],
                )


@get(
    "/health/live", summary="Liveness", tags=["health"], include_in_schema=True, cache_control=None
)
async def live() -> m.Live:
    """The process is up (the trivial JSON route; also the framework floor in benchmarks)."""
    return m.Live(status="ok")


@get(
    "/health/ready",
    summary="Readiness",
    tags=["health"],
    sync_to_thread=True,
    responses={
        503: ResponseSpec(
            data_container=m.Health, description="Not ready: `checks` names what is down."
        )
    },
)
def ready(request: Request[Any, Any, Any]) -> Response[m.Health]:
    """Catalog and lake reachable; 503 naming what is down."""
    services: Services = request.app.state.services
    checks: dict[str, m.Check] = {}
    version = None
    try:
        with services.catalog.session() as session:
            session.execute(sa.text("SELECT 1"))
        checks["catalog"] = m.Check(status="up")
    except (StockDataError, sa.exc.SQLAlchemyError) as exc:
        detail = exc.message if isinstance(exc, StockDataError) else str(exc).splitlines()[0]
        checks["catalog"] = m.Check(status="down", detail=scrub_text(detail))
    try:
        version = services.store.ping()
        checks["lake"] = m.Check(status="up")
    except StockDataError as exc:
        checks["lake"] = m.Check(status="down", detail=scrub_text(exc.message))
    ok = all(c.status == "up" for c in checks.values())
    body = m.Health(status="ok" if ok else "unavailable", checks=checks, lake_version=version)
    return Response(body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})


@get(
    "/metrics",
    summary="Prometheus metrics",
    tags=["health"],
    media_type=MediaType.TEXT,
    include_in_schema=False,
)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    services: Services = request.app.state.services
    return Response(
        services.metrics.render(),
        media_type="text/plain; version=0.0.4; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )
