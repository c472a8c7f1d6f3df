"""The explorer page and /docs in a real headless Chromium against a live server, offline.

Debian's chromium (`make browser` installs it) driven by Playwright's client, never a browser
download of Playwright's own. Every request the browser makes is checked: anything that is not
the live server on loopback is refused and fails the test, so the pages are shown to work
without internet. Screenshots: tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import uvicorn
from litestar import Litestar
from playwright.sync_api import BrowserContext, Page, Route, expect, sync_playwright
from sqlalchemy.engine import Engine

import catalog
import lake
from catalog import Role
from query_api import create_app
from query_api._auth import AuthSettings
from query_api._explorer import missing_assets
from query_api._hardening import DOCS_CSP, PAGE_CSP, SecuritySettings
from query_api._sandbox import SqlSettings
from tests import _services
from tests.integration.query_api.conftest import api_settings, read_sample
from tests.stubs.jwks import AUDIENCE, ISSUER, JwksServer

D = dt.date
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
TIMEOUT_MS = 60_000
LOOPBACK = "http://127.0.0.1:"


def js_number(x: float) -> str:
    """A number as JavaScript's String(x) writes it (332, not 332.0)."""
    return str(int(x)) if float(x).is_integer() else repr(x)


def months_before(day: dt.date, months: int) -> dt.date:
    """The page's monthsBefore: the same day `months` earlier, clamped to the month's end."""
    total = day.year * 12 + day.month - 1 - months
    year, month = divmod(total, 12)
    return dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def range_texts(rows: list[dict[str, Any]], months: int | None) -> tuple[str, str]:
    """What the page shows in Range and Change for a range ending at the last bar."""
    last = rows[-1]["date"]
    start = None if months is None else months_before(last, months) + dt.timedelta(days=1)
    bars = [r for r in rows if start is None or r["date"] >= start]
    first, end = bars[0], bars[-1]
    change = end["close"] - first["close"]
    pct = (end["close"] / first["close"] - 1) * 100
    return (
        f"{first['date']} → {end['date']} ({len(bars)} sessions)",
        f"{change:+.2f} ({pct:+.2f}%) over {len(bars) - 1} sessions",
    )


@dataclass
class LiveServer:
    url: str
    analyst_key: str
    reader_key: str


@dataclass
class Browser:
    context: BrowserContext
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def page(self) -> Page:
        page = self.context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on(
            "console",
            lambda msg: self.errors.append(msg.text) if msg.type == "error" else None,
        )
        return page


@contextlib.contextmanager
def serve(app: Litestar) -> Iterator[str]:
    """`app` under uvicorn on a free loopback port, in a thread; yields its base URL."""
    port = _services.free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="explorer-server", daemon=True)
    thread.start()
    try:
        _services.wait_for_port(port, timeout=60)
        idle = threading.Event()
        while not server.started and thread.is_alive() and not idle.wait(0.05):
            pass
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def explorer_app(sample_lake: lake.LakeSettings, engine: Engine, auth: AuthSettings) -> Litestar:
    return create_app(
        api_settings(),
        lake_settings=sample_lake,
        engine=engine,
        auth_settings=auth,
        sql_settings=SqlSettings(sql_workers=1),
        security_settings=SecuritySettings(rate_limit_per_minute=0),
        access_logs=False,
    )


@pytest.fixture
def live_server(sample_lake: lake.LakeSettings, seeded: Engine) -> Iterator[LiveServer]:
    """The API (api-key auth, SQL on) over the sample lake and the seeded catalog."""
    assert missing_assets() == [], "front-end files missing: run `make assets`"
    with catalog.session_scope(seeded) as session:
        _, analyst = catalog.create_api_key(session, name="analyst", role=Role.ANALYST)
        _, reader = catalog.create_api_key(session, name="reader", role=Role.READER)
    app = explorer_app(sample_lake, seeded, AuthSettings(auth_mode="api-key"))
    with serve(app) as url:
        yield LiveServer(url, analyst, reader)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """Headless Debian chromium with a fresh profile; requests off loopback are refused."""
    assert CHROMIUM.exists(), "Debian's chromium is missing: run `make browser` (as root)"
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=LAUNCH_ARGS,
            viewport={"width": 1280, "height": 900},
            timeout=TIMEOUT_MS,
        )
        state = Browser(context)

        def only_the_server(route: Route) -> None:
            url = route.request.url
            if url.startswith(LOOPBACK) or url.startswith("data:"):
                route.continue_()
            else:
                state.foreign.append(url)
                route.abort()

        context.route("**/*", only_the_server)
        try:
            yield state
        finally:
            context.close()


