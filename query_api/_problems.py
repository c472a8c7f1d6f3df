"""The one exception handler: every error becomes RFC 9457 application/problem+json."""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from stockdata.errors import AuthenticationError, RateLimitedError, StockDataError, TransientError
from stockdata.logs import get_logger, scrub_text

log = get_logger(__name__)

PROBLEM_BASE = "https://stockdata.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

_HTTP_CODES = {
    400: "invalid-input",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "request-too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
}
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class InvalidParam(msgspec.Struct, frozen=True, omit_defaults=True):
    """One rejected input: which parameter and why."""

    name: str
    reason: str


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    request_id: str | None = None
    invalid_params: list[InvalidParam] | None = msgspec.field(default=None, name="invalid-params")


def problem_type(code: str) -> str:
    return PROBLEM_BASE + code


def request_id_of(request: Request[Any, Any, Any]) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return str(value) if value is not None else None


def _invalid_params(exc: ValidationException) -> list[InvalidParam] | None:
    extra = exc.extra
    if not isinstance(extra, list):
        return None
    out = []
    for item in extra:
        if isinstance(item, dict):
            name = str(item.get("key") or item.get("source") or "request")
            out.append(InvalidParam(name=name, reason=scrub_text(str(item.get("message", "")))))
    return out or None


def problem_response(
    request: Request[Any, Any, Any],
    *,
    status: int,
    code: str,
    detail: str,
    invalid: list[InvalidParam] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    body = Problem(
        type=problem_type(code),
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=scrub_text(detail),
        instance=request.url.path,
        request_id=request_id_of(request),
        invalid_params=invalid,
    )
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Map our error taxonomy and Litestar's HTTP errors to problem+json; hide everything else."""
    if isinstance(exc, StockDataError):
        headers: dict[str, str] = {}
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        if isinstance(exc, RateLimitedError | AuthenticationError):
            extra = exc.fields.get("headers")
            if isinstance(extra, dict):
                headers.update({str(k): str(v) for k, v in extra.items()})
        if exc.http_status >= 500:
            log.warning("request_failed", code=exc.code, error=scrub_text(exc.message))
        return problem_response(
            request, status=exc.http_status, code=exc.code, detail=exc.message, headers=headers
        )
    if isinstance(exc, RecursionError):
        # msgspec (and any recursive reader) gives up on input nested deeper than the stack:
        # the input is at fault, not the server.
        return problem_response(
            request,
            status=400,
            code="invalid-input",
            detail="the request is nested too deeply to read",
        )
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        log.warning("catalog_unreachable", error=scrub_text(str(exc).splitlines()[0]))
        return problem_response(
            request,
            status=503,
            code="catalog-unavailable",
            detail="the catalog database cannot be reached; retry later",
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, ValidationException):
        return problem_response(
            request,
            status=400,
            code="invalid-input",
            detail=str(exc.detail),
            invalid=_invalid_params(exc),
        )
    if isinstance(exc, HTTPException):
        status = exc.status_code
        code = _HTTP_CODES.get(status, "http-error" if status < 500 else "internal")
        return problem_response(
            request,
            status=status,
            code=code,
            detail=str(exc.detail),
            headers=dict(exc.headers or {}),
        )
    log.error(
        "unhandled_exception",
        error_type=type(exc).__name__,
        error=scrub_text(str(exc)),
        path=request.url.path,
        request_id=request_id_of(request),
        exc_info=exc,
    )
    return problem_response(
        request,
        status=500,
        code="internal",
        detail="an unexpected error occurred; quote the request id when reporting it",
    )
