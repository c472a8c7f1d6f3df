"""Operations: request ids and access logs, latency metrics, health and Prometheus routes."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from typing import Any, Literal

import anyio
import anyio.to_thread
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
log = get_logger(__name__)
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
    """The process is healthy: its event loop answers (also the framework floor in benchmarks).

    Nothing outside the process is checked: a catalog or lake outage must not get pods
    restarted (the kubelet's liveness probe reads this).
    """
    return m.Live(status="ok")


#: What a health body says about a part that is down: never a host, socket path or credential.
CATALOG_DOWN = "the catalog database cannot be reached"
LAKE_DOWN = "the lake cannot be read"


#: How long readiness waits for the catalog: under the kubelet probe's 5 s timeout, so an
#: unanswering Postgres (a partition: connects hang for DATABASE_CONNECT_TIMEOUT) is
#: reported as down instead of failing the probe, with room for a loaded node's slow answer.
CATALOG_CHECK_SECONDS = 3.0
CATALOG_SLOW = "the catalog database did not answer within 3 s"


def _catalog_up(services: Services) -> None:
    with services.catalog.session() as session:
        session.execute(sa.text("SELECT 1"))


@get(
    "/health/ready",
    summary="Readiness",
    tags=["health"],
    responses={
        503: ResponseSpec(
            data_container=m.Health,
            description="Not ready: this pod cannot read the lake. `checks` names what is down.",
        )
    },
)
async def ready(request: Request[Any, Any, Any]) -> Response[m.Health]:
    """Ready when this pod can answer reads (the lake); the catalog's state is reported.

    200 `ok`, or 200 `degraded` when only the catalog is down (EoD, delta and SQL reads
    still answer: ADR 0004), 503 `unavailable` when the lake cannot be read. The catalog
    check gets at most `CATALOG_CHECK_SECONDS`.
    """
    services: Services = request.app.state.services
    catalog = m.Check(status="down", detail=CATALOG_SLOW)
    with anyio.move_on_after(CATALOG_CHECK_SECONDS):
        try:
            # abandoned (left to finish in its thread) when it takes too long
            await anyio.to_thread.run_sync(_catalog_up, services, abandon_on_cancel=True)
            catalog = m.Check(status="up")
        except (StockDataError, sa.exc.SQLAlchemyError) as exc:
            log.warning("ready_catalog_down", error=scrub_text(_first_line(exc)))
            catalog = m.Check(status="down", detail=CATALOG_DOWN)
    version = None
    try:
        version = await anyio.to_thread.run_sync(services.store.ping)
        lake = m.Check(status="up")
    except StockDataError as exc:
        log.warning("ready_lake_down", error=scrub_text(exc.message))
        lake = m.Check(status="down", detail=LAKE_DOWN)
    lake_up = lake.status == "up"
    status: Literal["ok", "degraded", "unavailable"] = (
        "unavailable" if not lake_up else "ok" if catalog.status == "up" else "degraded"
    )
    body = m.Health(
        status=status,
        checks={"catalog": catalog, "lake": lake},
        lake_version=version,
        engine=services.store.engine(),  # informational: serving form or duckdb
    )
    return Response(
        body, status_code=200 if lake_up else 503, headers={"Cache-Control": "no-store"}
    )


def _first_line(exc: Exception) -> str:
    text = exc.message if isinstance(exc, StockDataError) else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


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
