"""What the route modules share: parameter types, documented answers, checks, hot_path."""

import datetime as dt
import functools
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

import anyio
import pyarrow as pa
from litestar import Response
from litestar.connection import ASGIConnection
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import PathParameter, QueryParameter
from litestar.types import Scope

from lake import Basis
from query_api import _models as m
from query_api._data import Adjust
from query_api._flags import DELTA_API, SQL_API, TICKER_API
from query_api._problems import PROBLEM_MEDIA_TYPE, Problem
from query_api._respond import _JSON_ACCEPTS, Format, header
from query_api._settings import ApiSettings
from query_api._state import Services
from stockdata.errors import InvalidInputError
from stockdata.symbols import SYMBOL_PATTERN

MIC_PATTERN = r"^[A-Za-z]{4}$"

TICKER_FLAG = TICKER_API
DELTA_FLAG = DELTA_API
SQL_FLAG = SQL_API

_FORMAT_NOTE = " Formats: JSON by default; CSV with `Accept: text/csv` or `format=csv`{arrow}."
_ARROW_NOTE = (
    "; Arrow IPC stream with `Accept: application/vnd.apache.arrow.stream` or `format=arrow`"
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


def default_page_size(settings: ApiSettings) -> int:
    """The page size of a JSON answer whose request names none."""
    return min(settings.api_default_page_size, settings.api_max_page_size)


def limit_param(settings: ApiSettings) -> Any:
    """`limit` of a paged route, at most `API_MAX_PAGE_SIZE`."""
    max_page = settings.api_max_page_size
    return QueryParameter(ge=1, le=max_page, description=f"Page size (at most {max_page}).")


def days_param(settings: ApiSettings) -> Any:
    """`days` of a change route, at most `API_MAX_DELTA_DAYS`."""
    max_days = settings.api_max_delta_days
    return QueryParameter(
        ge=1,
        le=max_days,
        description=f"Number of trading sessions N (1..{max_days}).",
        examples=[Example(value=21)],
    )


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


def _structs_table(rows: list[Any], struct: type[Any]) -> pa.Table:
    import msgspec

    return pa.Table.from_pylist(
        [msgspec.structs.asdict(r) for r in rows],
        schema=None if rows else pa.schema([(f, pa.string()) for f in struct.__struct_fields__]),
    )
