"""Top gainers or losers over N sessions, across tickers."""

# Annotations stay evaluated: the handlers use limits local to handlers().

import datetime as dt
from typing import Annotated, Any, Literal

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import Example
from litestar.params import QueryParameter

from query_api import _models as m
from query_api._data import CHANGE_BASIS
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
    ExchangeParam,
    FormatTabular,
    _adjust_of,
    _errors,
    _op,
    _structs_table,
    _upper,
    days_param,
    hot_path,
    services_of,
)


def handlers(settings: ApiSettings) -> list[HTTPRouteHandler]:
    """The movers route, with its limits taken from `settings`."""
    max_page = settings.api_max_page_size
    Days = Annotated[int, days_param(settings)]  # noqa: N806
    MoversLimit = Annotated[  # noqa: N806
        int, QueryParameter(ge=1, le=max_page, description="How many tickers.")
    ]

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

    return [movers]
