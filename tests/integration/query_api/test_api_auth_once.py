"""The credential is checked once per request, also when the point lane steps aside.

The lane guards a request before it knows whether it can answer; when it declines (or the
check fails), the route's guard runs again on the same request and must reuse the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

import catalog
import lake
from catalog import Role
from query_api import create_app
from query_api._auth import ApiKeyAuthenticator, Principal
from query_api._hardening import SecuritySettings
from tests.integration.query_api.conftest import api_settings

PROBLEMS = "https://stockdata.dev/problems/"


class CountingAuthenticator:
    """The real API-key authenticator, counting how often it is asked."""

    def __init__(self, engine: Engine) -> None:
        self._inner = ApiKeyAuthenticator(engine, cache_seconds=0)
        self.calls = 0

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        self.calls += 1
        return await self._inner.authenticate(headers)


@pytest.mark.parametrize(
    ("path", "bar"),
    [
        ("/v1/eod/MSFT?date=2008-10-10", ("2008-10-10", 18.029)),  # the lane answers
        ("/v1/eod/MSFT?date=2008-10-10&sort=asc", ("2008-10-10", 18.029)),  # it steps aside
        ("/v1/eod/MSFT", ("2017-11-10", 83.87)),  # no date: it steps aside
    ],
)
def test_the_credential_is_checked_once(
    sample_lake: lake.LakeSettings, seeded: Engine, path: str, bar: tuple[str, float]
) -> None:
    lake.publish(sample_lake)  # the serving form, so the lane may answer
    counting = CountingAuthenticator(seeded)
    app = create_app(
        api_settings(api_serving=True, api_lake_poll_seconds=3600),
        lake_settings=sample_lake,
        engine=seeded,
        authenticator=counting,
        sql=False,
        security_settings=SecuritySettings(rate_limit_per_minute=0),
        access_logs=False,
    )
    with catalog.session_scope(seeded) as s:
        _, key = catalog.create_api_key(s, name="auth-once", role=Role.READER)
    with TestClient(app) as client:
        missing = client.get(path)
        assert (missing.status_code, missing.json()["type"]) == (401, PROBLEMS + "unauthorized")
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert counting.calls == 1
        ok = client.get(path, headers={"X-API-Key": key})
        assert ok.status_code == 200
        assert [(b["date"], b["close"]) for b in ok.json()["data"]] == [bar]
        assert counting.calls == 2
