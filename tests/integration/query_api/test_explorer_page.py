"""The explorer's page and files over HTTP (TestClient): headers, content types, the SQL switch."""

from __future__ import annotations

from litestar.testing import TestClient
from sqlalchemy.engine import Engine

import lake
from query_api._explorer import STATIC_DIR, VENDOR_FILES, missing_assets
from query_api._hardening import API_CSP, PAGE_CSP
from tests.integration.query_api.conftest import make_app


def test_the_page_its_files_and_the_csp(sample_lake: lake.LakeSettings, seeded: Engine) -> None:
    assert missing_assets() == []
    with TestClient(make_app(sample_lake, engine=seeded, api_max_page_size=2000)) as c:
        page = c.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["content-security-policy"] == PAGE_CSP
        assert page.headers["cache-control"] == "no-cache"
        # The limits the page splits its requests by; no SQL console in an app without SQL.
        assert '<body data-max-page="2000" data-max-years="25" data-sql="off">' in page.text
        assert "https://cdn" not in page.text
        assert "<script>" not in page.text and "style=" not in page.text

        script = c.get("/static/explorer.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert script.headers["x-content-type-options"] == "nosniff"
        assert script.headers["cache-control"] == "max-age=300"
        assert script.content == (STATIC_DIR / "explorer.js").read_bytes()
        for name in VENDOR_FILES:
            vendored = c.get(f"/static/vendor/{name}")
            assert vendored.status_code == 200, name
        css = c.get("/static/vendor/swagger-ui.css")
        assert css.headers["content-type"].startswith("text/css")

        missing = c.get("/static/nope.js")
        assert missing.status_code == 404
        assert missing.headers["content-security-policy"] == API_CSP
        escape = c.get("/static/../_app.py")
        assert escape.status_code == 404

        assert "/" not in c.get("/docs/openapi.json").json()["paths"]


def test_the_sql_console_shows_when_the_app_has_sql(
    sample_lake: lake.LakeSettings, seeded: Engine
) -> None:
    with TestClient(make_app(sample_lake, engine=seeded, sql=True)) as c:
        assert 'data-sql="on"' in c.get("/").text
