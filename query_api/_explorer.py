"""The explorer page at `/` and Swagger UI at `/docs`, both from files the API serves itself.

The chart library (lightweight-charts) and Swagger UI come from their npm packages, copied into
`query_api/static/vendor/` by the install step (`make assets`); nothing loads from a CDN, so
both pages work with no internet. Their scripts are files, never inline, so the pages' CSP
(`PAGE_CSP`, `DOCS_CSP` in `_hardening`) allows scripts from 'self' only.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import CacheControlHeader
from litestar.enums import MediaType
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from query_api._flags import SQL_API
from query_api._settings import ApiSettings
from query_api._state import Services
from stockdata.logs import get_logger

log = get_logger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: The files `make assets` copies from node_modules; the pages need every one.
VENDOR_FILES = (
    "lightweight-charts.standalone.production.js",
    "swagger-ui-bundle.js",
    "swagger-ui.css",
)

_DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{static}/vendor/swagger-ui.css">
<link rel="stylesheet" href="{static}/docs.css">
</head>
<body>
<div id="swagger-ui" data-spec-url="{spec}"></div>
<script src="{static}/vendor/swagger-ui-bundle.js"></script>
<script src="{static}/docs.js"></script>
</body>
</html>
"""


def missing_assets() -> list[str]:
    """The vendor files that are not there (run `make assets`)."""
    return [name for name in VENDOR_FILES if not (STATIC_DIR / "vendor" / name).is_file()]


@functools.lru_cache(maxsize=1)
def _index_template() -> str:
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")


def render_index(settings: ApiSettings, *, sql: bool) -> bytes:
    """The explorer page, with the limits the page needs to split its requests."""
    page = _index_template()
    for name, value in (
        ("max_page", str(settings.api_max_page_size)),
        ("max_years", str(settings.api_max_range_years)),
        ("sql", "on" if sql else "off"),
    ):
        page = page.replace("{{" + name + "}}", value)
    return page.encode()


class LocalSwaggerUI(OpenAPIRenderPlugin):
    """Swagger UI from the API's own static files, started by a script file (no inline JS)."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        # Absolute paths: the page answers at /docs and /docs/ alike.
        spec = self.get_openapi_json_route(request)
        title = str(openapi_schema.get("info", {}).get("title", "API"))
        html = _DOCS_HTML.format(
            title=title.replace("&", "&amp;").replace("<", "&lt;"),
            static="/static",
            spec=spec,
        )
        return html.encode()


def explorer_routes(settings: ApiSettings) -> list[ControllerRouterHandler]:
    """`GET /` (the explorer page) and `/static/*` (its scripts, styles and vendor files)."""
    missing = missing_assets()
    if missing:
        log.warning("explorer_assets_missing", files=missing, fix="make assets")

    @get("/", include_in_schema=False, media_type=MediaType.HTML, sync_to_thread=False)
    def explorer(request: Request[Any, Any, Any]) -> Response[bytes]:
        services: Services = request.app.state.services
        sql = services.sandbox is not None and services.flags.is_enabled(SQL_API)
        return Response(
            render_index(settings, sql=sql),
            media_type=MediaType.HTML,
            headers={"Cache-Control": "no-cache"},
        )

    # Litestar's static files answer no 304s: let browsers keep them a few minutes.
    static = create_static_files_router(
        path="/static",
        directories=[STATIC_DIR],
        include_in_schema=False,
        name="explorer-static",
        cache_control=CacheControlHeader(max_age=300),
    )
    return [explorer, static]


__all__ = ["STATIC_DIR", "LocalSwaggerUI", "explorer_routes", "missing_assets", "render_index"]
