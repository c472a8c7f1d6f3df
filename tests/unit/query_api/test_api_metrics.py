"""The plain-number latency histogram renders exactly what prometheus_client's Histogram does."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from query_api._metrics import LatencyHistogram

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 1, 10)
OBSERVED = {
    ("/v1/eod/{symbol}", "GET", "200"): [0.0004, 0.0005, 0.0007, 0.003, 0.003, 12.5],
    ("/health/live", "GET", "200"): [0.001, 0.0000001],
}


def _exposition(histogram_cls: type) -> list[str]:
    registry = CollectorRegistry()
    kwargs = {"buckets": BUCKETS}
    if histogram_cls is Histogram:
        histogram = Histogram(
            "t_seconds", "Latency.", ["route", "method", "status"], **kwargs, registry=registry
        )
    else:
        histogram = LatencyHistogram(
            "t_seconds", "Latency.", ["route", "method", "status"], **kwargs
        )
        registry.register(histogram)
    for labels, values in OBSERVED.items():
        series = histogram.labels(*labels)
        for v in values:
            series.observe(v)
    return [
        line
        for line in generate_latest(registry).decode().splitlines()
        if "_created" not in line  # prometheus_client's creation-time series, not kept here
    ]


def test_same_exposition_as_prometheus_client() -> None:
    ours = _exposition(LatencyHistogram)
    assert ours == _exposition(Histogram)
    assert (
        't_seconds_bucket{le="0.0005",method="GET",route="/v1/eod/{symbol}",status="200"} 2.0'
        in ours
    )
    assert (
        't_seconds_bucket{le="+Inf",method="GET",route="/v1/eod/{symbol}",status="200"} 6.0' in ours
    )
    assert 't_seconds_count{method="GET",route="/health/live",status="200"} 2.0' in ours


def test_wrong_label_count_is_refused() -> None:
    histogram = LatencyHistogram("t_seconds", "Latency.", ["kind", "engine"], buckets=BUCKETS)
    with pytest.raises(ValueError, match=r"takes labels \['kind', 'engine'\]"):
        histogram.labels("bars")
