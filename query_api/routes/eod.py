"""End-of-day bars: one ticker (by date, range or latest), its history, every ticker on a date."""

# Annotations stay evaluated: the handlers use limits local to handlers().

import datetime as dt
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.params import QueryParameter
from litestar.types import ASGIApp, Receive, Scope, Send

from query_api import _models as m
from query_api._data import AS_TRADED, Adjust, Bars
from query_api._respond import Payload, attachment_name, negotiate
from query_api._settings import ApiSettings
from query_api.routes._common import (
    _ARROW_NOTE,
    _FORMAT_NOTE,
    ADJUST_RULES,
    BAR_FORMATS,
    MIC_PATTERN,
    TICKER_FLAG,
    Adjusted,
    AdjustParam,
    AsOfParam,
    DateParam,
    ExchangeParam,
    FormatAll,
    FormatFlat,
    FromParam,
    OffsetParam,
    Symbol,
    ToParam,
    _adjust_of,
    _check_order,
    _check_range,
    _errors,
    _op,
    _page,
    _upper,
    default_page_size,
    hot_path,
    services_of,
)
from query_api.routes._guard import guard
from stockdata.errors import InvalidInputError
from stockdata.symbols import SYMBOL_PATTERN

_STREAM_NOTE = (
    "; Parquet with `Accept: application/vnd.apache.parquet` or `format=parquet`. "
    "A range in CSV, Arrow or Parquet without `limit` is one streamed download of every row "
    "(`Content-Disposition: attachment`, `X-Total-Count`); JSON, and any format with `limit`, "
    "is a page with `X-Total-Count` and `Link` (rel=next/prev) headers"
)
Sort = Annotated[Literal["asc", "desc"], QueryParameter(description="Date order.")]

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


def _span(lo: dt.date | None, hi: dt.date | None) -> str:
    return f"{lo.isoformat() if lo else 'start'}_{hi.isoformat() if hi else 'end'}"


def _bars(bars: Bars) -> list[m.Bar]:
    return [m.Bar(*row) for row in bars.rows()]


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


def handlers(settings: ApiSettings) -> list[HTTPRouteHandler]:
    """The bar routes, with page and range limits taken from `settings`."""
    max_page = settings.api_max_page_size
    default_page = default_page_size(settings)
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

    return [eod_bars, eod_history, eod_latest, eod_on_date]


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
