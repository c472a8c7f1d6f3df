"""Exchanges and tickers, from the catalog."""

# Annotations stay evaluated: the handlers use limits local to handlers().

from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import Example
from litestar.params import PathParameter, QueryParameter

import catalog
from query_api import _models as m
from query_api._respond import page_headers
from query_api._settings import ApiSettings
from query_api.routes._common import (
    ERRORS,
    MIC_PATTERN,
    ExchangeParam,
    OffsetParam,
    Symbol,
    _op,
    _page,
    _upper,
    default_page_size,
    limit_param,
    services_of,
)

#: Free text searched in the catalog: anything printable (Postgres refuses NUL in text).
SEARCH_PATTERN = r"^[^\x00-\x1f\x7f]*$"


def handlers(settings: ApiSettings) -> list[HTTPRouteHandler]:
    """The catalog routes, with the page size limit taken from `settings`."""
    default_page = default_page_size(settings)
    Limit = Annotated[int, limit_param(settings)]  # noqa: N806

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

    return [list_exchanges, one_exchange, list_tickers, one_ticker]


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
