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
from query_api import _models as m
from query_api._auth import require_role
from query_api._data import BAR_SCHEMA, Bars
from query_api._flags import DELTA_API, SQL_API, TICKER_API
from query_api._problems import PROBLEM_MEDIA_TYPE, Problem
from query_api._respond import ARROW, Payload, encode_arrow, encode_csv, negotiate
from query_api._settings import ApiSettings
from query_api._state import Services
from stockdata.errors import FeatureDisabledError, InvalidInputError

SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,31}$"
MIC_PATTERN = r"^[A-Za-z]{4}$"

TICKER_FLAG = TICKER_API
DELTA_FLAG = DELTA_API
SQL_FLAG = SQL_API

_FORMAT_NOTE = " Formats: JSON by default; CSV with `Accept: text/csv` or `format=csv`{arrow}."
_ARROW_NOTE = (
    "; Arrow IPC stream with `Accept: application/vnd.apache.arrow.stream` or `format=arrow`"
)

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
    bool,
    QueryParameter(
        description="Return split/dividend-adjusted prices (raw prices where a provider has no "
        "adjusted ones).",
    ),
]
DateParam = Annotated[
    dt.date | None,
    QueryParameter(
        name="date",
        required=False,
        description="ISO date, e.g. 2008-10-10.",
        examples=[Example(value="2008-10-10")],
    ),
]
FromParam = Annotated[
    dt.date | None,
    QueryParameter(
        name="from",
        required=False,
        description="First date of the range (inclusive).",
        examples=[Example(value="2008-09-01")],
    ),
]
ToParam = Annotated[
    dt.date | None,
    QueryParameter(
        name="to",
        required=False,
        description="Last date of the range (inclusive).",
        examples=[Example(value="2008-10-10")],
    ),
]
OffsetParam = Annotated[int, QueryParameter(ge=0, le=1_000_000_000, description="Rows to skip.")]


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


def hot_path(
    fn: Callable[..., Response[Any]],
) -> Callable[..., Coroutine[Any, Any, Response[Any]]]:
    """Answer on the event loop when the hot index holds the current version, else in a thread.

    The index path is pure numpy (microseconds), so the thread hop would cost more than the
    lookup; DuckDB queries and the Delta log poll always run in a worker thread.
    """

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Response[Any]:
        store = services_of(kwargs["request"]).store
        fresh, version = store.fresh_version()
        if fresh and not kwargs.get("series") and store.index_for(version) is not None:
            return fn(*args, **kwargs)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    return wrapper


def services_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Services:
    services: Services = connection.app.state.services
    return services


async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Authenticate (when an authenticator is configured), then check the route's flag."""
    services = services_of(connection)
    principal = await services.authenticator.authenticate(_headers(connection.scope))
    # What `connection.state.principal = ...` does, without a State wrapper per request.
    connection.scope.setdefault("state", {})["principal"] = principal
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
    await guard(request, request.scope["route_handler"])


