"""Whole-history downloads (CSV, Arrow IPC, Parquet streamed whole), JSON pages with Link
headers, gzip above a size, HEAD, and unknown query parameters refused."""

from __future__ import annotations

import csv
import gzip
import io
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from litestar import Litestar
from litestar.testing import TestClient

MSFT_ROWS = 7_983  # stockdata/samples/MSFT.csv: 1986-03-13 .. 2017-11-10
GOOG_ROWS = 2_148  # stockdata/samples/GOOG.csv: 2004-08-19 .. 2013-03-01


def _csv_rows(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode())))


def test_whole_history_as_one_csv(client: TestClient[Litestar]) -> None:
    resp = client.get("/v1/eod/MSFT/history", params={"format": "csv"})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/csv; charset=utf-8"
    assert resp.headers["content-disposition"] == ('attachment; filename="MSFT_XNAS_start_end.csv"')
    assert resp.headers["x-total-count"] == str(MSFT_ROWS)
    rows = _csv_rows(resp.content)
    assert rows[0] == [
        "ticker",
        "exchange_mic",
        "date",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "split_factor",
        "dividend",
        "currency",
        "source",
    ]
    assert len(rows) - 1 == MSFT_ROWS
    assert rows[1][:7] == ["MSFT", "XNAS", "1986-03-13", "0.0672", "0.07533", "0.0672", "0.07533"]
    assert rows[-1][2] == "2017-11-10" and rows[-1][6] == "83.87"


def test_whole_history_as_parquet_and_arrow(client: TestClient[Litestar]) -> None:
    resp = client.get("/v1/eod/MSFT/history", params={"format": "parquet"})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/vnd.apache.parquet"
    assert "content-encoding" not in resp.headers
    table = pq.read_table(io.BytesIO(resp.content))
    assert table.num_rows == MSFT_ROWS
    assert table.column("date")[MSFT_ROWS - 1].as_py().isoformat() == "2017-11-10"
    # 7,983 rows in 65,536-row batches: one row group
    assert pq.ParquetFile(io.BytesIO(resp.content)).num_row_groups == 1

    arrow = client.get(
        "/v1/eod/MSFT/history",
        headers={"Accept": "application/vnd.apache.arrow.stream"},
        params={"sort": "desc"},
    )
    got = ipc.open_stream(pa.BufferReader(arrow.content)).read_all()
    assert got.num_rows == MSFT_ROWS
    assert got.column("close")[0].as_py() == 83.87


def test_a_csv_range_is_no_longer_cut_at_a_page(client: TestClient[Litestar]) -> None:
    """The issue's 2008 CSV (101 lines before): every 2008 session, over the 25-year cap too."""
    resp = client.get(
        "/v1/eod/MSFT", params={"from": "2008-01-01", "to": "2008-12-31", "format": "csv"}
    )
    assert len(_csv_rows(resp.content)) - 1 == 253
    assert resp.headers["x-total-count"] == "253"
    span = client.get(
        "/v1/eod/MSFT", params={"from": "1980-01-01", "to": "2017-12-31", "format": "csv"}
    )
    assert span.status_code == 200
    assert len(_csv_rows(span.content)) - 1 == MSFT_ROWS
    # An explicit limit is a page, and says so.
    page = client.get(
        "/v1/eod/MSFT",
        params={"from": "2008-01-01", "to": "2008-12-31", "format": "csv", "limit": 100},
    )
    assert len(_csv_rows(page.content)) - 1 == 100
    assert page.headers["x-total-count"] == "253"
    assert page.headers["link"] == (
        '</v1/eod/MSFT?from=2008-01-01&to=2008-12-31&format=csv&limit=100&offset=100>; rel="next"'
    )


def test_json_pages_carry_totals_and_links(client: TestClient[Litestar]) -> None:
    first = client.get("/v1/eod/MSFT/history", params={"limit": 5000})
    assert first.status_code == 200
    assert first.headers["x-total-count"] == str(MSFT_ROWS)
    assert first.json()["pagination"] == {
        "limit": 5000,
        "offset": 0,
        "total": MSFT_ROWS,
        "next_offset": 5000,
    }
    assert first.headers["link"] == '</v1/eod/MSFT/history?limit=5000&offset=5000>; rel="next"'
    second = client.get("/v1/eod/MSFT/history", params={"limit": 5000, "offset": 5000})
    assert len(second.json()["data"]) == MSFT_ROWS - 5000
    assert second.headers["link"] == '</v1/eod/MSFT/history?limit=5000&offset=0>; rel="prev"'
    dates = [b["date"] for b in first.json()["data"]] + [b["date"] for b in second.json()["data"]]
    assert (len(set(dates)), dates[0], dates[-1]) == (MSFT_ROWS, "1986-03-13", "2017-11-10")


def test_every_ticker_over_a_range(client: TestClient[Litestar]) -> None:
    resp = client.get(
        "/v1/eod", params={"from": "2008-01-01", "to": "2008-12-31", "format": "parquet"}
    )
    assert resp.headers["content-disposition"] == (
        'attachment; filename="eod_2008-01-01_2008-12-31.parquet"'
    )
    table = pq.read_table(io.BytesIO(resp.content))
    assert table.num_rows == 2 * 253
    keys = list(
        zip(
            [d.isoformat() for d in table.column("date").to_pylist()],
            table.column("ticker").to_pylist(),
            strict=True,
        )
    )
    assert keys[:3] == [("2008-01-02", "GOOG"), ("2008-01-02", "MSFT"), ("2008-01-03", "GOOG")]
    assert keys == sorted(keys)
    whole = client.get("/v1/eod", params={"from": "1900-01-01", "format": "csv"})
    assert len(_csv_rows(whole.content)) - 1 == MSFT_ROWS + GOOG_ROWS
    page = client.get("/v1/eod", params={"from": "2008-01-01", "to": "2008-12-31", "limit": 3})
    assert [(b["date"], b["ticker"]) for b in page.json()["data"]] == keys[:3]
    assert page.json()["pagination"]["total"] == 2 * 253
    missing = client.get("/v1/eod")
    assert (missing.status_code, missing.json()["type"]) == (
        400,
        "https://stockdata.dev/problems/invalid-range",
    )


