"""No input gets a 5xx: each of these once answered 500 (issue 11); each must be a 4xx problem."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import TestClient

PROBLEMS = "https://stockdata.dev/problems/"
JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # psycopg refuses NUL in a string literal: refused before the catalog sees it
        ("/v1/tickers?q=%00", (400, "invalid-input")),
        ("/v1/tickers?q=MS%00FT", (400, "invalid-input")),
        ("/v1/tickers?q=%1b%5b2J", (400, "invalid-input")),
        # the implied start of a `to`-only range fell before year 1
        ("/v1/eod/MSFT?to=0001-01-01", (200, None)),
        ("/v1/eod/MSFT?to=0025-12-31", (200, None)),
        ("/v1/eod/MSFT?to=9999-12-31", (200, None)),
        ("/v1/eod/MSFT?from=0001-01-01", (400, "range-too-large")),
        ("/v1/eod/MSFT?date=0001-01-01", (200, None)),
        ("/v1/eod/MSFT?date=9999-12-31", (200, None)),
        ("/v1/eod/MSFT/delta?days=21&date=9999-12-31", (200, None)),
        ("/v1/eod/MSFT/delta?days=21&date=0001-01-01", (404, "not-found")),
        ("/v1/eod/MSFT/delta?days=21&series=true&to=0001-01-01", (200, None)),
        ("/v1/eod/MSFT/delta?days=21&series=true&from=9999-12-31", (200, None)),
        ("/v1/movers?date=9999-12-31&days=21", (200, None)),
        ("/v1/eod?date=0001-01-01", (200, None)),
        # the cross-parameter rules the OpenAPI document now states
        ("/v1/eod/MSFT?date=2008-10-10&from=2008-10-01", (400, "invalid-range")),
        ("/v1/eod/MSFT?date=2008-10-10&to=2008-10-11", (400, "invalid-range")),
        ("/v1/eod/MSFT/delta?days=21&from=2008-10-01", (400, "invalid-range")),
        ("/v1/eod/MSFT/delta?days=21&series=true&date=2008-10-10", (400, "invalid-range")),
    ],
)
def test_bad_query_input_is_a_4xx_problem(
    client: TestClient[Litestar], url: str, expected: tuple[int, str | None]
) -> None:
    response = client.get(url)
    status, problem = expected
    assert response.status_code == status, response.text
    if problem is None:
        assert response.headers["content-type"] == "application/json"
    else:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == PROBLEMS + problem


@pytest.mark.parametrize(
    "body",
    [
        '{"sql":' + "[" * 50_000,
        "[" * 30_000 + "]" * 30_000,
        '{"sql":"SELECT 1","limit":' + "[" * 30_000 + "]" * 30_000 + "}",
        '{"a":' * 10_000 + "1" + "}" * 10_000,
    ],
    ids=["50k-open-arrays", "30k-arrays", "30k-deep-limit", "10k-objects"],
)
def test_a_deeply_nested_json_body_is_400_not_a_recursion_error(
    client: TestClient[Litestar], body: str
) -> None:
    response = client.post("/v1/sql", content=body, headers=JSON)
    assert (response.status_code, response.headers["content-type"]) == (
        400,
        "application/problem+json",
    )
    assert response.json()["type"] == PROBLEMS + "invalid-input"
    assert response.json()["detail"] == "the request is nested too deeply to read"


def test_the_openapi_document_states_the_rules_behind_each_400(
    client: TestClient[Litestar],
) -> None:
    document = client.get("/docs/openapi.json").json()
    assert document["components"]["schemas"]["SqlRequest"] == {
        "properties": {
            "sql": {"type": "string", "minLength": 1, "description": "The query text."},
            "limit": {
                "oneOf": [{"type": "integer"}, {"type": "null"}],
                "minimum": 1,
                "description": "Rows at most (capped by SQL_MAX_ROWS).",
            },
        },
        "additionalProperties": False,
        "type": "object",
        "required": ["sql"],
        "title": "SqlRequest",
    }
    eod = document["paths"]["/v1/eod/{symbol}"]["get"]["responses"]["400"]["description"]
    assert eod == (
        "400 problem (RFC 9457): `invalid-input` for a parameter outside its schema, and "
        "`invalid-range` when `date` is combined with `from` or `to`, or `from` is after `to`; "
        "`range-too-large` when `from`..`to` (or `from`..today) spans more than "
        "`API_MAX_RANGE_YEARS`. `invalid-adjust` when `adjust` and `adjusted` are both sent, "
        "or `adjust_as_of` with the `none` basis."
    )
    delta = document["paths"]["/v1/eod/{symbol}/delta"]["get"]["responses"]["400"]
    assert "`from`/`to` are sent without `series=true`" in delta["description"]
    q = document["paths"]["/v1/tickers"]["get"]["parameters"][0]
    assert (q["name"], q["schema"]["pattern"]) == ("q", "^[^\\x00-\\x1f\\x7f]*$")
