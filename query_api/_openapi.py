"""The finishing touches of the OpenAPI document that route decorators cannot state.

Every data route answers in several media types, carries validators and rate-limit headers,
and pages or streams; the security scheme follows the configured auth mode; `servers` is the
public URL; HEAD (implied by every GET, RFC 9110) is not listed twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Schema,
    SecurityScheme,
    Server,
)

from query_api._respond import _MEDIA, Format


@dataclass(frozen=True, slots=True)
class Shape:
    """What one operation answers besides JSON: formats, pages (Link), streams (attachment)."""

    formats: tuple[Format, ...] = ("json",)
    paged: bool = False
    streamed: bool = False
    data: bool = True


#: Every operation by its hand-named operationId (set on the route decorators).
SHAPES: dict[str, Shape] = {
    "listExchanges": Shape(data=False),
    "getExchange": Shape(data=False),
    "searchTickers": Shape(paged=True, data=False),
    "getTicker": Shape(data=False),
    "getEodBars": Shape(("json", "csv", "arrow", "parquet"), paged=True, streamed=True),
    "getEodHistory": Shape(("json", "csv", "arrow", "parquet"), paged=True, streamed=True),
    "getLatestBar": Shape(("json", "csv")),
    "getEodOnDate": Shape(("json", "csv", "arrow", "parquet"), paged=True, streamed=True),
    "getDelta": Shape(("json", "csv", "arrow"), paged=True),
    "getMovers": Shape(("json", "csv", "arrow")),
    "getActions": Shape(("json", "csv", "arrow")),
    "runSql": Shape(("json", "csv", "arrow"), data=False),
    "getLatestBarLegacy": Shape(("json", "csv")),
    "getDeltaLegacy": Shape(("json", "csv", "arrow")),
}


def _header(description: str, kind: OpenAPIType = OpenAPIType.STRING) -> OpenAPIHeader:
    return OpenAPIHeader(schema=Schema(type=kind), description=description)


_RATE_HEADERS = {
    "RateLimit-Limit": _header("Requests allowed per minute.", OpenAPIType.INTEGER),
    "RateLimit-Remaining": _header("Requests left in the window.", OpenAPIType.INTEGER),
    "RateLimit-Reset": _header("Seconds until the bucket is full.", OpenAPIType.INTEGER),
    "RateLimit-Policy": _header("The policy, e.g. `600;w=60;burst=60`."),
}
_DATA_HEADERS = {
    "ETag": _header("Lake version + request digest; send it back in `If-None-Match`."),
    "Cache-Control": _header("`public, max-age=N` (N: the API's staleness bound)."),
}
_PAGE_HEADERS = {
    "X-Total-Count": _header("Rows in the whole answer.", OpenAPIType.INTEGER),
    "Link": _header('RFC 8288 links to the `rel="next"` and `rel="prev"` pages.'),
}
_STREAM_HEADERS = {
    "Content-Disposition": _header("`attachment; filename=...` on a streamed download."),
}


def finish_openapi(app: Litestar, *, auth_mode: str, public_url: str) -> OpenAPI:
    """Build the app's OpenAPI document now and complete it in place (it is served as is)."""
    doc = app.plugins.get(OpenAPIPlugin).provide_openapi()
    doc.servers = [Server(url=public_url, description="This API")]
    components = doc.components if isinstance(doc.components, Components) else Components()
    if auth_mode == "api-key":
        components.security_schemes = {
            "apiKey": SecurityScheme(
                type="apiKey",
                name="X-API-Key",
                security_scheme_in="header",
                description="An API key (`stockdata catalog api-key create`).",
            )
        }
        doc.security = [{"apiKey": []}]
    elif auth_mode == "jwt":
        components.security_schemes = {
            "bearer": SecurityScheme(
                type="http",
                scheme="bearer",
                bearer_format="JWT",
                description="An RS256 JWT from the configured issuer.",
            )
        }
        doc.security = [{"bearer": []}]
    doc.components = components
    for item in (doc.paths or {}).values():
        item.head = None
        operation = item.get
        if isinstance(operation, Operation):
            _complete(operation)
        if isinstance(item.post, Operation):
            _complete(item.post)
    return doc


def _complete(operation: Operation) -> None:
    shape = SHAPES.get(operation.operation_id or "")
    if shape is None or operation.responses is None:
        return
    ok = operation.responses.get("200")
    if not isinstance(ok, OpenAPIResponse):
        return
    content = dict(ok.content or {})
    for fmt in shape.formats:
        media = _MEDIA[fmt]
        if media not in content:
            content[media] = OpenAPIMediaType(
                schema=Schema(
                    type=OpenAPIType.STRING,
                    description=f"The rows as {fmt.upper()} (the JSON `data` fields as columns).",
                )
            )
    ok.content = content
    headers = dict(ok.headers or {})
    headers.update(_RATE_HEADERS)
    if shape.data:
        headers.update(_DATA_HEADERS)
    if shape.paged:
        headers.update(_PAGE_HEADERS)
    if shape.streamed:
        headers.update(_STREAM_HEADERS)
    ok.headers = headers  # type: ignore[assignment]
