"""Prometheus metrics of one app instance (its own registry: no import-time globals)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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
        self.cache = Counter(
            "stockdata_api_cache_total",
            "Response cache lookups by result (hit, miss, not_modified).",
            ["result"],
            registry=self.registry,
        )
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
        self.lane = Counter(
            "stockdata_api_point_lane_total",
            "EoD point lookups answered before parameter parsing (hot index, plain query).",
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
        self._cache_children: dict[str, Any] = {
            result: self.cache.labels(result) for result in ("hit", "miss", "not_modified")
        }
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
        child = self._cache_children.get(result)
        if child is None:
            child = self._cache_children[result] = self.cache.labels(result)
        child.inc()
        self._lookups += 1
        if result != "miss":
            self._hits += 1

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
