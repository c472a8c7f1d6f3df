"""Authentication, flags, roles and unknown query names: checked once per request."""

import re
from collections.abc import Iterator, Mapping
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from catalog import Role
from query_api._auth import require_role
from query_api.routes._common import services_of
from stockdata.errors import FeatureDisabledError, InvalidInputError


async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Authenticate (unless `AuthMiddleware` already did), then check the route's flag."""
    services = services_of(connection)
    # What `connection.state.principal` reads, without a State wrapper per request.
    state = connection.scope.setdefault("state", {})
    principal = state.get("principal")
    if principal is None:
        error = state.get("auth_error")
        if error is not None:  # AuthMiddleware (or the point lane's guard) already tried
            raise error
        try:
            principal = await services.authenticator.authenticate(_headers(connection.scope))
        except Exception as exc:  # kept: the lane steps aside and the router guards again
            state["auth_error"] = exc
            raise
        state["principal"] = principal
    flag = handler.opt.get("flag")
    if flag and not services.flags.is_enabled(flag):
        raise FeatureDisabledError(f"this endpoint is switched off here (flag {flag})", flag=flag)
    role = handler.opt.get("role")
    if role is not None:
        require_role(principal, Role(role))


class _Headers(Mapping[str, str]):
    """The request headers as a read-only mapping, decoded on first use.

    First value of a repeated name, like `Headers.get`. The API-key and JWT authenticators
    read one or two headers, and a parsed `Headers` multidict per request costs several
    times more than this; the anonymous authenticator reads none and decodes nothing.
    """

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._decoded: dict[str, str] | None = None

    def _dict(self) -> dict[str, str]:
        if self._decoded is None:
            out: dict[str, str] = {}
            for name, value in self._raw:
                out.setdefault(name.decode("latin-1"), value.decode("latin-1"))
            self._decoded = out
        return self._decoded

    def __getitem__(self, name: str) -> str:
        return self._dict()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())


def _headers(scope: Any) -> Mapping[str, str]:
    return _Headers(scope["headers"])


async def authorize(request: Request[Any, Any, Any]) -> None:
    """`guard` as the routers' `before_request` hook: same checks, same place in the request.

    Litestar runs `before_request` inside the route (so problem answers still pass through the
    security-header, rate-limit and request-id middlewares) and before any parameter is parsed,
    exactly like a guard, but without the copy of the route handler Litestar makes for every
    guard call (about a fifth of a hot-index lookup's time).
    """
    handler = request.scope["route_handler"]
    await guard(request, handler)
    raw: bytes = request.scope.get("query_string", b"")
    if raw:
        check_query_names(raw, handler)


_PATH_PARAM = re.compile(r"\{(\w+):")


def query_names(handler: BaseRouteHandler) -> frozenset[str]:
    """The query parameters `handler` declares (by their wire names), computed once."""
    names: frozenset[str] | None = handler.opt.get("query_names")
    if names is None:
        path_names = {n for p in getattr(handler, "paths", ()) for n in _PATH_PARAM.findall(p)}
        found = set()
        for name, field in handler.parsed_fn_signature.parameters.items():
            if name in ("request", "data") or name in path_names:
                continue
            kwarg = field.kwarg_definition
            found.add(getattr(kwarg, "name", None) or name)
        names = frozenset(found)
        handler.opt["query_names"] = names
    return names


def check_query_names(raw: bytes, handler: BaseRouteHandler) -> None:
    """400 `unknown-parameter` naming every query parameter the route does not take: a typo
    (`?form=2008-01-01`) must not silently answer something else."""
    allowed = query_names(handler)
    unknown = []
    for part in raw.split(b"&"):
        name = part.partition(b"=")[0]
        if not name:
            continue
        text = name.decode("latin-1")
        if "%" in text or "+" in text:
            from urllib.parse import unquote_plus

            text = unquote_plus(text)
        if text not in allowed and text not in unknown:
            unknown.append(text)
    if unknown:
        listed = ", ".join(repr(u) for u in unknown)
        takes = ", ".join(sorted(allowed)) or "none"
        raise InvalidInputError(
            f"unknown query parameter {listed}; this route takes: {takes}",
            code="unknown-parameter",
            parameters=unknown,
        )
