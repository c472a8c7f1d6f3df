"""One read-only SQL query in the sandbox."""

import functools
from typing import Any

import pyarrow as pa
from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody

from query_api import _models as m
from query_api._respond import ARROW, encode_arrow, encode_csv, negotiate
from query_api._sandbox import SqlSandbox
from query_api.routes._common import SQL_FLAG, FormatTabular, _errors, _op, services_of
from stockdata.errors import FeatureDisabledError


def handlers() -> list[HTTPRouteHandler]:
    """The SQL route."""

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
        "`eod_rejects`, `corporate_actions`, `action_factors`, `eod_split_adjusted` and "
        "`eod_adjusted`, in a sandboxed worker with time, row and byte limits. Needs the "
        "analyst role. JSON by default; CSV or Arrow IPC stream by `Accept` or `format`. When "
        "every worker is busy and the queue is full: 503 `sql-busy` with `Retry-After`.",
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

    return [run_sql]


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
