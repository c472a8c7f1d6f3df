"""Token bucket arithmetic and the settings-to-config helpers of query_api._hardening."""

from __future__ import annotations

import pytest

from query_api._hardening import (
    AllowedHostsMiddleware,
    SecuritySettings,
    TokenBuckets,
    cors_config,
)


def test_a_bucket_spends_its_burst_then_refills_at_the_rate() -> None:
    buckets = TokenBuckets(per_minute=60, burst=3, max_keys=100)
    assert buckets.take("k", now=100.0) == (True, 2.0, 0.0)
    assert buckets.take("k", now=100.0) == (True, 1.0, 0.0)
    assert buckets.take("k", now=100.0) == (True, 0.0, 1.0)
    assert buckets.take("k", now=100.0) == (False, 0.0, 1.0)
    assert buckets.take("k", now=100.5) == (False, 0.5, 0.5)
    assert buckets.take("k", now=101.5) == (True, 0.5, 0.5)
    assert buckets.take("other", now=101.5) == (True, 2.0, 0.0)
    assert buckets.take("k", now=1_000.0) == (True, 2.0, 0.0)
    assert buckets.seconds_to_full(0.0) == 3.0


def test_failures_are_charged_after_the_fact_and_overdraw_into_a_debt() -> None:
    failures = TokenBuckets(per_minute=60, burst=2, max_keys=100)
    assert failures.available("10.0.0.1", now=0.0) == (2.0, 0.0)  # looking takes nothing
    for _ in range(5):  # concurrent failures all passed the look before any was charged
        failures.charge("10.0.0.1", now=0.0)
    assert failures.available("10.0.0.1", now=0.0) == (-2.0, 3.0)  # floored at -burst
    assert failures.available("10.0.0.1", now=2.5) == (0.5, 0.5)
    assert failures.available("10.0.0.1", now=3.0) == (1.0, 0.0)
    assert failures.available("10.0.0.2", now=0.0) == (2.0, 0.0)


def test_idle_buckets_are_dropped_when_the_table_is_full() -> None:
    buckets = TokenBuckets(per_minute=60, burst=2, max_keys=2)
    buckets.take("a", now=0.0)
    buckets.take("b", now=9.0)
    buckets.take("c", now=10.0)
    assert sorted(buckets._buckets) == ["b", "c"]


def test_no_cors_without_origins() -> None:
    assert cors_config(SecuritySettings()) is None
    configured = SecuritySettings(cors_origins=["https://app.stockdata.dev"])
    cors = cors_config(configured)
    assert cors is not None and cors.allow_origins == ["https://app.stockdata.dev"]


def _scope(host: str | None, path: str = "/v1/eod/MSFT") -> dict[str, object]:
    headers = [] if host is None else [(b"host", host.encode())]
    return {"type": "http", "path": path, "headers": [(b"accept", b"*/*"), *headers]}


@pytest.mark.parametrize(
    ("host", "path", "allowed"),
    [
        ("api.stockdata.dev", "/v1/eod/MSFT", True),
        ("API.Stockdata.Dev:443", "/v1/eod/MSFT", True),  # case and port do not matter
        ("eu.data.stockdata.dev", "/v1/eod/MSFT", True),  # *.data.stockdata.dev
        ("x.y.data.stockdata.dev:8000", "/v1/eod/MSFT", True),
        ("data.stockdata.dev", "/v1/eod/MSFT", False),  # the wildcard needs a subdomain
        ("api.stockdata.dev.evil.example", "/v1/eod/MSFT", False),
        ("evil.example", "/v1/eod/MSFT", False),
        ("apixstockdata.dev", "/v1/eod/MSFT", False),  # dots are literal
        ("[::1]:8000", "/v1/eod/MSFT", False),
        ("", "/v1/eod/MSFT", False),
        (None, "/v1/eod/MSFT", False),  # no Host header at all
        ("10.244.1.17:8000", "/health/ready", True),  # probes and scrapes address the pod
        ("10.244.1.17:8000", "/metrics", True),
        ("10.244.1.17:8000", "/healthz", False),
    ],
)
def test_allowed_hosts(host: str | None, path: str, allowed: bool) -> None:
    settings = SecuritySettings(allowed_hosts=["api.stockdata.dev", "*.data.stockdata.dev"])
    assert AllowedHostsMiddleware(settings).allowed(_scope(host, path)) is allowed  # type: ignore[arg-type]
    any_host = AllowedHostsMiddleware(SecuritySettings())
    assert any_host.allowed(_scope(host, path)) is True  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("api.stockdata.example.org", ["api.stockdata.example.org"]),
        ("a.example, b.example", ["a.example", "b.example"]),
        ('["a.example", "*.b.example"]', ["a.example", "*.b.example"]),
        ("*", ["*"]),
    ],
)
def test_list_settings_read_one_value_commas_or_json(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[str]
) -> None:
    # the deploy overlays set STOCKDATA_ALLOWED_HOSTS to the bare API host name
    monkeypatch.setenv("STOCKDATA_ALLOWED_HOSTS", raw)
    monkeypatch.setenv("STOCKDATA_CORS_ORIGINS", "https://app.stockdata.example.org")
    settings = SecuritySettings()
    assert settings.allowed_hosts == expected
    assert settings.cors_origins == ["https://app.stockdata.example.org"]
