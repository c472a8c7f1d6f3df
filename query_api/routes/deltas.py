"""The change of one ticker's close over N trading sessions: at a date, or as a series."""

# Annotations stay evaluated: the handlers use limits local to handlers().

import datetime as dt
from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import QueryParameter

from query_api import _models as m
from query_api._data import CHANGE_BASIS, Adjust
from query_api._respond import Payload
from query_api._settings import ApiSettings
from query_api.routes._common import (
    _ARROW_NOTE,
    _FORMAT_NOTE,
    ADJUST_RULES,
    DELTA_FLAG,
    Adjusted,
    AdjustParam,
    AsOfParam,
    DateParam,
    ExchangeParam,
    FormatTabular,
    FromParam,
    OffsetParam,
    Symbol,
    ToParam,
    _adjust_of,
    _check_range,
    _errors,
    _op,
    _page,
    _structs_table,
    _upper,
    days_param,
    default_page_size,
    hot_path,
    limit_param,
    services_of,
)
from stockdata.errors import InvalidInputError

DELTA_RULES = (
    "`invalid-range` when `from`/`to` are sent without `series=true`, when `series=true` is "
    "combined with `date`, or `from` is after `to`; `range-too-large` when `from`..`to` spans "
    "more than `API_MAX_RANGE_YEARS`."
)


def handlers(settings: ApiSettings) -> list[HTTPRouteHandler]:
    """The delta route, with page and day limits taken from `settings`."""
    default_page = default_page_size(settings)
    Limit = Annotated[int, limit_param(settings)]  # noqa: N806
    Days = Annotated[int, days_param(settings)]  # noqa: N806

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

    return [eod_delta]


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
