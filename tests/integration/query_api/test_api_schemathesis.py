"""Schemathesis over the app's own OpenAPI document with every check on: no 5xx, schema-true
answers, bad input refused, documented input accepted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from schemathesis.errors import FailureGroup
from schemathesis.generation import GenerationMode
from sqlalchemy.engine import Engine

import catalog
import lake
from tests.integration.query_api.conftest import make_app


@pytest.fixture(scope="module")
def fuzz_catalog(pg_engine: Engine) -> Iterator[Engine]:
    with catalog.session_scope(pg_engine) as session:
        catalog.seed_reference(session)
    yield pg_engine
    tables = ", ".join(t.name for t in catalog.Base.metadata.sorted_tables)
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="module")
def api_schema(sample_lake: lake.LakeSettings, fuzz_catalog: Engine) -> Any:
    app = make_app(sample_lake, engine=fuzz_catalog)
    schema = schemathesis.openapi.from_asgi("/docs/openapi.json", app)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=30
    )
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


def _cross_parameter_rule(case: Any) -> str | None:
    """The problem type of the documented rule between parameters the request breaks, if any.

    OpenAPI states each query parameter's schema on its own; "`date` excludes `from`/`to`",
    "`from`/`to` need `series=true`", "`from` not after `to`" and "at most
    API_MAX_RANGE_YEARS apart" can only be written in the descriptions (they are).
    """
    query = case.query or {}
    if "adjust" in query and "adjusted" in query:
        return "invalid-adjust"
    if "adjust_as_of" in query:
        changes = case.operation.path in {"/v1/eod/{symbol}/delta", "/v1/movers"}
        alias = str(query.get("adjusted", "")).lower()
        basis = query.get("adjust") or (
            {"true": "all", "false": "none"}.get(alias) or ("splits" if changes else "none")
        )
        if basis == "none":
            return "invalid-adjust"
    if case.operation.path in {"/v1/eod/{symbol}/history", "/v1/actions/{symbol}"}:
        lo, hi = query.get("from"), query.get("to")
        if (
            lo is not None
            and hi is not None
            and dt.date.fromisoformat(lo) > dt.date.fromisoformat(hi)
        ):
            return "invalid-range"
        return None
    if case.operation.path not in {"/v1/eod", "/v1/eod/{symbol}", "/v1/eod/{symbol}/delta"}:
        return None
    ranged = "from" in query or "to" in query
    if case.operation.path == "/v1/eod":
        if ("date" in query) == ranged:  # both, or neither
            return "invalid-range"
    elif case.operation.path == "/v1/eod/{symbol}":
        if "date" in query and ranged:
            return "invalid-range"
    else:
        series = str(query.get("series", "false")).lower() == "true"
        if (ranged and not series) or (series and "date" in query):
            return "invalid-range"
    lo = dt.date.fromisoformat(query["from"]) if "from" in query else None
    hi = dt.date.fromisoformat(query["to"]) if "to" in query else None
    if lo is not None and hi is not None and lo > hi:
        return "invalid-range"
    if case.operation.path == "/v1/eod":  # only a page with both ends is bounded
        if lo is not None and hi is not None and (hi - lo).days > 25 * 366:
            return "range-too-large"
    elif lo is not None and (((hi or dt.date.today()) - lo).days > 25 * 366):
        return "range-too-large"
    return None


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_openapi_contract(case: Any) -> None:
    # Every check schemathesis has (none excluded): no 5xx, documented statuses, content
    # types, headers and bodies, bad input refused and schema-valid input accepted. The one
    # allowance: a schema-valid request that breaks a documented cross-parameter rule may
    # get exactly that rule's documented 400 (ST202 cannot know those rules).
    response = case.call()
    try:
        case.validate_response(response)
    except FailureGroup as group:
        rule = _cross_parameter_rule(case)
        allowed = (
            rule is not None
            and response.status_code == 400
            and response.json()["type"] == "https://stockdata.dev/problems/" + rule
        )
        if not allowed or any(failure.code != "ST202" for failure in group.exceptions):
            raise
