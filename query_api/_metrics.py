"""Prometheus metrics of one app instance (its own registry: no import-time globals).

With several server workers (`stockdata serve` gives them a per-run directory in
STOCKDATA_API_METRICS_DIR), each worker writes its counters and histograms to
`<dir>/<pid>.json` every second, and a scrape, whichever worker answers it, renders the sum
over every worker's file (its own counted live): counters are the pod's, never one
worker's. A worker that exits leaves its file, so totals never go down. Gauges are the
answering worker's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

#: prometheus_client's `le` label format (untyped upstream).
_go_float = cast(Callable[[float], str], floatToGoString)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class ApiMetrics:
    """Request latency, cache hits and misses, the lake version served, query time."""

    def __init__(self, *, shared_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._shared_dir = shared_dir
        self._stop = threading.Event()
        self.requests = LatencyHistogram(
            "stockdata_api_request_seconds",
            "Request latency by route template, method and status.",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
        )
        self.registry.register(self.requests)
        # The two counters every data request bumps are plain ints rendered at scrape time:
        # a prometheus_client Counter takes a lock per increment, a measurable share of a
        # ~50 µs request. `+= 1` on an attribute is not interrupted by another thread in
        # CPython (no eval-breaker check between its load and store).
        self._cache_counts = {"hit": 0, "miss": 0, "not_modified": 0}
        self.lane_answers = 0
        self.registry.register(_HotCounters(self))
        self.lake_version = Gauge(
            "stockdata_api_lake_version",
            "Latest Delta version of eod_prices the lake poll saw.",
            registry=self.registry,
        )
        self.serving_version = Gauge(
            "stockdata_api_serving_version",
            "Lake version of the mapped serving form (absent: none mapped yet).",
            registry=self.registry,
        )
        self.serving_rows = Gauge(
            "stockdata_api_serving_rows",
            "Rows of the mapped serving form.",
            registry=self.registry,
        )
        #: Which engine answers the current version (set by the app factory).
        self.engine_fn: Callable[[], str] | None = None
        self.registry.register(_EngineInfo(self))
        self.queries = LatencyHistogram(
            "stockdata_api_query_seconds",
            "Time spent reading the lake, by query kind and engine (serving or duckdb).",
            ["kind", "engine"],
            buckets=_LATENCY_BUCKETS,
        )
        self.registry.register(self.queries)
        self._hits = 0
        # Series bound once per label set: no label validation or hashing per observation.
        self._request_series: dict[tuple[str, str, int], _Series] = {}
        self._query_series: dict[tuple[str, str], _Series] = {}
        self._lookups = 0
        self.hit_ratio = Gauge(
            "stockdata_api_cache_hit_ratio",
            "Share of cacheable requests answered from the cache or with 304 since start.",
            registry=self.registry,
        )
        self.hit_ratio.set_function(self.cache_hit_ratio)

    def serving(self, version: int, rows: int) -> None:
        self.serving_version.set(version)
        self.serving_rows.set(rows)

    # -- several workers -------------------------------------------------------------------

    def start_sharing(self) -> None:
        """Write this worker's counts to the shared directory every second (if there is one)."""
        if self._shared_dir is None:
            return
        self._shared_dir.mkdir(parents=True, exist_ok=True)
        threading.Thread(target=self._share_forever, name="metrics-share", daemon=True).start()

    def stop_sharing(self) -> None:
        self._stop.set()
        if self._shared_dir is not None:
            self._write_snapshot()

    def _share_forever(self) -> None:
        while not self._stop.wait(1.0):
            with contextlib.suppress(OSError):  # the next second tries again
                self._write_snapshot()

    def _snapshot(self) -> dict[str, Any]:
        def hist(h: LatencyHistogram) -> list[Any]:
            return [[list(k), list(v.counts), v.sum] for k, v in list(h._series.items())]

        return {
            "requests": hist(self.requests),
            "queries": hist(self.queries),
            "cache": dict(self._cache_counts),
            "lane": self.lane_answers,
        }

    def _write_snapshot(self) -> None:
        assert self._shared_dir is not None
        path = self._shared_dir / f"{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._snapshot()))
        os.replace(tmp, path)

    def _merged(self) -> CollectorRegistry:
        """A registry of this worker's gauges and every worker's summed counts."""
        assert self._shared_dir is not None
        own = f"{os.getpid()}.json"
        snapshots = [self._snapshot()]
        for path in sorted(self._shared_dir.glob("*.json")):
            if path.name == own:
                continue
            try:
                snapshots.append(json.loads(path.read_text()))
            except (OSError, ValueError):  # being replaced right now: read next scrape
                continue
        merged = ApiMetrics()
        for snap in snapshots:
            for name, target in (("requests", merged.requests), ("queries", merged.queries)):
                for labels, counts, total in snap[name]:
                    series = target.labels(*labels)
                    for i, n in enumerate(counts):
                        series.counts[i] += n
                    series.sum += total
            for result, n in snap["cache"].items():
                merged._cache_counts[result] = merged._cache_counts.get(result, 0) + n
            merged.lane_answers += snap["lane"]
        lookups = sum(merged._cache_counts.values())
        hits = lookups - merged._cache_counts.get("miss", 0)
        merged.hit_ratio.set_function(lambda: hits / lookups if lookups else 0.0)
        for gauge in ("lake_version", "serving_version", "serving_rows"):
            value = getattr(self, gauge)._value.get()
            if gauge == "lake_version" or value:
                getattr(merged, gauge).set(value)
        merged.engine_fn = self.engine_fn
        return merged.registry

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = self.requests.labels(route, method, str(status))
        series.observe(seconds)

    def cache_result(self, result: str) -> None:
        self._cache_counts[result] += 1
        self._lookups += 1
        if result != "miss":
            self._hits += 1

    def lane_answer(self) -> None:
        self.lane_answers += 1

    def observe_query(self, kind: str, engine: str, seconds: float) -> None:
        key = (kind, engine)
        series = self._query_series.get(key)
        if series is None:
            series = self._query_series[key] = self.queries.labels(kind, engine)
        series.observe(seconds)

    def render(self) -> bytes:
        if self._shared_dir is not None:
            return generate_latest(self._merged())
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


