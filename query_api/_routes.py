"""The HTTP routes: /v1 (versioned), the two legacy routes, health and metrics.

Handlers are built by `build_routes(settings)` so that schema limits (page size, delta days)
come from the settings the app was created with and the OpenAPI document states them.
"""

# Annotations stay evaluated: the handlers use limits local to build_routes().

import datetime as dt
import functools
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import Annotated, Any, Literal

import anyio
import pyarrow as pa
from litestar import Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.types import ASGIApp, ControllerRouterHandler, Receive, Scope, Send

import catalog
from catalog import Role
from lake import Basis
from query_api import _models as m
from query_api._auth import require_role
from query_api._data import AS_TRADED, BAR_SCHEMA, CHANGE_BASIS, Adjust, Bars
from query_api._flags import DELTA_API, SQL_API, TICKER_API
from query_api._problems import PROBLEM_MEDIA_TYPE, Problem
from query_api._respond import (
    _JSON_ACCEPTS,
    ARROW,
    Format,
    Payload,
    allow_head,
    attachment_name,
    encode_arrow,
    encode_csv,
    header,
    negotiate,
    page_headers,
)
from query_api._sandbox import SqlSandbox
from query_api._settings import ApiSettings
from query_api._state import Services
from stockdata.errors import FeatureDisabledError, InvalidInputError
from stockdata.symbols import SYMBOL_PATTERN

MIC_PATTERN = r"^[A-Za-z]{4}$"
#: Free text searched in the catalog: anything printable (Postgres refuses NUL in text).
SEARCH_PATTERN = r"^[^\x00-\x1f\x7f]*$"

TICKER_FLAG = TICKER_API
DELTA_FLAG = DELTA_API
SQL_FLAG = SQL_API

_FORMAT_NOTE = " Formats: JSON by default; CSV with `Accept: text/csv` or `format=csv`{arrow}."
_ARROW_NOTE = (
    "; Arrow IPC stream with `Accept: application/vnd.apache.arrow.stream` or `format=arrow`"
)
_STREAM_NOTE = (
    "; Parquet with `Accept: application/vnd.apache.parquet` or `format=parquet`. "
    "A range in CSV, Arrow or Parquet without `limit` is one streamed download of every row "
    "(`Content-Disposition: attachment`, `X-Total-Count`); JSON, and any format with `limit`, "
    "is a page with `X-Total-Count` and `Link` (rel=next/prev) headers"
)
#: Formats of the bar routes; CSV, Arrow and Parquet ranges stream whole.
BAR_FORMATS: tuple[Format, ...] = ("json", "csv", "arrow", "parquet")


_FORMAT_DOC = "Answer format; overrides `Accept`."
FormatAll = Annotated[
    str | None,
    QueryParameter(
        name="format",
        required=False,
        description=_FORMAT_DOC,
        schema_extra={"enum": list(BAR_FORMATS)},
    ),
]
FormatTabular = Annotated[
    str | None,
    QueryParameter(
        name="format",
        required=False,
        description=_FORMAT_DOC,
        schema_extra={"enum": ["json", "csv", "arrow"]},
    ),
]
FormatFlat = Annotated[
    str | None,
    QueryParameter(
        name="format",
        required=False,
        description=_FORMAT_DOC,
        schema_extra={"enum": ["json", "csv"]},
    ),
]

Symbol = Annotated[
    str,
    PathParameter(
        pattern=SYMBOL_PATTERN,
        max_length=32,
        description="Ticker symbol (case-insensitive), e.g. MSFT.",
        examples=[Example(value="MSFT")],
    ),
]
ExchangeParam = Annotated[
    str | None,
    QueryParameter(
        name="exchange",
        pattern=MIC_PATTERN,
        required=False,
        description="ISO 10383 MIC of the exchange, e.g. XNAS.",
        examples=[Example(value="XNAS")],
    ),
]
Adjusted = Annotated[
    bool | None,
    QueryParameter(
        required=False,
        description="Alias of `adjust`: `true` is `adjust=all`, `false` is `adjust=none`. "
        "Not together with `adjust` (400 `invalid-adjust`).",
    ),
]
AdjustParam = Annotated[
    Literal["none", "splits", "all"] | None,
    QueryParameter(
        name="adjust",
        required=False,
        description="Adjustment basis, computed by stockdata from the corporate actions "
        "(docs/lake.md): `none` as traded, `splits` for share-count changes, `all` for splits "
        "and cash dividends. Default: `none` on bar routes, `splits` on change routes (deltas, "
        "movers), so a split is never reported as a price move.",
    ),
]
AsOfParam = Annotated[
    dt.date | None,
    QueryParameter(
        name="adjust_as_of",
        required=False,
        description="Adjust only for actions with an ex-date on or before this date: the "
        "prices a backtest on that day would have seen. Needs a basis other than `none`.",
        examples=[Example(value="1995-01-01")],
    ),
]


def _adjust_of(
    adjust: Basis | None, adjusted: bool | None, as_of: dt.date | None, *, default: Basis
) -> Adjust:
    """The adjustment a request asks for; `default` when it names none."""
    if adjust is not None and adjusted is not None:
        raise InvalidInputError(
            "pass adjust or its alias adjusted, not both", code="invalid-adjust"
        )
    basis: Basis = (
        adjust
        if adjust is not None
        else default
        if adjusted is None
        else "all"
        if adjusted
        else "none"
    )
    if as_of is not None and basis == "none":
        raise InvalidInputError(
            "adjust_as_of needs adjust=splits or adjust=all", code="invalid-adjust"
        )
    return Adjust(basis, as_of)


