"""The HTTP routes: /v1 (versioned) and the two legacy routes, one module per area.

Handlers are built per app by `build_routes(settings)` so that schema limits (page size, delta
days) come from the settings the app was created with and the OpenAPI document states them.
"""

from litestar import Router
from litestar.types import ControllerRouterHandler

from query_api._respond import allow_head
from query_api._settings import ApiSettings
from query_api.routes import actions, catalog, deltas, eod, legacy, movers, sql
from query_api.routes._guard import authorize, guard


def build_routes(settings: ApiSettings) -> list[ControllerRouterHandler]:
    """Every route of the app, with limits taken from `settings`."""
    v1_handlers = [
        *catalog.handlers(settings),
        *eod.handlers(settings),
        *deltas.handlers(settings),
        *movers.handlers(settings),
        *actions.handlers(),
        *sql.handlers(),
    ]
    legacy_handlers = legacy.handlers(settings)
    allow_head([*v1_handlers, *legacy_handlers])  # GET routes only: not the SQL POST
    v1 = Router(path="/v1", route_handlers=v1_handlers, before_request=authorize)
    legacy_router = Router(path="/", route_handlers=legacy_handlers, before_request=authorize)
    return [v1, legacy_router]


__all__ = ["authorize", "build_routes", "guard"]