class _EngineInfo:
    """`stockdata_api_read_engine{engine=...} 1`: the engine answering the current version."""

    def __init__(self, metrics: ApiMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[GaugeMetricFamily]:
        return list(self._families(empty=True))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return self._families(empty=False)

    def _families(self, *, empty: bool) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "stockdata_api_read_engine",
            "1 for the engine answering reads of the current version: serving or duckdb.",
            labels=["engine"],
        )
        fn = self._metrics.engine_fn
        if not empty and fn is not None:
            current = fn()
            for engine in ("serving", "duckdb"):
                family.add_metric([engine], 1.0 if engine == current else 0.0)
        yield family


class _Series:
    """One label set of a `LatencyHistogram`: a count per bucket and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: list[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        # `le` buckets: a value equal to a bound counts in that bound's bucket
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds


class LatencyHistogram:
    """A Prometheus histogram kept as plain numbers and rendered at scrape time.

    prometheus_client's Histogram takes a lock and walks every bucket per observation, about
    2 µs: a tenth of an index-served lookup, paid twice per request (the request and the
    query histogram). Here an observation is a bisect and two increments. The exposition is
    the same `_bucket`/`_count`/`_sum` series (cumulative, `le` inclusive) without
    `_created`. Handlers run on the event loop or in worker threads; an increment is not
    split by a thread switch in CPython (no eval-breaker check inside `x += 1`), so
    concurrent observations are not lost.
    """

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], *, buckets: Sequence[float]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self._bounds = [float(b) for b in buckets]
        self._le = [_go_float(b) for b in self._bounds] + ["+Inf"]
        self._series: dict[tuple[str, ...], _Series] = {}

    def labels(self, *values: str) -> _Series:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values!r}")
        series = self._series.get(values)
        if series is None:
            series = self._series.setdefault(values, _Series(self._bounds))
        return series

    def describe(self) -> list[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, series in list(self._series.items()):
            counts, total, running = list(series.counts), series.sum, 0
            buckets = []
            for le, n in zip(self._le, counts, strict=True):
                running += n
                buckets.append((le, float(running)))
            family.add_metric(list(values), buckets, total)
        yield family