DateParam = Annotated[
    dt.date | None,
    QueryParameter(
        name="date",
        required=False,
        description="ISO date, e.g. 2008-10-10. Not together with `from`/`to` (400 "
        "`invalid-range`).",
        examples=[Example(value="2008-10-10")],
    ),
]
FromParam = Annotated[
    dt.date | None,
    QueryParameter(
        name="from",
        required=False,
        description="First date of the range (inclusive). Not together with `date`; at most "
        "`API_MAX_RANGE_YEARS` before `to` (400 `invalid-range` / `range-too-large`).",
        examples=[Example(value="2008-09-01")],
    ),
]
ToParam = Annotated[
    dt.date | None,
    QueryParameter(
        name="to",
        required=False,
        description="Last date of the range (inclusive), not before `from`. Not together with "
        "`date` (400 `invalid-range`).",
        examples=[Example(value="2008-10-10")],
    ),
]
OffsetParam = Annotated[int, QueryParameter(ge=0, le=1_000_000_000, description="Rows to skip.")]
Sort = Annotated[Literal["asc", "desc"], QueryParameter(description="Date order.")]


def _op(name: str) -> Callable[..., str]:
    """A stable, hand-named operationId; the implied HEAD operation (dropped from the
    document) gets its own, as operationIds must be unique."""

    def operation_id(_handler: Any, method: Any, _path: Any) -> str:
        return name + "Head" if method == "HEAD" else name

    return operation_id


def _problems(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_MEDIA_TYPE,
            description=f"{status} problem (RFC 9457); `type` names the error.",
            generate_examples=False,
        )
        for status in statuses
    }


#: Every route documents its problem+json answers (validation, auth, flags, limits, outages).
ERRORS = _problems(400, 401, 403, 404, 406, 413, 422, 429, 500, 503)


def _errors(bad_request: str) -> dict[int, ResponseSpec]:
    """ERRORS with the route's own 400 description: the rules between its parameters."""
    return {
        **ERRORS,
        400: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_MEDIA_TYPE,
            description="400 problem (RFC 9457): `invalid-input` for a parameter outside its "
            "schema, and " + bad_request,
            generate_examples=False,
        ),
    }


#: The rules between `date`, `from` and `to` that one parameter's schema cannot state.
RANGE_RULES = (
    "`invalid-range` when `date` is combined with `from` or `to`, or `from` is after `to`; "
    "`range-too-large` when `from`..`to` (or `from`..today) spans more than "
    "`API_MAX_RANGE_YEARS`."
)
MARKET_RULES = (
    "`invalid-range` when neither `date` nor `from`/`to` is sent, when `date` is combined "
    "with `from` or `to`, or `from` is after `to`; `range-too-large` when a JSON page's "
    "`from`..`to` spans more than `API_MAX_RANGE_YEARS` (downloads have no such limit)."
)
DELTA_RULES = (
    "`invalid-range` when `from`/`to` are sent without `series=true`, when `series=true` is "
    "combined with `date`, or `from` is after `to`; `range-too-large` when `from`..`to` spans "
    "more than `API_MAX_RANGE_YEARS`."
)
#: The rule between `adjust`, its alias `adjusted` and `adjust_as_of`.
ADJUST_RULES = (
    " `invalid-adjust` when `adjust` and `adjusted` are both sent, or `adjust_as_of` with "
    "the `none` basis."
)


def hot_path(
    fn: Callable[..., Response[Any]],
) -> Callable[..., Coroutine[Any, Any, Response[Any]]]:
    """Answer on the event loop when the serving form holds the current version, else in a
    thread.

    The serving path is numpy over mapped pages (microseconds), so the thread hop would cost
    more than the lookup; DuckDB queries and the Delta log poll always run in a worker thread.
    """

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Response[Any]:
        store = services_of(kwargs["request"]).store
        fresh, version = store.fresh_version()
        if (
            fresh
            and not kwargs.get("series")
            and not _maybe_not_json(kwargs["request"].scope)
            and store.index_for(version) is not None
        ):
            return fn(*args, **kwargs)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    return wrapper


def _maybe_not_json(scope: Scope) -> bool:
    """True when the request may ask for CSV, Arrow or Parquet (perhaps a long stream)."""
    if b"format=" in scope.get("query_string", b""):
        return True
    accept = header(scope, b"accept")
    return bool(accept) and accept not in _JSON_ACCEPTS


def services_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Services:
    services: Services = connection.app.state.services
    return services


async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Authenticate (unless `AuthMiddleware` already did), then check the route's flag."""
    services = services_of(connection)
    # What `connection.state.principal` reads, without a State wrapper per request.
    state = connection.scope.setdefault("state", {})
    principal = state.get("principal")
    if principal is None:
        error = state.get("auth_error")
        if error is not None:  # AuthMiddleware already tried the credential
            raise error
        principal = await services.authenticator.authenticate(_headers(connection.scope))
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


#: The parameters the point-lookup lane reads; any other one sends a request the long way.
_POINT_LOOKUP_PARAMS = frozenset({"date", "exchange", "adjusted", "adjust", "adjust_as_of"})
_BASES = {"none": "none", "splits": "splits", "all": "all"}
_SYMBOL = re.compile(SYMBOL_PATTERN.strip("^$"))
_MIC = re.compile(MIC_PATTERN.strip("^$"))
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_BOOLEANS = {"true": True, "false": False}


