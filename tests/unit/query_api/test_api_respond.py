"""Content negotiation, ETags and the version-keyed response cache."""

from __future__ import annotations

import time
from typing import Literal

import pytest
from litestar.testing import RequestFactory

from query_api._metrics import ApiMetrics
from query_api._models import Live
from query_api._respond import (
    Encoded,
    Payload,
    Responder,
    ResponseCache,
    _matches,
    etag_for,
    negotiate,
    request_key,
)
from stockdata.errors import InvalidInputError

ALL = ("json", "csv", "arrow")


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        ({}, None, "json"),
        ({}, "*/*", "json"),
        ({}, "text/csv", "csv"),
        ({}, "application/vnd.apache.arrow.stream", "arrow"),
        ({}, "text/csv;q=0.5, application/vnd.apache.arrow.stream;q=0.9", "arrow"),
        ({}, "text/csv;q=0", "json"),
        ({"format": "csv"}, "application/vnd.apache.arrow.stream", "csv"),
        ({"format": "json"}, "text/csv", "json"),
    ],
)
def test_negotiate(query: dict[str, str], accept: str | None, expected: str) -> None:
    headers = {"accept": accept} if accept else {}
    request = RequestFactory().get("/v1/eod/MSFT", query_params=query, headers=headers)
    assert negotiate(request, ALL) == expected


def test_negotiate_refuses_a_format_the_route_does_not_serve() -> None:
    request = RequestFactory().get("/v1/movers", query_params={"format": "arrow"})
    with pytest.raises(InvalidInputError) as err:
        negotiate(request, ("json", "csv"))
    assert err.value.code == "unsupported-format"
    arrow_accept = RequestFactory().get(
        "/v1/movers", headers={"accept": "application/vnd.apache.arrow.stream"}
    )
    assert negotiate(arrow_accept, ("json", "csv")) == "json"


def test_request_key_ignores_parameter_order() -> None:
    a = RequestFactory().get(
        "/v1/eod/MSFT", query_params={"from": "2008-01-01", "to": "2008-02-01"}
    )
    b = RequestFactory().get(
        "/v1/eod/MSFT", query_params={"to": "2008-02-01", "from": "2008-01-01"}
    )
    assert request_key(a, "json") == request_key(b, "json")
    assert request_key(a, "json") != request_key(a, "csv")


def test_etag_depends_on_version_and_request() -> None:
    assert etag_for(3, "GET /a") == etag_for(3, "GET /a")
    assert etag_for(3, "GET /a") != etag_for(4, "GET /a")
    assert etag_for(3, "GET /a") != etag_for(3, "GET /b")
    tag = etag_for(3, "GET /a")
    assert _matches(tag, tag)
    assert _matches(f'"other", W/{tag}', tag)
    assert _matches("*", tag)
    assert not _matches('"other"', tag)
    assert not _matches(None, tag)


def test_cache_is_keyed_by_version_bounded_and_expires() -> None:
    cache = ResponseCache(entries=2, max_age=60)
    hit = Encoded(b"x", "application/json", time.monotonic())
    cache.put(1, "a", hit)
    assert cache.get(1, "a") == hit
    assert cache.get(2, "a") is None
    cache.put(1, "b", hit)
    cache.get(1, "a")
    cache.put(1, "c", hit)  # evicts b, the least recently used
    assert cache.get(1, "b") is None
    assert cache.get(1, "a") == hit
    stale = ResponseCache(entries=10, max_age=5)
    stale.put(1, "a", Encoded(b"x", "application/json", time.monotonic() - 6))
    assert stale.get(1, "a") is None
    assert len(stale) == 0


def test_cache_holds_at_most_its_byte_budget_and_skips_answers_above_an_eighth() -> None:
    cache = ResponseCache(entries=100, max_age=60, max_bytes=800)
    now = time.monotonic()
    for key in "abcd":
        cache.put(1, key, Encoded(b"x" * 100, "application/json", now))
    assert (len(cache), cache.nbytes) == (4, 400)
    cache.put(1, "a", Encoded(b"y" * 100, "application/json", now))  # replaced, not added
    assert (len(cache), cache.nbytes) == (4, 400)
    cache.put(1, "big", Encoded(b"z" * 101, "application/json", now))  # 101 * 8 > 800
    assert (cache.get(1, "big"), len(cache), cache.nbytes) == (None, 4, 400)
    for key in "efghi":
        cache.put(1, key, Encoded(b"x" * 100, "application/json", now))
    # 9 bodies of 100 bytes against a budget of 800: the least recently used one went
    assert (len(cache), cache.nbytes, cache.get(1, "b")) == (8, 800, None)
    assert cache.get(1, "a") is not None and cache.get(1, "i") is not None
    cache.clear()
    assert (len(cache), cache.nbytes) == (0, 0)


def test_doorkeeper_admits_a_key_on_its_second_sighting_and_starts_over_when_full() -> None:
    cache = ResponseCache(entries=2, max_age=60)
    assert [cache.seen_before(1, "a"), cache.seen_before(1, "a")] == [False, True]
    assert cache.seen_before(2, "a") is False  # another lake version is another key
    cache.seen_before(1, "b")  # the doorkeeper holds 2 keys: full, so it started over
    assert [cache.seen_before(1, "a"), cache.seen_before(2, "a")] == [False, False]


@pytest.mark.parametrize(("admit", "computed", "cached"), [("always", 1, 1), ("repeat", 2, 1)])
def test_responder_admission(
    admit: Literal["always", "repeat"], computed: int, cached: int
) -> None:
    cache = ResponseCache(entries=10, max_age=60)
    responder = Responder(cache, ApiMetrics(), max_age=60)
    calls = []

    def compute() -> Payload:
        calls.append(1)
        return Payload(Live(status="ok"))

    request = RequestFactory().get("/v1/eod/MSFT", query_params={"date": "2008-10-10"})
    bodies = [
        responder.respond(request, version=7, allowed=ALL, compute=compute, admit=admit).content
        for _ in range(3)
    ]
    assert bodies == [b'{"status":"ok"}'] * 3
    assert (len(calls), len(cache)) == (computed, cached)
