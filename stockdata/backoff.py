"""One backoff rule for every retry: HTTP requests, Delta commit conflicts, queue redelivery."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    spread: float = 1.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry).

    Exponential with jitter: uniform in [(1 - spread) * c, c], c = min(cap, base * 2^attempt).
    `spread=1` is "full jitter" (callers that retry many at once, e.g. commit conflicts),
    `spread=0.5` keeps at least half the ceiling (queue redelivery: a retry is never almost
    immediate). Never shorter than the server's `retry_after`."""
    ceiling = min(cap, base * 2 ** max(0, attempt))
    draw = (rng or random).uniform((1.0 - spread) * ceiling, ceiling)
    return max(draw, retry_after or 0.0)