#: SYN0001's bars end the session before its 2:1 split (ex-date 2015-12-17), which is on record
#: already, as when a split is announced ahead: every bar of the chart is before the ex-date.
SPLIT_EX_DATE = D(2015, 12, 17)
SPLIT_RATIO = 2.0


@pytest.fixture
def split_lake(tmp_path: Path) -> tuple[lake.LakeSettings, list[dict[str, Any]]]:
    """A lake with SYN0001 as traded through 2015-12-16 (its dividends carried on the bars)
    and the 2:1 split of 2015-12-17; also the bars, as rows."""
    settings = lake.LakeSettings(lake_uri=str(tmp_path / "split-lake"))
    bars = lake.synthetic_bars(
        ["SYN0001"], date_from=D(2015, 1, 1), date_to=SPLIT_EX_DATE - dt.timedelta(days=1)
    )
    lake.write_bars(settings, bars, job_id="syn-raw")
    split = pa.table(
        {
            "ticker": ["SYN0001"],
            "exchange_mic": ["XNYS"],
            "ex_date": pa.array([SPLIT_EX_DATE], pa.date32()),
            "kind": ["split"],
            "ratio": [SPLIT_RATIO],
            "amount": pa.array([None], pa.float64()),
            "currency": pa.array([None], pa.string()),
            "source": ["test"],
        }
    )
    assert lake.write_actions(settings, split, job_id="syn-split") == (1, 0)
    kinds = lake.read_actions(settings).column("kind").to_pylist()
    assert kinds == ["dividend", "dividend", "dividend", "split"]
    rows = [
        {"date": r["trade_date"], "close": r["close"]}
        for r in bars.select(["trade_date", "close"]).to_pylist()
    ]
    return settings, rows


