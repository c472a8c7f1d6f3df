"""The one backoff rule (stockdata.backoff): its bounds, cap, spread and Retry-After floor."""

from __future__ import annotations

import random

import pytest

from stockdata.backoff import backoff_delay


class _Low(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


class _High(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize(
    ("attempt", "spread", "low", "high"),
    [
        (0, 1.0, 0.0, 0.5),
        (3, 1.0, 0.0, 4.0),
        (3, 0.5, 2.0, 4.0),
        (10, 0.5, 30.0, 60.0),  # capped: 0.5 * 2^10 = 512 > 60
        (-1, 1.0, 0.0, 0.5),  # a first delivery counts as attempt 0
    ],
)
def test_bounds(attempt: int, spread: float, low: float, high: float) -> None:
    kw = {"base": 0.5, "cap": 60.0, "spread": spread}
    assert backoff_delay(attempt, rng=_Low(), **kw) == low
    assert backoff_delay(attempt, rng=_High(), **kw) == high


def test_never_shorter_than_retry_after() -> None:
    assert backoff_delay(0, base=0.5, cap=60.0, retry_after=7.0, rng=_High()) == 7.0
    assert backoff_delay(8, base=0.5, cap=60.0, retry_after=7.0, rng=_High()) == 60.0


def test_draws_stay_within_the_bounds() -> None:
    rng = random.Random(5)
    draws = [backoff_delay(4, base=1.0, cap=10.0, spread=0.5, rng=rng) for _ in range(1000)]
    assert min(draws) >= 5.0 and max(draws) <= 10.0
    assert len({round(d, 6) for d in draws}) > 900  # jittered, not a constant
