"""Schemathesis over the app's own OpenAPI document: no 5xx, schema-true answers, bad input refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
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


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_openapi_contract(case: Any) -> None:
    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ]
    )