#: The parameters the point-lookup lane reads; any other one sends a request the long way.
_POINT_LOOKUP_PARAMS = frozenset({"date", "exchange", "adjusted"})
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
    MoversLimit = Annotated[  # noqa: N806
        int, QueryParameter(ge=1, le=max_page, description="How many tickers.")
    ]

    # -- exchanges and tickers (catalog) -----------------------------------------------------

    @get(
        "/exchanges",
        sync_to_thread=True,
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
                description="Symbol prefix or part of the name.",
                examples=[Example(value="MS")],
            ),
        ] = None,
        exchange: ExchangeParam = None,
        limit: Limit = default_page,
        offset: OffsetParam = 0,
    ) -> m.TickerPage:
        services = services_of(request)
        with services.catalog.session() as session:
            rows, total = catalog.search_tickers(
                session, query=q or None, exchange_mic=_upper(exchange), limit=limit, offset=offset
            )
            data = [_ticker(t, mic) for t, mic in rows]
        return m.TickerPage(data=data, pagination=_page(limit, offset, total))

    @get(
        "/tickers/{symbol:str}",
        sync_to_thread=True,
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
        adjusted: bool = False,
        sort: Literal["asc", "desc"] = "asc",
        limit: int = default_page,
        offset: int = 0,
    ) -> Response[m.BarPage]:
        """`GET /v1/eod/{symbol}` once its parameters are parsed (by Litestar or the lane)."""
        services = services_of(request)
        if date is not None and (date_from is not None or date_to is not None):
            raise InvalidInputError("pass either date or from/to, not both", code="invalid-range")
        lo, hi = (date, date) if date is not None else (date_from, date_to)
        _check_range(settings, lo, hi)
        lo_hi_latest = lo is None and hi is None
        if lo is not None and hi is None:
            _check_range(settings, lo, dt.date.today())
        if hi is not None and lo is None:
            lo = dt.date(hi.year - settings.api_max_range_years, hi.month, 1)
        version = services.store.current_version()

        def compute() -> Payload:
            resolved = services.store.resolve(sym, mic, version)
            if lo_hi_latest:
                table, total = services.store.bars(
                    sym,
                    exchange=resolved,
                    version=version,
                    date_from=None,
                    date_to=None,
                    adjusted=adjusted,
                    limit=1,
                    offset=0,
                    order="desc",
                )
                total = min(total, 1)
            else:
                table, total = services.store.bars(
                    sym,
                    exchange=resolved,
                    version=version,
                    date_from=lo,
                    date_to=hi,
                    adjusted=adjusted,
                    limit=limit,
                    offset=offset,
                    order=sort,
                )
            page = m.BarPage(
                data=_bars(table),
                pagination=_page(
                    limit if not lo_hi_latest else 1, offset if not lo_hi_latest else 0, total
                ),
                adjusted=adjusted,
                lake_version=version,
            )
            return Payload(page, table.table)

        # One bar from the hot index costs about what a cache hit does: cache it when asked
        # for again, not on first sight.
        one_bar = (lo_hi_latest or date is not None) and services.store.index_for(version)
        return services.responder.respond(
            request,
            version=version,
            allowed=("json", "csv", "arrow"),
            compute=compute,
            admit="repeat" if one_bar else "always",
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
        await authorize(request)
        query = simple_query(request.scope["query_string"], _POINT_LOOKUP_PARAMS)
        if query is None or "date" not in query:
            return None
        symbol = request.scope["path_params"].get("symbol", "")
        day = _iso_date(query["date"])
        adjusted = _BOOLEANS.get(query.get("adjusted", "false"))
        mic = query.get("exchange")
        if (
            day is None
            or adjusted is None
            or _SYMBOL.fullmatch(symbol) is None
            or (mic is not None and _MIC.fullmatch(mic) is None)
        ):
            return None
        services = services_of(request)
        fresh, version = services.store.fresh_version()
        if not fresh or services.store.index_for(version) is None:
            return None
        response = eod_page(request, symbol.upper(), _upper(mic), date=day, adjusted=adjusted)
        services.metrics.lane_answer()
        return response

    @get(
        "/eod/{symbol:str}",
        responses=ERRORS,
        summary="Bars of one ticker",
        description="One date (`date`), a range (`from`/`to`), or the latest bar; sorted by date."
        + _FORMAT_NOTE.format(arrow=_ARROW_NOTE),
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
        adjusted: Adjusted = False,
        sort: Annotated[Literal["asc", "desc"], QueryParameter(description="Date order.")] = "asc",
        limit: Limit = default_page,
        offset: OffsetParam = 0,
    ) -> Response[m.BarPage]:
        return eod_page(
            request,
            symbol.upper(),
            _upper(exchange),
            date=date,
            date_from=date_from,
            date_to=date_to,
            adjusted=adjusted,
            sort=sort,
            limit=limit,
            offset=offset,
        )

    @get(
        "/eod/{symbol:str}/latest",
        responses=ERRORS,
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
        adjusted: Adjusted = False,
    ) -> Response[m.LatestBar]:
        return _latest(request, symbol.upper(), _upper(exchange), adjusted)

    @get(
        "/eod",
        responses=ERRORS,
        summary="Every ticker on one date",
        description="All bars of one trading date, by ticker."
        + _FORMAT_NOTE.format(arrow=_ARROW_NOTE),
        tags=["eod"],
        opt={"flag": TICKER_FLAG},
    )
    @hot_path
    def eod_on_date(
        request: Request[Any, Any, Any],
        date: Annotated[
            dt.date,
            QueryParameter(
                name="date", description="ISO date.", examples=[Example(value="2008-10-10")]
            ),
        ],
        exchange: ExchangeParam = None,
        adjusted: Adjusted = False,
        limit: Limit = max_page,
        offset: OffsetParam = 0,
    ) -> Response[m.BarPage]:
        services = services_of(request)
        mic = _upper(exchange)
        version = services.store.current_version()

        def compute() -> Payload:
            table, total = services.store.on_date(
                date, exchange=mic, version=version, adjusted=adjusted, limit=limit, offset=offset
            )
            page = m.BarPage(
                data=_bars(table),
                pagination=_page(limit, offset, total),
                adjusted=adjusted,
                lake_version=version,
            )
            return Payload(page, table.table)

        return services.responder.respond(
            request, version=version, allowed=("json", "csv", "arrow"), compute=compute
        )

    # -- deltas and movers ----------------------------------------------------------------------

    @get(
        "/eod/{symbol:str}/delta",
        responses=ERRORS,
        summary="Change over N trading sessions",
        description="Absolute and percent change of the close over N sessions ending at `date` "
        "(the last session on or before it; the latest when absent). Session order, not "
        "calendar days. Fewer than N earlier sessions: null change with a `reason`. "
        "`series=true` returns the rolling N-session change for every session in `from`..`to`."
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
        adjusted: Adjusted = False,
        limit: Limit = default_page,
        offset: OffsetParam = 0,
    ) -> Response[m.DeltaResponse | m.DeltaSeries]:
        if not series:
            if date_from is not None or date_to is not None:
                raise InvalidInputError("from/to need series=true", code="invalid-range")
            return _delta_point(request, symbol.upper(), _upper(exchange), days, date, adjusted)
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
                days=days,
                date_from=date_from,
                date_to=date_to,
                adjusted=adjusted,
                limit=limit,
                offset=offset,
            )
            rows = [
                m.Delta(
                    **r,
                    reason=None
                    if r["start_date"] is not None
                    else f"fewer than {days} earlier sessions",
                )
                for r in table.to_pylist()
            ]
            body = m.DeltaSeries(
                data=rows,
                pagination=_page(limit, offset, total),
                adjusted=adjusted,
                lake_version=version,
            )
            return Payload(body, table)

        return services.responder.respond(
            request, version=version, allowed=("json", "csv", "arrow"), compute=compute
        )

    @get(
        "/movers",
        responses=ERRORS,
        summary="Top gainers or losers over N sessions",
        description="Tickers with a bar on `date`, ranked by percent change of the close over N "
        "sessions ending there (ties by ticker)." + _FORMAT_NOTE.format(arrow=""),
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
        adjusted: Adjusted = False,
    ) -> Response[m.MoversResponse]:
        services = services_of(request)
        mic = _upper(exchange)
        version = services.store.current_version()

        def compute() -> Payload:
            rows = services.store.movers(
                date,
                days=days,
                exchange=mic,
                version=version,
                limit=limit,
                order=order,
                adjusted=adjusted,
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
                adjusted=adjusted,
                data=data,
                lake_version=version,
            )
            return Payload(body, _structs_table(data, m.Mover))

        return services.responder.respond(
            request, version=version, allowed=("json", "csv"), compute=compute
        )

    # -- SQL ----------------------------------------------------------------------------------

    @post(
        "/sql",
        sync_to_thread=True,
        responses=ERRORS,
        summary="Run one read-only SQL query",
        description="One SELECT or WITH statement over the views `eod`, `eod_deltas`, "
        "`eod_rejects`, in a sandboxed worker with time, row and byte limits. Needs the analyst "
        "role. JSON by default; CSV or Arrow IPC stream by `Accept` or `format`.",
        tags=["sql"],
        opt={"flag": SQL_FLAG, "role": "analyst"},
        status_code=200,
    )
    def run_sql(
        request: Request[Any, Any, Any], data: JSONBody[m.SqlRequest]
    ) -> Response[m.SqlResponse]:
        services = services_of(request)
        fmt = negotiate(request, ("json", "csv", "arrow"))
        if services.sandbox is None:
            raise FeatureDisabledError(
                "the SQL sandbox is not available in this build", code="feature-disabled"
            )
        result = services.sandbox.run(data.sql, limit=data.limit)
        table: pa.Table = result.table
        headers = {"Cache-Control": "no-store", "X-Truncated": str(bool(result.truncated)).lower()}
        if fmt == "csv":
            return Response(encode_csv(table), media_type="text/csv", headers=headers)  # type: ignore[arg-type]
        if fmt == "arrow":
            return Response(encode_arrow(table), media_type=ARROW, headers=headers)  # type: ignore[arg-type]
        import msgspec

        body = m.SqlResponse(
            columns=[m.SqlColumn(name=f.name, type=str(f.type)) for f in table.schema],
            rows=[list(r.values()) for r in table.to_pylist()],
            row_count=table.num_rows,
            truncated=bool(result.truncated),
            elapsed_ms=round(float(result.elapsed_ms), 3),
        )
        return Response(msgspec.json.encode(body), media_type="application/json", headers=headers)  # type: ignore[arg-type]

    # -- legacy routes --------------------------------------------------------------------------

    @get(
        "/eod/ticker/{ticker:str}",
        responses=ERRORS,
        summary="Latest bar (legacy route)",
        tags=["legacy"],
        opt={"flag": TICKER_FLAG},
    )
    @hot_path
    def legacy_latest(request: Request[Any, Any, Any], ticker: Symbol) -> Response[m.LatestBar]:
        return _latest(request, ticker.upper(), None, False)

    @get(
        "/eod/ticker/{ticker:str}/delta/{days:int}",
        responses=ERRORS,
        summary="Change over N sessions to the latest bar (legacy route)",
        tags=["legacy"],
        opt={"flag": DELTA_FLAG},
    )
    @hot_path
    def legacy_delta(
        request: Request[Any, Any, Any], ticker: Symbol, days: Days
    ) -> Response[m.DeltaResponse]:
        return _delta_point(request, ticker.upper(), None, days, None, False)

    v1 = Router(
        path="/v1",
        route_handlers=[
            list_exchanges,
            one_exchange,
            list_tickers,
            one_ticker,
            eod_bars,
            eod_latest,
            eod_on_date,
            eod_delta,
            movers,
            run_sql,
        ],
        before_request=authorize,
    )
    legacy = Router(
        path="/", route_handlers=[legacy_latest, legacy_delta], before_request=authorize
    )
    return [v1, legacy]


def _latest(
    request: Request[Any, Any, Any], sym: str, mic: str | None, adjusted: bool
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
            adjusted=adjusted,
            limit=1,
            offset=0,
            order="desc",
        )
        bars = _bars(table)
        return Payload(
            m.LatestBar(data=bars[0], adjusted=adjusted, lake_version=version), table.table
        )

    return services.responder.respond(
        request, version=version, allowed=("json", "csv"), compute=compute
    )


def _delta_point(
    request: Request[Any, Any, Any],
    sym: str,
    mic: str | None,
    days: int,
    day: dt.date | None,
    adjusted: bool,
) -> Response[Any]:
    services = services_of(request)
    version = services.store.current_version()

    def compute() -> Payload:
        resolved = services.store.resolve(sym, mic, version)
        delta = services.store.delta(
            sym, exchange=resolved, version=version, days=days, day=day, adjusted=adjusted
        )
        return Payload(
            m.DeltaResponse(data=delta, adjusted=adjusted, lake_version=version),
            _structs_table([delta], m.Delta),
        )

    return services.responder.respond(
        request, version=version, allowed=("json", "csv"), compute=compute
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