def simple_query(raw: bytes, allowed: frozenset[str]) -> dict[str, str] | None:
    """`a=1&b=2` as a dict when every name is in `allowed`, given once, with a plain
    non-empty value (no percent-escape or `+`); None for anything else."""
    if not raw:
        return {}
    if b"%" in raw or b"+" in raw:
        return None
    out: dict[str, str] = {}
    for part in raw.decode("latin-1").split("&"):
        name, eq, value = part.partition("=")
        if not eq or not value or name not in allowed or name in out:
            return None
        out[name] = value
    return out


def _iso_date(text: str) -> dt.date | None:
    if _DATE.fullmatch(text) is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _upper(value: str | None) -> str | None:
    return value.upper() if value is not None else None


def _page(limit: int, offset: int, total: int) -> m.Pagination:
    nxt = offset + limit
    return m.Pagination(
        limit=limit, offset=offset, total=total, next_offset=nxt if nxt < total else None
    )


def _check_range(settings: ApiSettings, lo: dt.date | None, hi: dt.date | None) -> None:
    if lo is not None and hi is not None:
        if lo > hi:
            raise InvalidInputError(
                f"from ({lo.isoformat()}) is after to ({hi.isoformat()})", code="invalid-range"
            )
        years = settings.api_max_range_years
        if (hi - lo).days > years * 366:
            raise InvalidInputError(
                f"the range {lo.isoformat()}..{hi.isoformat()} spans more than {years} years; "
                "split it into several requests",
                code="range-too-large",
            )


def _check_order(lo: dt.date | None, hi: dt.date | None) -> None:
    if lo is not None and hi is not None and lo > hi:
        raise InvalidInputError(
            f"from ({lo.isoformat()}) is after to ({hi.isoformat()})", code="invalid-range"
        )


def _span(lo: dt.date | None, hi: dt.date | None) -> str:
    return f"{lo.isoformat() if lo else 'start'}_{hi.isoformat() if hi else 'end'}"


def _bars(bars: Bars) -> list[m.Bar]:
    return [m.Bar(*row) for row in bars.rows()]


def _structs_table(rows: list[Any], struct: type[Any]) -> pa.Table:
    import msgspec

    return pa.Table.from_pylist(
        [msgspec.structs.asdict(r) for r in rows],
        schema=None if rows else pa.schema([(f, pa.string()) for f in struct.__struct_fields__]),
    )


class PointLane(ASGIMiddleware):
    """Answers plain EoD point lookups before Litestar's route machinery, or steps aside.

    It sits on the `/v1/eod/{symbol}` route inside every app middleware (request id and
    access log, security headers, allowed hosts, rate limit, body size), so a lane answer
    passes through all of them like any other. `answer` returns the response, or None for
    anything it does not read, and then, as when it raises (an unknown symbol, a
    switched-off flag, a missing credential), the request goes the long way: Litestar
    parses, validates and answers it, errors included, so every problem answer is the
    handler's own. What the lane skips is the per-request work of Litestar's route (request
    and handler resolution, the kwargs model, the exit stack, the response handler).
    """

    scopes = (ScopeType.HTTP,)

    def __init__(
        self, answer: Callable[[Request[Any, Any, Any]], Awaitable[Response[Any] | None]]
    ) -> None:
        self._answer = answer

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope.get("method") == "GET":
            request: Request[Any, Any, Any] = Request(scope, receive, send)
            try:
                response = await self._answer(request)
            except Exception:  # the long way answers (and reports) it
                response = None
            if response is not None:
                await response.to_asgi_response(None, request)(scope, receive, send)
                return
        await next_app(scope, receive, send)