def _shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_explorer_search_chart_ranges_movers_and_sql(
    live_server: LiveServer, browser: Browser, samples: Path
) -> None:
    msft = read_sample(samples / "MSFT.csv")
    goog = read_sample(samples / "GOOG.csv")
    page = browser.page()
    response = page.goto(live_server.url + "/")
    assert response is not None and response.status == 200
    assert response.headers["content-security-policy"] == PAGE_CSP

    # No key yet: the API's own 401 detail is shown.
    page.fill("#search", "MSFT")
    page.press("#search", "Enter")
    expect(page.locator("#status")).to_have_text(
        "401: an API key is required: send 'Authorization: Bearer sd_...' or 'X-API-Key: sd_...'"
    )

    page.fill("#api-key", live_server.analyst_key)
    page.dispatch_event("#api-key", "change")
    page.fill("#search", "")
    expect(page.locator("#search-results a")).to_have_count(0)
    page.fill("#search", "MSFT")
    results = page.locator("#search-results a")
    expect(results).to_have_count(1)
    expect(results.first).to_have_text("MSFT · XNAS — Microsoft Corporation")
    with page.expect_request(re.compile(r"/v1/eod/MSFT/latest")) as sent:
        results.first.click()
    assert sent.value.headers.get("x-api-key") == live_server.analyst_key
    assert "authorization" not in sent.value.headers

    # Default range 1Y, ending at the last bar.
    body = page.locator("body")
    expect(body).to_have_attribute("data-chart", "MSFT|XNAS|1Y|1")
    expect(page.locator("#ticker-title")).to_have_text("MSFT · XNAS")
    expect(page.locator("#last-close")).to_have_text(js_number(msft[-1]["close"]))
    expect(page.locator("#last-date")).to_have_text(f"on {msft[-1]['date']}")
    info, change = range_texts(msft, 12)
    expect(page.locator("#range-info")).to_have_text(info)
    expect(page.locator("#range-change")).to_have_text(change)
    assert page.locator("#chart canvas").count() > 0

    # Another range reloads the bars from the API.
    with page.expect_response(re.compile(r"/v1/eod/MSFT\?.*from=2012-11-11")) as reloaded:
        page.click("#ranges button[data-range='5Y']")
    assert reloaded.value.status == 200
    expect(body).to_have_attribute("data-chart", "MSFT|XNAS|5Y|2")
    info, change = range_texts(msft, 60)
    expect(page.locator("#range-info")).to_have_text(info)
    expect(page.locator("#range-change")).to_have_text(change)

    # Max: the whole history, in windows the API accepts (at most 25 years each).
    page.click("#ranges button[data-range='MAX']")
    expect(body).to_have_attribute("data-chart", "MSFT|XNAS|MAX|3")
    info, change = range_texts(msft, None)
    assert info == "1986-03-13 → 2017-11-10 (7983 sessions)"
    expect(page.locator("#range-info")).to_have_text(info)
    expect(page.locator("#range-change")).to_have_text(change)
    expect(page.locator("#last-close")).to_have_text("83.87")
    _shot(page, "explorer-msft-max.png")

    # Gainers on 2008-10-13 (both rose) over one session, as a sortable table.
    page.fill("#movers-date", "2008-10-13")
    page.fill("#movers-days", "1")
    page.click("#movers-form button[type=submit]")
    expect(body).to_have_attribute("data-movers", "2008-10-13|2")
    rows = page.locator("#movers tbody tr")
    expected = [
        ["1", "MSFT", "XNAS", "18.029", "21.385", "+3.36", "+18.61%"],
        ["2", "GOOG", "XNAS", "332", "381.02", "+49.02", "+14.77%"],
    ]
    assert [r.locator("td").all_inner_texts() for r in rows.all()] == expected
    page.click("#movers th[data-key='pct_change']")  # ascending: the smaller gain first
    expect(rows.first.locator("td").nth(1)).to_have_text("GOOG")
    expect(page.locator("#movers th[data-key='pct_change']")).to_have_attribute(
        "aria-sort", "ascending"
    )
    page.click("#movers th[data-key='pct_change']")
    expect(rows.first.locator("td").nth(1)).to_have_text("MSFT")
    _shot(page, "explorer-movers.png")

    # A ticker in the table opens its chart (same range as before).
    page.locator("#movers tbody a", has_text="GOOG").click()
    expect(body).to_have_attribute("data-chart", "GOOG|XNAS|MAX|4")
    expect(page.locator("#ticker-title")).to_have_text("GOOG · XNAS")
    expect(page.locator("#last-close")).to_have_text(js_number(goog[-1]["close"]))
    expect(page.locator("#last-date")).to_have_text("on 2013-03-01")
    expect(page.locator("#range-info")).to_have_text(range_texts(goog, None)[0])
    assert "symbol=GOOG" in page.url

    # The SQL console, with the analyst's key.
    expect(page.locator("#sql-section")).to_be_visible()
    page.fill("#sql", "select ticker, count(*) as n from eod group by ticker order by ticker")
    page.click("#sql-form button[type=submit]")
    expect(page.locator("#sql-status")).to_contain_text("2 rows in ")
    assert page.locator("#sql-result thead th").all_inner_texts() == ["ticker", "n"]
    assert [
        r.locator("td").all_inner_texts() for r in page.locator("#sql-result tbody tr").all()
    ] == [
        ["GOOG", "2148"],
        ["MSFT", "7983"],
    ]

    # A reader's key may chart but not run SQL: the 403 is said, not hidden.
    page.fill("#api-key", live_server.reader_key)
    page.dispatch_event("#api-key", "change")
    expect(body).to_have_attribute("data-chart", "GOOG|XNAS|MAX|5")
    page.click("#sql-form button[type=submit]")
    expect(page.locator("#sql-status")).to_have_text(re.compile(r"^403: .*analyst.*"))
    _shot(page, "explorer.png")

    assert browser.foreign == []
    unexpected = [
        e
        for e in browser.errors
        if not re.fullmatch(
            r"Failed to load resource: the server responded with a status of 40[13] .*", e
        )
    ]
    assert unexpected == []
    first_render = page.evaluate("window.explorer.firstRenderMs")
    print(f"first chart render: {first_render:.0f} ms after navigation start")


