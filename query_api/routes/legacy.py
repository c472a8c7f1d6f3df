"""The two routes of the first API, kept for old clients."""

# Annotations stay evaluated: the handlers use limits local to handlers().

from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from query_api import _models as m
from query_api._data import AS_TRADED, CHANGE_BASIS, Adjust
from query_api._settings import ApiSettings
from query_api.routes._common import (
    DELTA_FLAG,
    ERRORS,
    TICKER_FLAG,
    FormatFlat,
    FormatTabular,
    Symbol,
    _op,
    days_param,
    hot_path,
)
from query_api.routes.deltas import _delta_point
from query_api.routes.eod import _latest


def handlers(settings: ApiSettings) -> list[HTTPRouteHandler]:
    """The legacy routes, with the day limit taken from `settings`."""
    Days = Annotated[int, days_param(settings)]  # noqa: N806

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

    return [legacy_latest, legacy_delta]