def build_routes(settings: ApiSettings) -> list[ControllerRouterHandler]:
    """Every route of the app, with limits taken from `settings`."""
    max_page = settings.api_max_page_size
    default_page = min(settings.api_default_page_size, max_page)
    max_days = settings.api_max_delta_days
    Limit = Annotated[  # noqa: N806
        int, QueryParameter(ge=1, le=max_page, description=f"Page size (at most {max_page}).")
    ]
    Days = Annotated[  # noqa: N806
        int,
        QueryParameter(
            ge=1,
            le=max_days,
            description=f"Number of trading sessions N (1..{max_days}).",
            examples=[Example(value=21)],
        ),
    ]
    PageLimit = Annotated[  # noqa: N806
        int | None,
        QueryParameter(
            ge=1,
            le=max_page,
            required=False,
            description=f"Page size (at most {max_page}; {default_page} for JSON when absent). "
            "Absent on a CSV, Arrow or Parquet range: the whole range, streamed.",
        ),
    ]
    MoversLimit = Annotated[  # noqa: N806
        int, QueryParameter(ge=1, le=max_page, description="How many tickers.")
    ]

    # -- exchanges and tickers (catalog) -----------------------------------------------------

    @get(
        "/exchanges",
        sync_to_thread=True,
        operation_id=_op("listExchanges"),
        responses=ERRORS,
        summary="List exchanges",
        tags=["catalog"],
    )
    def list_exchanges(request: Request[Any, Any, Any]) -> m.ExchangeList:
        services = services_of(request)
        with services.catalog.session() as session:
            rows = catalog.list_exchanges(session)
            data = [_exchange(e) for e in rows]
        return m.ExchangeList(data=data)

    @get(
        "/exchanges/{mic:str}",
        sync_to_thread=True,
        operation_id=_op("getExchange"),
        responses=ERRORS,
        summary="One exchange",
        tags=["catalog"],
    )
    def one_exchange(
        request: Request[Any, Any, Any],
        mic: Annotated[
            str,
            PathParameter(
                pattern=MIC_PATTERN, description="ISO 10383 MIC.", examples=[Example(value="XNAS")]
            ),
        ],
    ) -> m.Exchange:
        services = services_of(request)
        with services.catalog.session() as session:
            return _exchange(catalog.get_exchange(session, mic.upper()))

    @get(
        "/tickers",
        sync_to_thread=True,
        operation_id=_op("searchTickers"),
        responses=ERRORS,
        summary="Search tickers",
        tags=["catalog"],
    )
    def list_tickers(
        request: Request[Any, Any, Any],
        q: Annotated[
            str | None,
            QueryParameter(
                required=False,
                max_length=64,
                pattern=SEARCH_PATTERN,
                description="Symbol prefix or part of the name (no control characters).",
                examples=[Example(value="MS")],
            ),
        ] = None,
        exchange: ExchangeParam = None,
        limit: Limit = default_page,
        offset: OffsetParam = 0,
    ) -> Response[m.TickerPage]:
        services = services_of(request)
        with services.catalog.session() as session:
            rows, total = catalog.search_tickers(
                session, query=q or None, exchange_mic=_upper(exchange), limit=limit, offset=offset
            )
            data = [_ticker(t, mic) for t, mic in rows]
        page = _page(limit, offset, total)
        links = {k.decode(): v.decode("latin-1") for k, v in page_headers(request, page)}
        return Response(m.TickerPage(data=data, pagination=page), headers=links)

    @get(
        "/tickers/{symbol:str}",
        sync_to_thread=True,
        operation_id=_op("getTicker"),
        responses=ERRORS,
        summary="One ticker",
        tags=["catalog"],
    )
    def one_ticker(
        request: Request[Any, Any, Any], symbol: Symbol, exchange: ExchangeParam = None
    ) -> m.Ticker:
        services = services_of(request)
        with services.catalog.session() as session:
            t = catalog.get_ticker(session, symbol, exchange_mic=_upper(exchange))
            return _ticker(t, t.exchange.mic)

    # -- end-of-day bars ------------------------------------------------------------------------

    def eod_page(
        request: Request[Any, Any, Any],
        sym: str,
        mic: str | None,
        *,
        date: dt.date | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        adjust: Adjust = AS_TRADED,
        sort: Literal["asc", "desc"] = "asc",
        limit: int | None = None,
        offset: int = 0,
        whole: bool = False,
    ) -> Response[m.BarPage]:
        """`GET /v1/eod/{symbol}` once its parameters are parsed (by Litestar or the lane).

        `whole` (the history route): no range means every bar, not the latest one."""
        services = services_of(request)
        if date is not None and (date_from is not None or date_to is not None):
            raise InvalidInputError("pass either date or from/to, not both", code="invalid-range")
        fmt = negotiate(request, BAR_FORMATS)
        lo, hi = (date, date) if date is not None else (date_from, date_to)
        lo_hi_latest = lo is None and hi is None and not whole
        streamed = fmt != "json" and limit is None and offset == 0 and date is None
        streamed = streamed and not lo_hi_latest
        if streamed or whole:
            _check_order(lo, hi)
        else:
            _check_range(settings, lo, hi)
            if lo is not None and hi is None:
                _check_range(settings, lo, dt.date.today())
            if hi is not None and lo is None:
                lo = dt.date(max(1, hi.year - settings.api_max_range_years), hi.month, 1)
        version = services.store.current_version()
        if streamed:
            resolved = services.store.resolve(sym, mic, version)
            stream = services.store.stream_bars(
                symbol=sym,
                exchange=resolved,
                version=version,
                date_from=lo,
                date_to=hi,
                adjust=adjust,
                order=sort,
            )
            return services.responder.respond_stream(
                request,
                version=version,
                fmt=fmt,
                filename=attachment_name(f"{sym}_{resolved}_{_span(lo, hi)}", fmt),
                total=stream.total,
                schema=stream.schema,
                batches=stream.batches,
            )
        page_size = default_page if limit is None else limit

        def compute() -> Payload:
            resolved = services.store.resolve(sym, mic, version)
            if lo_hi_latest:
                table, total = services.store.bars(
                    sym,
                    exchange=resolved,
                    version=version,
                    date_from=None,
                    date_to=None,
                    adjust=adjust,
                    limit=1,
                    offset=0,
                    order="desc",
                )
                pagination = _page(1, 0, min(total, 1))
            else:
                table, total = services.store.bars(
                    sym,
                    exchange=resolved,
                    version=version,
                    date_from=lo,
                    date_to=hi,
                    adjust=adjust,
                    limit=page_size,
                    offset=offset,
                    order=sort,
                )
                pagination = _page(page_size, offset, total)
            page = m.BarPage(
                data=_bars(table),
                pagination=pagination,
                adjusted=adjust.adjusted,
                lake_version=version,
                adjust=adjust.basis,
                adjust_as_of=adjust.as_of,
            )
            ranged = not lo_hi_latest and date is None  # a point lookup is not a page
            return Payload(page, table.table, pagination if ranged else None)

        # One bar from the hot index costs about what a cache hit does: cache it when asked
        # for again, not on first sight.
        one_bar = (lo_hi_latest or date is not None) and services.store.index_for(version)
        return services.responder.respond(
            request,
            version=version,
            allowed=BAR_FORMATS,
            compute=compute,
            admit="repeat" if one_bar else "always",
            fmt=fmt,
        )

    async def eod_point_lane(request: Request[Any, Any, Any]) -> Response[m.BarPage] | None:
        """Authorize, then answer the plain point lookup (see `PointLane`), or return None.

        `GET /v1/eod/{symbol}?date=YYYY-MM-DD[&exchange=MIC][&adjusted=true|false]` is most
        of the API's traffic. When the hot index holds the current version, this reads those
        parameters from the raw query string and calls the same `eod_page` as the handler:
        the answer is the same bytes. Anything else (another parameter, a repeated or
        escaped one, a value the strict forms below do not match, a cold index) returns
        None, and Litestar parses, validates and answers as usual.
        """
        # `simple_query` admits only the lane's own parameters: no unknown-name check needed.
        await guard(request, request.scope["route_handler"])
        query = simple_query(request.scope["query_string"], _POINT_LOOKUP_PARAMS)
        if query is None or "date" not in query:
            return None
        symbol = request.scope["path_params"].get("symbol", "")
        day = _iso_date(query["date"])
        adjusted = _BOOLEANS.get(query["adjusted"]) if "adjusted" in query else None
        basis = _BASES.get(query["adjust"]) if "adjust" in query else None
        as_of = _iso_date(query["adjust_as_of"]) if "adjust_as_of" in query else None
        mic = query.get("exchange")
        if (
            day is None
            or ("adjusted" in query and adjusted is None)
            or ("adjust" in query and basis is None)
            or ("adjust_as_of" in query and as_of is None)
            or _SYMBOL.fullmatch(symbol) is None
            or (mic is not None and _MIC.fullmatch(mic) is None)
        ):
            return None
        services = services_of(request)
        fresh, version = services.store.fresh_version()
        if not fresh or services.store.index_for(version) is None:
            return None
        adjust = _adjust_of(basis, adjusted, as_of, default="none")  # type: ignore[arg-type]
        response = eod_page(request, symbol.upper(), _upper(mic), date=day, adjust=adjust)
        services.metrics.lane_answer()
        return response

    @get(
        "/eod/{symbol:str}",
        operation_id=_op("getEodBars"),
        responses=_errors(RANGE_RULES + ADJUST_RULES),
        summary="Bars of one ticker",
        description="One date (`date`), a range (`from`/`to`), or the latest bar; sorted by date. "
        "`date` and `from`/`to` exclude each other." + _FORMAT_NOTE.format(arrow=_ARROW_NOTE),
        tags=["eod"],
        opt={"flag": TICKER_FLAG},
        middleware=[PointLane(eod_point_lane)],
    )
    @hot_path
    def eod_bars(
        request: Request[Any, Any, Any],
        symbol: Symbol,
        date: DateParam = None,
        date_from: FromParam = None,
        date_to: ToParam = None,
        exchange: ExchangeParam = None,
        adjust: AdjustParam = None,
        adjust_as_of: AsOfParam = None,
        adjusted: Adjusted = None,
        sort: Sort = "asc",
        limit: PageLimit = None,
        offset: OffsetParam = 0,
        format: FormatAll = None,
    ) -> Response[m.BarPage]:
        return eod_page(
            request,
            symbol.upper(),
            _upper(exchange),
            date=date,
            date_from=date_from,
            date_to=date_to,
            adjust=_adjust_of(adjust, adjusted, adjust_as_of, default="none"),
            sort=sort,
            limit=limit,
            offset=offset,
        )

    @get(
        "/eod/{symbol:str}/history",
        sync_to_thread=True,
        operation_id=_op("getEodHistory"),
        responses=_errors("`invalid-range` when `from` is after `to`;" + ADJUST_RULES),
        summary="Whole history of one ticker",
        description="Every bar of the ticker (or of `from`..`to`), oldest first by default, "
        "with no limit on the span." + _FORMAT_NOTE.format(arrow=_ARROW_NOTE + _STREAM_NOTE),
        tags=["eod"],
        opt={"flag": TICKER_FLAG},
    )
    def eod_history(
        request: Request[Any, Any, Any],
        symbol: Symbol,
        date_from: FromParam = None,
        date_to: ToParam = None,
        exchange: ExchangeParam = None,
        adjust: AdjustParam = None,
        adjust_as_of: AsOfParam = None,
        adjusted: Adjusted = None,
        sort: Sort = "asc",
        limit: PageLimit = None,
        offset: OffsetParam = 0,
        format: FormatAll = None,
    ) -> Response[m.BarPage]:
        return eod_page(
            request,
            symbol.upper(),
            _upper(exchange),
            date_from=date_from,
            date_to=date_to,
            adjust=_adjust_of(adjust, adjusted, adjust_as_of, default="none"),
            sort=sort,
            limit=limit,
            offset=offset,
            whole=True,
        )

    @get(
        "/eod/{symbol:str}/latest",
        operation_id=_op("getLatestBar"),
        responses=_errors("the rules between parameters:" + ADJUST_RULES),
        summary="Latest bar of one ticker",
        description="The most recent bar in the lake." + _FORMAT_NOTE.format(arrow=""),
        tags=["eod"],
        opt={"flag": TICKER_FLAG},
    )
    @hot_path
    def eod_latest(
        request: Request[Any, Any, Any],
        symbol: Symbol,
        exchange: ExchangeParam = None,
        adjust: AdjustParam = None,
        adjust_as_of: AsOfParam = None,
        adjusted: Adjusted = None,
        format: FormatFlat = None,
    ) -> Response[m.LatestBar]:
        return _latest(
            request,
            symbol.upper(),
            _upper(exchange),
            _adjust_of(adjust, adjusted, adjust_as_of, default="none"),
        )

    @get(
        "/eod",
        operation_id=_op("getEodOnDate"),
        responses=_errors(MARKET_RULES + ADJUST_RULES),
        summary="Every ticker on one date or over a date range",
        description="All bars of one trading date (`date`, by ticker) or of a range "
        "(`from`/`to`, by date then ticker)."
        + _FORMAT_NOTE.format(arrow=_ARROW_NOTE + _STREAM_NOTE),
        tags=["eod"],
        opt={"flag": TICKER_FLAG},
    )
    @hot_path
    def eod_on_date(
        request: Request[Any, Any, Any],
        date: DateParam = None,
        date_from: FromParam = None,
        date_to: ToParam = None,
        exchange: ExchangeParam = None,
        adjust: AdjustParam = None,
        adjust_as_of: AsOfParam = None,
        adjusted: Adjusted = None,
        limit: PageLimit = None,
        offset: OffsetParam = 0,
        format: FormatAll = None,
    ) -> Response[m.BarPage]:
        services = services_of(request)
        how = _adjust_of(adjust, adjusted, adjust_as_of, default="none")
        if date is not None and (date_from is not None or date_to is not None):
            raise InvalidInputError("pass either date or from/to, not both", code="invalid-range")
        if date is None and date_from is None and date_to is None:
            raise InvalidInputError("pass date, or from and/or to", code="invalid-range")
        fmt = negotiate(request, BAR_FORMATS)
        mic = _upper(exchange)
        lo, hi = (date, date) if date is not None else (date_from, date_to)
        streamed = fmt != "json" and limit is None and offset == 0
        if streamed:
            _check_order(lo, hi)
        else:
            _check_range(settings, lo, hi)
        version = services.store.current_version()
        if streamed:
            stream = services.store.stream_bars(
                symbol=None,
                exchange=mic,
                version=version,
                date_from=lo,
                date_to=hi,
                adjust=how,
            )
            stem = f"eod_{mic}_{_span(lo, hi)}" if mic else f"eod_{_span(lo, hi)}"
            return services.responder.respond_stream(
                request,
                version=version,
                fmt=fmt,
                filename=attachment_name(stem, fmt),
                total=stream.total,
                schema=stream.schema,
                batches=stream.batches,
            )
        page_size = max_page if limit is None else limit

        def compute() -> Payload:
            if date is not None:
                table, total = services.store.on_date(
                    date,
                    exchange=mic,
                    version=version,
                    adjust=how,
                    limit=page_size,
                    offset=offset,
                )
            else:
                table, total = services.store.between(
                    exchange=mic,
                    date_from=lo,
                    date_to=hi,
                    adjust=how,
                    limit=page_size,
                    offset=offset,
                )
            pagination = _page(page_size, offset, total)
            page = m.BarPage(
                data=_bars(table),
                pagination=pagination,
                adjusted=how.adjusted,
                lake_version=version,
                adjust=how.basis,
                adjust_as_of=how.as_of,
            )
            return Payload(page, table.table, pagination)

        return services.responder.respond(
            request, version=version, allowed=BAR_FORMATS, compute=compute, fmt=fmt
        )

    # -- deltas and movers ----------------------------------------------------------------------

    @get(
        "/eod/{symbol:str}/delta",
        operation_id=_op("getDelta"),
        responses=_errors(DELTA_RULES + ADJUST_RULES),
        summary="Change over N trading sessions",
        description="Absolute and percent change of the close over N sessions ending at `date` "
        "(the last session on or before it; the latest when absent). Session order, not "
        "calendar days. Fewer than N earlier sessions: null change with a `reason`. "
        "`series=true` returns the rolling N-session change for every session in `from`..`to`; "
        "`from`/`to` need `series=true`, and `series=true` takes no `date`."
        + _FORMAT_NOTE.format(arrow=_ARROW_NOTE + " (series)"),
        tags=["deltas"],
        opt={"flag": DELTA_FLAG},
    )
    @hot_path
    def eod_delta(
        request: Request[Any, Any, Any],
        symbol: Symbol,
        days: Days,
        date: DateParam = None,
        series: Annotated[bool, QueryParameter(description="Rolling change over a range.")] = False,
        date_from: FromParam = None,
        date_to: ToParam = None,
        exchange: ExchangeParam = None,
        adjust: AdjustParam = None,
        adjust_as_of: AsOfParam = None,
        adjusted: Adjusted = None,
        limit: Limit = default_page,
        offset: OffsetParam = 0,
        format: FormatTabular = None,
    ) -> Response[m.DeltaResponse | m.DeltaSeries]:
        how = _adjust_of(adjust, adjusted, adjust_as_of, default=CHANGE_BASIS)
        if not series:
            if date_from is not None or date_to is not None:
                raise InvalidInputError("from/to need series=true", code="invalid-range")
            return _delta_point(request, symbol.upper(), _upper(exchange), days, date, how)
        services = services_of(request)
        if date is not None:
            raise InvalidInputError("series=true takes from/to, not date", code="invalid-range")
        _check_range(settings, date_from, date_to)
        sym, mic = symbol.upper(), _upper(exchange)
        version = services.store.current_version()

        def compute() -> Payload:
            resolved = services.store.resolve(sym, mic, version)
            table, total = services.store.delta_series(
                sym,
                exchange=resolved,
                version=version,
                days=days,
                date_from=date_from,
                date_to=date_to,
                adjust=how,
                limit=limit,
                offset=offset,
            )
            rows = [m.Delta(**r) for r in table.to_pylist()]
            pagination = _page(limit, offset, total)
            body = m.DeltaSeries(
                data=rows,
                pagination=pagination,
                adjusted=how.adjusted,
                lake_version=version,
                adjust=how.basis,
                adjust_as_of=how.as_of,
            )
            return Payload(body, table, pagination)

        return services.responder.respond(
            request, version=version, allowed=("json", "csv", "arrow"), compute=compute
        )

    @get(
        "/movers",
        operation_id=_op("getMovers"),
        responses=_errors("the rules between parameters:" + ADJUST_RULES),
        summary="Top gainers or losers over N sessions",
        description="Tickers with a bar on `date`, ranked by percent change of the close over N "
        "sessions ending there (ties by ticker)." + _FORMAT_NOTE.format(arrow=_ARROW_NOTE),
        tags=["deltas"],
        opt={"flag": DELTA_FLAG},
    )
    @hot_path
    def movers(
        request: Request[Any, Any, Any],
        date: Annotated[
            dt.date,
            QueryParameter(
                name="date", description="ISO date.", examples=[Example(value="2008-10-10")]
            ),
        ],
        days: Days,
        exchange: ExchangeParam = None,
        limit: MoversLimit = 10,
        order: Annotated[
            Literal["gainers", "losers"], QueryParameter(description="Ranking.")
        ] = "gainers",
        adjust: AdjustParam = None,
        adjust_as_of: AsOfParam = None,
        adjusted: Adjusted = None,
        format: FormatTabular = None,
    ) -> Response[m.MoversResponse]:
        services = services_of(request)
        mic = _upper(exchange)
        how = _adjust_of(adjust, adjusted, adjust_as_of, default=CHANGE_BASIS)
        version = services.store.current_version()

        def compute() -> Payload:
            rows = services.store.movers(
                date,
                days=days,
                exchange=mic,
                version=version,
                limit=limit,
                order=order,
                adjust=how,
            )
            data = [
                m.Mover(
                    rank=r.rank,
                    ticker=r.ticker,
                    exchange_mic=r.exchange_mic,
                    start_date=r.start_date,
                    start_close=r.start_close,
                    end_date=r.end_date,
                    end_close=r.end_close,
                    change=r.change,
                    pct_change=r.pct_change,
                )
                for r in rows
            ]
            body = m.MoversResponse(
                date=date,
                days=days,
                order=order,
                exchange_mic=mic,
                adjusted=how.adjusted,
                data=data,
                lake_version=version,
                adjust=how.basis,
                adjust_as_of=how.as_of,
            )
            return Payload(body, _structs_table(data, m.Mover))

        return services.responder.respond(
            request, version=version, allowed=("json", "csv", "arrow"), compute=compute
        )

    # -- corporate actions ----------------------------------------------------------------------

    @get(
        "/actions/{symbol:str}",
        sync_to_thread=True,
        operation_id=_op("getActions"),
        responses=_errors("`invalid-range` when `from` is after `to`."),
        summary="Corporate actions of one ticker",
        description="Splits, stock dividends, cash dividends and symbol changes by ex-date, "
        "with the factor each puts on earlier prices (docs/lake.md, Adjustment)."
        + _FORMAT_NOTE.format(arrow=_ARROW_NOTE),
        tags=["eod"],
        opt={"flag": TICKER_FLAG},
    )
    def list_actions(
        request: Request[Any, Any, Any],
        symbol: Symbol,
        date_from: FromParam = None,
        date_to: ToParam = None,
        exchange: ExchangeParam = None,
        kind: Annotated[
            list[Literal["split", "stock_dividend", "dividend", "symbol_change"]] | None,
            QueryParameter(
                required=False,
                description="Only these kinds (repeat the parameter for several).",
            ),
        ] = None,
        format: FormatTabular = None,
    ) -> Response[m.ActionList]:
        services = services_of(request)
        _check_order(date_from, date_to)
        sym, mic = symbol.upper(), _upper(exchange)
        version = services.store.current_version()

        def compute() -> Payload:
            resolved = services.store.resolve(sym, mic, version)
            table, actions_version = services.store.actions(
                sym,
                exchange=resolved,
                date_from=date_from,
                date_to=date_to,
                kinds=tuple(sorted(set(kind or ()))),
            )
            rows = [m.Action(**r) for r in table.to_pylist()]
            body = m.ActionList(data=rows, lake_version=version, actions_version=actions_version)
            return Payload(body, table)

        return services.responder.respond(
            request, version=version, allowed=("json", "csv", "arrow"), compute=compute
        )

    # -- SQL ----------------------------------------------------------------------------------

    @post(
        "/sql",
        operation_id=_op("runSql"),
        responses=_errors(
            "`sql-refused` / `sql-invalid` / `sql-error` when the statement is not one plain "
            "read the sandbox allows, does not parse or fails; the body takes `sql` (not "
            "empty) and `limit` (at least 1) and no other field."
        ),
        summary="Run one read-only SQL query",
        description="One SELECT or WITH statement over the views `eod`, `eod_deltas`, "
        "`eod_rejects`, in a sandboxed worker with time, row and byte limits. Needs the analyst "
        "role. JSON by default; CSV or Arrow IPC stream by `Accept` or `format`. When every "
        "worker is busy and the queue is full: 503 `sql-busy` with `Retry-After`.",
        tags=["sql"],
        opt={"flag": SQL_FLAG, "role": "analyst"},
        status_code=200,
    )
    async def run_sql(
        request: Request[Any, Any, Any],
        data: JSONBody[m.SqlRequest],
        format: FormatTabular = None,
    ) -> Response[m.SqlResponse]:
        services = services_of(request)
        fmt = negotiate(request, ("json", "csv", "arrow"))
        sandbox, gate = services.sandbox, services.sql_gate
        if sandbox is None or gate is None:
            raise FeatureDisabledError(
                "the SQL sandbox is not available in this build", code="feature-disabled"
            )
        # the blocking call and the encoding run on the SQL limiter's threads (SqlGate)
        return await gate.run(functools.partial(_sql_answer, sandbox, data, fmt))

    # -- legacy routes --------------------------------------------------------------------------

    @get(
        "/eod/ticker/{ticker:str}",
        operation_id=_op("getLatestBarLegacy"),
        deprecated=True,
        responses=ERRORS,
        summary="Latest bar (legacy route)",
        tags=["legacy"],
        opt={"flag": TICKER_FLAG},
    )
    @hot_path
    def legacy_latest(
        request: Request[Any, Any, Any], ticker: Symbol, format: FormatFlat = None
    ) -> Response[m.LatestBar]:
        return _latest(request, ticker.upper(), None, AS_TRADED)

    @get(
        "/eod/ticker/{ticker:str}/delta/{days:int}",
        operation_id=_op("getDeltaLegacy"),
        deprecated=True,
        responses=ERRORS,
        summary="Change over N sessions to the latest bar (legacy route)",
        tags=["legacy"],
        opt={"flag": DELTA_FLAG},
    )
    @hot_path
    def legacy_delta(
        request: Request[Any, Any, Any], ticker: Symbol, days: Days, format: FormatTabular = None
    ) -> Response[m.DeltaResponse]:
        return _delta_point(request, ticker.upper(), None, days, None, Adjust(CHANGE_BASIS))

    allow_head(
        [
            list_exchanges,
            one_exchange,
            list_tickers,
            one_ticker,
            eod_bars,
            eod_history,
            eod_latest,
            eod_on_date,
            eod_delta,
            movers,
            list_actions,
            legacy_latest,
            legacy_delta,
        ]
    )
    v1 = Router(
        path="/v1",
        route_handlers=[
            list_exchanges,
            one_exchange,
            list_tickers,
            one_ticker,
            eod_bars,
            eod_history,
            eod_latest,
            eod_on_date,
            eod_delta,
            movers,
            list_actions,
            run_sql,
        ],
        before_request=authorize,
    )
    legacy = Router(
        path="/", route_handlers=[legacy_latest, legacy_delta], before_request=authorize
    )
    return [v1, legacy]


