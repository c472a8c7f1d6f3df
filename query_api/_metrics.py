"""Prometheus metrics of one app instance (its own registry: no import-time globals)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class ApiMetrics:
    """Request latency, cache hits and misses, the lake version served, query time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "stockdata_api_request_seconds",
            "Request latency by route template, method and status.",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        # The two counters every data request bumps are plain ints rendered at scrape time:
        # a prometheus_client Counter takes a lock per increment, a measurable share of a
        # ~50 µs request. `+= 1` on an attribute is not interrupted by another thread in
        # CPython (no eval-breaker check between its load and store).
        self._cache_counts = {"hit": 0, "miss": 0, "not_modified": 0}
        self.lane_answers = 0
        self.registry.register(_HotCounters(self))
        self.lake_version = Gauge(
            "stockdata_api_lake_version",
            "Delta version of eod_prices this process answers from.",
            registry=self.registry,
        )
        self.index_rows = Gauge(
            "stockdata_api_hot_index_rows",
            "Rows in the in-memory index (0 when DuckDB answers alone).",
            registry=self.registry,
        )
        self.queries = Histogram(
            "stockdata_api_query_seconds",
            "Time spent reading the lake, by query kind and engine (index or duckdb).",
            ["kind", "engine"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

        self._hits = 0
        # Pre-bound label children: `labels()` validates and hashes its labels on every call.
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._query_children: dict[tuple[str, str], Any] = {}
        self._lookups = 0
        self.hit_ratio = Gauge(
            "stockdata_api_cache_hit_ratio",
            "Share of cacheable requests answered from the cache or with 304 since start.",
            registry=self.registry,
        )
        self.hit_ratio.set_function(self.cache_hit_ratio)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self._request_children.get(key)
        if child is None:
            child = self.requests.labels(route, method, str(status))
            self._request_children[key] = child
        child.observe(seconds)

    def cache_result(self, result: str) -> None:
        self._cache_counts[result] += 1
        self._lookups += 1
        if result != "miss":
            self._hits += 1

    def lane_answer(self) -> None:
        self.lane_answers += 1

    def observe_query(self, kind: str, engine: str, seconds: float) -> None:
        key = (kind, engine)
        child = self._query_children.get(key)
        if child is None:
            child = self._query_children[key] = self.queries.labels(kind, engine)
        child.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def cache_hit_ratio(self) -> float:
        return self._hits / self._lookups if self._lookups else 0.0


class _HotCounters:
    """Renders ApiMetrics' plain-int counters as Prometheus counters at scrape time."""

    def __init__(self, metrics: ApiMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[CounterMetricFamily]:
        return list(self._families(empty=True))

    def collect(self) -> Iterator[CounterMetricFamily]:
        return self._families(empty=False)

    def _families(self, *, empty: bool) -> Iterator[CounterMetricFamily]:
        cache = CounterMetricFamily(
            "stockdata_api_cache",
            "Response cache lookups by result (hit, miss, not_modified).",
            labels=["result"],
        )
        lane = CounterMetricFamily(
            "stockdata_api_point_lane",
            "EoD point lookups answered before parameter parsing (hot index, plain query).",
        )
        if not empty:
            for result, n in list(self._metrics._cache_counts.items()):
                cache.add_metric([result], n)
            lane.add_metric([], self._metrics.lane_answers)
        yield cache
        yield lane