def test_docs_render_offline_from_local_assets(live_server: LiveServer, browser: Browser) -> None:
    page = browser.page()
    response = page.goto(live_server.url + "/docs")
    assert response is not None and response.status == 200
    assert response.headers["content-security-policy"] == DOCS_CSP
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("stockdata API")
    operation = page.locator(".opblock-summary-path", has_text="/v1/eod/{symbol}/latest")
    expect(operation).to_have_count(1)
    expect(
        page.locator(".opblock-summary-description", has_text="Bars of one ticker")
    ).to_have_count(1)
    assert page.locator(".opblock").count() >= 12
    _shot(page, "docs.png")
    assert browser.foreign == []
    assert browser.errors == []


def test_explorer_with_a_jwt(
    sample_lake: lake.LakeSettings, seeded: Engine, browser: Browser, samples: Path
) -> None:
    msft = read_sample(samples / "MSFT.csv")
    with JwksServer() as idp:
        auth = AuthSettings(
            auth_mode="jwt", jwt_jwks_url=idp.jwks_url, jwt_audience=AUDIENCE, jwt_issuer=ISSUER
        )
        token = idp.token(extra={"https://stockdata.dev/role": "analyst"})
        with serve(explorer_app(sample_lake, seeded, auth)) as url:
            page = browser.page()
            page.goto(url + "/#symbol=MSFT&exchange=XNAS&range=1M")
            expect(page.locator("#status")).to_contain_text("401: ")
            with page.expect_request(re.compile(r"/v1/eod/MSFT/latest")) as sent:
                page.fill("#api-key", token)
                page.dispatch_event("#api-key", "change")
            assert sent.value.headers.get("authorization") == f"Bearer {token}"
            assert "x-api-key" not in sent.value.headers
            expect(page.locator("body")).to_have_attribute("data-chart", "MSFT|XNAS|1M|1")
            expect(page.locator("#last-close")).to_have_text("83.87")
            info, change = range_texts(msft, 1)
            assert info == "2017-10-11 → 2017-11-10 (23 sessions)"
            expect(page.locator("#range-info")).to_have_text(info)
            expect(page.locator("#range-change")).to_have_text(change)
            page.click("#sql-form button[type=submit]")
            expect(page.locator("#sql-status")).to_contain_text("2 rows in ")
    assert browser.foreign == []