def _sql_answer(sandbox: SqlSandbox, data: m.SqlRequest, fmt: str) -> Response[Any]:
    import msgspec

    result = sandbox.run(data.sql, limit=data.limit)
    table: pa.Table = result.table
    headers = {"Cache-Control": "no-store", "X-Truncated": str(bool(result.truncated)).lower()}
    if fmt == "csv":
        return Response(encode_csv(table), media_type="text/csv", headers=headers)
    if fmt == "arrow":
        return Response(encode_arrow(table), media_type=ARROW, headers=headers)
    body = m.SqlResponse(
        columns=[m.SqlColumn(name=f.name, type=str(f.type)) for f in table.schema],
        rows=[list(r.values()) for r in table.to_pylist()],
        row_count=table.num_rows,
        truncated=bool(result.truncated),
        elapsed_ms=round(float(result.elapsed_ms), 3),
    )
    return Response(msgspec.json.encode(body), media_type="application/json", headers=headers)


def _latest(
    request: Request[Any, Any, Any], sym: str, mic: str | None, adjust: Adjust
) -> Response[Any]:
    services = services_of(request)
    version = services.store.current_version()

    def compute() -> Payload:
        resolved = services.store.resolve(sym, mic, version)
        table, _ = services.store.bars(
            sym,
            exchange=resolved,
            version=version,
            date_from=None,
            date_to=None,
            adjust=adjust,
            limit=1,
            offset=0,
            order="desc",
        )
        bars = _bars(table)
        body = m.LatestBar(
            data=bars[0],
            adjusted=adjust.adjusted,
            lake_version=version,
            adjust=adjust.basis,
            adjust_as_of=adjust.as_of,
        )
        return Payload(body, table.table)

    return services.responder.respond(
        request, version=version, allowed=("json", "csv"), compute=compute
    )


