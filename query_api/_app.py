"""The app factory: the one place that wires settings, the lake, the catalog and security."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Server
from sqlalchemy.engine import Engine

from catalog import DatabaseSettings
from lake import LakeSettings
from query_api._data import EodStore
from query_api._metrics import ApiMetrics
from query_api._ops import RequestContextMiddleware, live, metrics, ready
from query_api._problems import handle_exception
from query_api._respond import Responder, ResponseCache
from query_api._routes import build_routes
from query_api._settings import ApiSettings
from query_api._state import AllEnabled, Authenticator, CatalogAccess, Flags, Services
from stockdata import __version__

DESCRIPTION = """End-of-day stock prices from the stockdata lake (Delta tables read by DuckDB).

Errors are RFC 9457 `application/problem+json` documents whose `type` is
`https://stockdata.dev/problems/{code}`. Data responses carry an `ETag` (lake version +
request) and answer `304` to a matching `If-None-Match`.
"""


def create_app(
    settings: ApiSettings | None = None,
    *,
    lake_settings: LakeSettings | None = None,
    database_settings: DatabaseSettings | None = None,
    engine: Engine | None = None,
    flags: Flags | None = None,
    authenticator: Authenticator | None = None,
    sandbox: Any = None,
    access_logs: bool = True,
) -> Litestar:
    """Build the Litestar app; nothing is connected until the app starts (its lifespan)."""
    settings = settings or ApiSettings()
    lake_settings = lake_settings or LakeSettings()
    if engine is None and database_settings is None:
        database_settings = DatabaseSettings()
    metrics_ = ApiMetrics()
    store = EodStore(lake_settings, settings, metrics=metrics_)
    cache = ResponseCache(
        entries=settings.api_cache_entries, max_age=settings.api_staleness_seconds
    )
    services = Services(
        settings=settings,
        store=store,
        catalog=CatalogAccess(database_settings, engine=engine),
        metrics=metrics_,
        responder=Responder(cache, metrics_, max_age=settings.api_staleness_seconds),
        flags=flags or AllEnabled(),
        authenticator=authenticator,
        sandbox=sandbox,
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(store.start)
        if services.sandbox is not None and hasattr(services.sandbox, "start"):
            await anyio.to_thread.run_sync(services.sandbox.start)
        try:
            yield
        finally:
            if services.sandbox is not None and hasattr(services.sandbox, "close"):
                await anyio.to_thread.run_sync(services.sandbox.close)
            services.flags.close()
            store.close()
            services.catalog.close()

    openapi = OpenAPIConfig(
        title="stockdata API",
        version=__version__,
        description=DESCRIPTION,
        path="/docs",
        servers=[Server(url="/")],
        render_plugins=[SwaggerRenderPlugin(path="/"), JsonRenderPlugin()],
        create_examples=False,
    )
    app = Litestar(
        route_handlers=[*build_routes(settings), live, ready, metrics],
        openapi_config=openapi,
        exception_handlers={Exception: handle_exception},
        middleware=[RequestContextMiddleware(access_logs=access_logs)],
        lifespan=[lifespan],
        state=None,
        debug=False,
    )
    app.state.services = services
    return app