def test_explorer_basis_selector_adjusts_the_chart_and_the_movers(
    split_lake: tuple[lake.LakeSettings, list[dict[str, Any]]], seeded: Engine, browser: Browser
) -> None:
    settings, traded = split_lake
    split = [{**r, "close": r["close"] / SPLIT_RATIO} for r in traded]
    last, before = traded[-1], traded[-2]
    assert (last["date"], last["close"], before["close"]) == (D(2015, 12, 16), 0.6722, 0.6937)
    chart = re.compile(r"/v1/eod/SYN0001(/latest)?\?")
    with serve(explorer_app(settings, seeded, AuthSettings(auth_mode="none"))) as url:
        page = browser.page()
        body = page.locator("body")
        sent: list[str] = []
        page.on("request", lambda r: sent.append(r.url) if chart.search(r.url) else None)

        # As traded by default, and the request says so.
        page.goto(url + "/#symbol=SYN0001&exchange=XNYS&range=1Y")
        expect(body).to_have_attribute("data-chart", "SYN0001|XNYS|1Y|1")
        expect(page.locator("#basis")).to_have_value("none")
        expect(page.locator("#chart-legend")).to_have_text("SYN0001 · XNYS · 1Y · as traded")
        expect(page.locator("#last-close")).to_have_text("0.6722")
        expect(page.locator("#last-date")).to_have_text("on 2015-12-16")
        info, change = range_texts(traded, 12)
        assert info == "2015-01-02 → 2015-12-16 (242 sessions)"
        expect(page.locator("#range-info")).to_have_text(info)
        expect(page.locator("#range-change")).to_have_text(change)
        assert sent and all("adjust=none" in u for u in sent), sent

        # Splits: every bar is before the ex-date, so every price is halved.
        sent.clear()
        with page.expect_request(re.compile(r"/v1/eod/SYN0001\?.*adjust=splits")) as bars:
            page.select_option("#basis", "splits")
        assert "from=2014-12-17" in bars.value.url
        expect(body).to_have_attribute("data-chart", "SYN0001|XNYS|1Y|2")
        expect(page.locator("#chart-legend")).to_have_text("SYN0001 · XNYS · 1Y · split-adjusted")
        assert js_number(0.6722 / SPLIT_RATIO) == "0.3361"
        expect(page.locator("#last-close")).to_have_text("0.3361")
        expect(page.locator("#range-change")).to_have_text(range_texts(split, 12)[1])
        assert sent and all("adjust=splits" in u for u in sent), sent
        assert "adjust=splits" in page.url
        _shot(page, "explorer-basis-splits.png")

        # Splits and dividends: what the API answers for that basis.
        with page.expect_response(re.compile(r"/v1/eod/SYN0001\?.*adjust=all")) as answer:
            page.select_option("#basis", "all")
        expect(body).to_have_attribute("data-chart", "SYN0001|XNYS|1Y|3")
        expect(page.locator("#chart-legend")).to_have_text(
            "SYN0001 · XNYS · 1Y · split- and dividend-adjusted"
        )
        doc = answer.value.json()
        assert doc["adjust"] == "all" and len(doc["data"]) == 242
        total = [{"date": D.fromisoformat(b["date"]), "close": b["close"]} for b in doc["data"]]
        assert total[-1]["close"] == 0.3361  # no dividend after the last bar
        assert total[0]["close"] < split[0]["close"]  # three dividends after the first
        expect(page.locator("#range-change")).to_have_text(range_texts(total, 12)[1])

        # A link reopens the chart on its basis.
        page.goto(url + "/#symbol=SYN0001&exchange=XNYS&range=1M&adjust=splits")
        expect(body).to_have_attribute("data-chart", "SYN0001|XNYS|1M|4")
        expect(page.locator("#basis")).to_have_value("splits")
        expect(page.locator("#last-close")).to_have_text("0.3361")

        # As of the day before the ex-date the split was not known yet: prices as traded.
        expect(page.locator("#asof")).to_be_enabled()
        day_before = re.compile(r"/v1/eod/SYN0001\?.*adjust_as_of=2015-12-16")
        with page.expect_request(day_before) as asof:
            page.fill("#asof", "2015-12-16")
        assert "adjust=splits" in asof.value.url
        expect(body).to_have_attribute("data-chart", "SYN0001|XNYS|1M|5")
        expect(page.locator("#chart-legend")).to_have_text(
            "SYN0001 · XNYS · 1M · split-adjusted · as of 2015-12-16"
        )
        expect(page.locator("#last-close")).to_have_text("0.6722")
        assert "adjust_as_of=2015-12-16" in page.url
        page.fill("#asof", "2015-12-17")  # the ex-date: known
        expect(body).to_have_attribute("data-chart", "SYN0001|XNYS|1M|6")
        expect(page.locator("#last-close")).to_have_text("0.3361")
        page.select_option("#basis", "none")  # as traded takes no as-of
        expect(body).to_have_attribute("data-chart", "SYN0001|XNYS|1M|7")
        expect(page.locator("#asof")).to_be_disabled()
        assert "adjust_as_of" not in page.url

        # Movers keep their route's default (splits) unless a basis is picked for them.
        page.select_option("#movers-order", "losers")
        with page.expect_request(re.compile(r"/v1/movers\?")) as movers:
            page.click("#movers-form button[type=submit]")
        assert "adjust" not in movers.value.url and "date=2015-12-16" in movers.value.url
        expect(body).to_have_attribute("data-movers", "2015-12-16|1")
        caption = page.locator("#movers-caption")
        expect(caption).to_have_text(
            "2015-12-16 · 1 session · split-adjusted (the route's default)"
        )
        pct = f"{(0.6722 / 0.6937 - 1) * 100:+.2f}%"
        start, end = 0.6937 / SPLIT_RATIO, 0.6722 / SPLIT_RATIO
        row = ["1", "SYN0001", "XNYS", js_number(start), js_number(end), f"{end - start:+.2f}", pct]
        expect(page.locator("#movers tbody tr td")).to_have_text(row)
        page.select_option("#movers-basis", "none")
        with page.expect_request(re.compile(r"/v1/movers\?.*adjust=none")):
            page.click("#movers-form button[type=submit]")
        expect(caption).to_have_text("2015-12-16 · 1 session · as traded")
        row = ["1", "SYN0001", "XNYS", "0.6937", "0.6722", f"{(0.6722 - 0.6937):+.2f}", pct]
        expect(page.locator("#movers tbody tr td")).to_have_text(row)
        _shot(page, "explorer-basis-movers.png")
    assert browser.foreign == []
    assert browser.errors == []
