"""Token bucket arithmetic and the settings-to-config helpers of query_api._hardening."""

from __future__ import annotations

from query_api._hardening import (
    SecuritySettings,
    TokenBuckets,
    allowed_hosts_config,
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


def test_idle_buckets_are_dropped_when_the_table_is_full() -> None:
    buckets = TokenBuckets(per_minute=60, burst=2, max_keys=2)
    buckets.take("a", now=0.0)
    buckets.take("b", now=9.0)
    buckets.take("c", now=10.0)
    assert sorted(buckets._buckets) == ["b", "c"]


def test_no_cors_without_origins_and_no_host_check_for_any_host() -> None:
    settings = SecuritySettings()
    assert cors_config(settings) is None
    assert allowed_hosts_config(settings) is None
    configured = SecuritySettings(
        cors_origins=["https://app.stockdata.dev"], allowed_hosts=["api.stockdata.dev"]
    )
    cors = cors_config(configured)
    assert cors is not None and cors.allow_origins == ["https://app.stockdata.dev"]
    hosts = allowed_hosts_config(configured)
    assert hosts is not None and hosts.allowed_hosts == ["api.stockdata.dev"]
