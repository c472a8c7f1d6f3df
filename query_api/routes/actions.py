"""Corporate actions of one ticker."""

from typing import Annotated, Any, Literal

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import QueryParameter

from query_api import _models as m
from query_api._respond import Payload
from query_api.routes._common import (
    _ARROW_NOTE,
    _FORMAT_NOTE,
    TICKER_FLAG,
    ExchangeParam,
    FormatTabular,
    FromParam,
    Symbol,
    ToParam,
    _check_order,
    _errors,
    _op,
    _upper,
    services_of,
)


def handlers() -> list[HTTPRouteHandler]:
    """The actions route."""

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

    return [list_actions]