def test_stream_etag_and_not_modified(client: TestClient[Litestar]) -> None:
    first = client.get("/v1/eod/GOOG/history", params={"format": "arrow"})
    etag = first.headers["etag"]
    again = client.get(
        "/v1/eod/GOOG/history", params={"format": "arrow"}, headers={"If-None-Match": etag}
    )
    assert (again.status_code, again.content) == (304, b"")


def test_gzip_above_the_threshold_only(client: TestClient[Litestar]) -> None:
    params = {"from": "2008-01-01", "to": "2008-12-31", "limit": 300}
    raw = client.get("/v1/eod/MSFT", params=params, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    zipped = client.stream(
        "GET", "/v1/eod/MSFT", params=params, headers={"Accept-Encoding": "gzip"}
    )
    with zipped as resp:
        body = b"".join(resp.iter_raw())
        assert resp.headers["content-encoding"] == "gzip"
        assert resp.headers["vary"] == "Accept, Accept-Encoding, Authorization, X-API-Key"
        assert resp.headers["etag"] == raw.headers["etag"][:-1] + '-gz"'
        assert int(resp.headers["content-length"]) == len(body)
    assert gzip.decompress(body) == raw.content
    assert len(body) * 4 < len(raw.content)
    small = client.get(
        "/v1/eod/MSFT", params={"date": "2008-10-10"}, headers={"Accept-Encoding": "gzip"}
    )
    assert "content-encoding" not in small.headers
    # The gzip validator revalidates too.
    again = client.get(
        "/v1/eod/MSFT",
        params=params,
        headers={"Accept-Encoding": "gzip", "If-None-Match": raw.headers["etag"][:-1] + '-gz"'},
    )
    assert again.status_code == 304


def test_streamed_csv_is_gzipped_when_accepted(client: TestClient[Litestar]) -> None:
    with client.stream(
        "GET",
        "/v1/eod/MSFT/history",
        params={"format": "csv"},
        headers={"Accept-Encoding": "gzip"},
    ) as resp:
        body = b"".join(resp.iter_raw())
        assert resp.headers["content-encoding"] == "gzip"
    assert len(_csv_rows(gzip.decompress(body))) - 1 == MSFT_ROWS


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("/v1/eod/MSFT", {"date": "2008-10-10"}),
        ("/v1/eod/MSFT/history", {"format": "csv"}),
        ("/v1/eod/MSFT/latest", {}),
        ("/v1/exchanges", {}),
        ("/eod/ticker/MSFT", {}),
        ("/health/live", {}),
    ],
)
def test_head_answers_like_get_without_a_body(
    client: TestClient[Litestar], url: str, params: dict[str, Any]
) -> None:
    get = client.get(url, params=params, headers={"Accept-Encoding": "identity"})
    head = client.head(url, params=params, headers={"Accept-Encoding": "identity"})
    assert (head.status_code, head.content) == (get.status_code, b"")
    assert head.headers.get("etag") == get.headers.get("etag")
    assert head.headers["content-type"] == get.headers["content-type"]
    if "content-length" in get.headers:
        assert head.headers["content-length"] == get.headers["content-length"]


@pytest.mark.parametrize(
    ("url", "params", "named"),
    [
        ("/v1/eod/MSFT", {"form": "2008-01-01"}, "'form'"),
        ("/v1/eod/MSFT", {"date": "2008-10-10", "adjustd": "true"}, "'adjustd'"),
        ("/v1/eod/MSFT/history", {"format": "csv", "form": "x", "too": "1"}, "'form', 'too'"),
        ("/v1/movers", {"date": "2008-10-10", "days": "5", "limt": "3"}, "'limt'"),
        ("/v1/exchanges", {"format": "csv"}, "'format'"),
        ("/eod/ticker/MSFT", {"date": "2008-10-10"}, "'date'"),
    ],
)
def test_unknown_query_parameters_are_refused(
    client: TestClient[Litestar], url: str, params: dict[str, str], named: str
) -> None:
    resp = client.get(url, params=params)
    assert resp.status_code == 400
    body = resp.json()
    assert body["type"] == "https://stockdata.dev/problems/unknown-parameter"
    assert body["detail"].startswith(f"unknown query parameter {named}; this route takes: ")


def test_ticker_search_pages_carry_links(client: TestClient[Litestar]) -> None:
    resp = client.get("/v1/tickers", params={"limit": 1})
    total = resp.json()["pagination"]["total"]
    assert resp.headers["x-total-count"] == str(total)
    assert resp.headers["link"] == '</v1/tickers?limit=1&offset=1>; rel="next"'
    last = client.get("/v1/tickers", params={"limit": 1, "offset": total - 1})
    assert last.headers["link"] == f'</v1/tickers?limit=1&offset={total - 2}>; rel="prev"'