def _delta_point(
    request: Request[Any, Any, Any],
    sym: str,
    mic: str | None,
    days: int,
    day: dt.date | None,
    adjust: Adjust,
) -> Response[Any]:
    services = services_of(request)
    version = services.store.current_version()

    def compute() -> Payload:
        resolved = services.store.resolve(sym, mic, version)
        delta = services.store.delta(
            sym, exchange=resolved, version=version, days=days, day=day, adjust=adjust
        )
        return Payload(
            m.DeltaResponse(
                data=delta,
                adjusted=adjust.adjusted,
                lake_version=version,
                adjust=adjust.basis,
                adjust_as_of=adjust.as_of,
            ),
            _structs_table([delta], m.Delta),
        )

    return services.responder.respond(
        request, version=version, allowed=("json", "csv", "arrow"), compute=compute
    )


def _exchange(e: catalog.Exchange) -> m.Exchange:
    return m.Exchange(
        mic=e.mic,
        name=e.name,
        acronym=e.acronym,
        country=e.country,
        country_code=e.country_code,
        city=e.city,
        timezone=e.timezone,
        currency=e.currency_code,
        website=e.website,
        active=bool(e.active),
    )


def _ticker(t: catalog.Ticker, mic: str) -> m.Ticker:
    return m.Ticker(
        symbol=t.symbol,
        exchange_mic=mic,
        name=t.name,
        currency=t.currency_code,
        active=bool(t.active),
        first_ingested=t.first_ingested,
        last_ingested=t.last_ingested,
    )


__all__ = ["BAR_SCHEMA", "authorize", "build_routes", "guard"]
