"""The app factory: the one place that wires settings, the lake, the catalog and security."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from litestar import Litestar
from litestar.middleware import ASGIMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Server
from sqlalchemy.engine import Engine

from catalog import DatabaseSettings
from lake import LakeSettings
from query_api import _models as m
from query_api._auth import (
    AnonymousAuthenticator,
    Authenticator,
    AuthMiddleware,
    AuthSettings,
    build_authenticator,
)
from query_api._data import EodStore
from query_api._explorer import LocalSwaggerUI, explorer_routes
from query_api._flags import FeatureFlags, FlagSettings, build_flags
from query_api._hardening import (
    AllowedHostsMiddleware,
    BodySizeLimitMiddleware,
    RateLimitMiddleware,
    SecurityHeadersMiddleware,
    SecuritySettings,
    SqlGate,
    cors_config,
)
from query_api._metrics import ApiMetrics
from query_api._openapi import finish_openapi
from query_api._ops import RequestContextMiddleware, live, metrics, ready
from query_api._problems import handle_exception
from query_api._respond import HeadMiddleware, Responder, ResponseCache, allow_head
from query_api._sandbox import SqlSandbox, SqlSettings
from query_api._settings import ApiSettings
from query_api._state import CatalogAccess, Services
from query_api.routes import build_routes
from stockdata import __version__
from stockdata.logs import get_logger

log = get_logger(__name__)

#: SQL queries that may wait (on the event loop, holding no thread) per sandbox worker.
SQL_QUEUE_PER_WORKER = 4

DESCRIPTION = """End-of-day stock prices from the stockdata lake (Delta tables read by DuckDB).

Errors are RFC 9457 `application/problem+json` documents whose `type` is
`https://stockdata.dev/problems/{code}`. Data responses carry an `ETag` (lake version +
request) and answer `304` to a matching `If-None-Match`. Authentication (when enabled):
`X-API-Key: sd_...` or `Authorization: Bearer <JWT>`.
"""


def _forbid_unknown_fields(app: Litestar) -> None:
    """Say in the OpenAPI document what msgspec enforces: request bodies take no other field.

    Litestar's schema for a Struct leaves `additionalProperties` open even when the Struct
    has `forbid_unknown_fields=True`, so clients (and schemathesis) would read an unknown
    field as allowed and then get a 400.
    """
    schemas = app.openapi_schema.components.schemas or {}
    for struct in (m.SqlRequest,):
        if struct.__struct_config__.forbid_unknown_fields and struct.__name__ in schemas:
            schemas[struct.__name__].additional_properties = False


def create_app(
    settings: ApiSettings | None = None,
    *,
    lake_settings: LakeSettings | None = None,
    database_settings: DatabaseSettings | None = None,
    engine: Engine | None = None,
    flag_settings: FlagSettings | None = None,
    auth_settings: AuthSettings | None = None,
    sql_settings: SqlSettings | None = None,
    security_settings: SecuritySettings | None = None,
    flags: FeatureFlags | None = None,
    authenticator: Authenticator | None = None,
    sql: bool = True,
    access_logs: bool = True,
    freeze_gc: bool = False,
) -> Litestar:
    """Build the Litestar app. Unset settings come from the environment (STOCKDATA_*).

    The lake reader, the catalog engine and the SQL workers start in the app's lifespan, and
    the catalog is optional at run time: EoD and delta reads answer from the lake alone.
    `freeze_gc` (the server process: `stockdata serve`) moves everything start-up built
    into the collector's permanent generation once the app is ready.
    """
    settings = settings or ApiSettings()
    lake_settings = lake_settings or LakeSettings()
    security = security_settings or SecuritySettings()
    if engine is None and database_settings is None:
        database_settings = DatabaseSettings()
    metrics_ = ApiMetrics(
        shared_dir=Path(settings.api_metrics_dir) if settings.api_metrics_dir else None
    )
    store = EodStore(lake_settings, settings, metrics=metrics_)
    metrics_.engine_fn = store.engine
    catalog_access = CatalogAccess(database_settings, engine=engine)
    auth = auth_settings or AuthSettings()
    sql_limits = sql_settings or SqlSettings()
    if authenticator is None:
        needs_engine = auth.auth_mode == "api-key"
        authenticator = build_authenticator(
            auth, engine=catalog_access.engine() if needs_engine else None
        )
    services = Services(
        settings=settings,
        store=store,
        catalog=catalog_access,
        metrics=metrics_,
        responder=Responder(
            ResponseCache(
                entries=settings.api_cache_entries,
                max_age=settings.api_staleness_seconds,
                max_bytes=settings.api_cache_mb << 20,
            ),
            metrics_,
            max_age=settings.api_staleness_seconds,
            revision=store.actions_revision,
        ),
        flags=flags or build_flags(flag_settings or FlagSettings()),
        authenticator=authenticator,
        sandbox=SqlSandbox(lake_settings, sql_limits) if sql else None,
        sql_gate=SqlGate(
            workers=sql_limits.sql_workers,
            queue=SQL_QUEUE_PER_WORKER * sql_limits.sql_workers,
            wait_seconds=sql_limits.sql_timeout_seconds,
        ),
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(store.start)
        metrics_.start_sharing()
        if services.sandbox is not None:
            await anyio.to_thread.run_sync(services.sandbox.start)
        if freeze_gc:
            # What start-up built (the app, the serving form's Python objects, imported modules)
            # lives as long as the process: out of the collector's reach, a full collection
            # no longer walks it in the middle of a request.
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if services.sandbox is not None:
                await anyio.to_thread.run_sync(services.sandbox.close)
            services.flags.close()
            metrics_.stop_sharing()
            store.close()
            services.catalog.close()

    openapi = OpenAPIConfig(
        title="stockdata API",
        version=__version__,
        description=DESCRIPTION,
        path="/docs",
        servers=[Server(url="/")],
        render_plugins=[LocalSwaggerUI(path="/"), JsonRenderPlugin()],
    )
    allow_head([live, ready, metrics])
    app = Litestar(
        route_handlers=[*build_routes(settings), *explorer_routes(settings), live, ready, metrics],
        openapi_config=openapi,
        exception_handlers={Exception: handle_exception},
        cors_config=cors_config(security),
        request_max_body_size=security.max_request_bytes,
        lifespan=[lifespan],
        debug=False,
    )
    app.state.services = services
    _forbid_unknown_fields(app)
    finish_openapi(app, auth_mode=auth.auth_mode, public_url=settings.api_public_url)
    # Litestar runs app-level `middleware=` inside each route, after routing: its own 404 and
    # 405 answers would skip them. Wrapped around the router (and its exception handler)
    # instead, every answer passes through every layer.
    edge: list[ASGIMiddleware] = [
        RequestContextMiddleware(access_logs=access_logs),
        SecurityHeadersMiddleware(security),
        # no layer at all when any host is allowed (the default)
        *([AllowedHostsMiddleware(security)] if security.checks_hosts else []),
        # none mode reads no credential: nothing to verify or throttle
        *(
            []
            if isinstance(authenticator, AnonymousAuthenticator)
            else [AuthMiddleware(authenticator, security)]
        ),
        RateLimitMiddleware(security),
        BodySizeLimitMiddleware(security),
        HeadMiddleware(),
    ]
    handler = app.asgi_handler
    for layer in reversed(edge):
        handler = layer(handler)
    app.asgi_handler = handler
    return app
