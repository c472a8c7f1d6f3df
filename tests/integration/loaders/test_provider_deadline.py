"""A provider call is bounded as a whole: an answer trickled in pieces, each gap shorter than
the timeout, is abandoned at the deadline instead of holding the worker for all of it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from loaders.providers import get_provider
from stockdata.errors import TransientError
from tests.integration.loaders._pipeline import provider_settings, stub
from tests.stubs.marketstack import Fault, MarketstackStub

WEEK = {"date_from": dt.date(2017, 11, 6), "date_to": dt.date(2017, 11, 10)}


@pytest.fixture
def server(samples: Path) -> Iterator[MarketstackStub]:
    with stub(samples) as s:
        yield s


def test_a_trickled_answer_is_abandoned_at_the_deadline(server: MarketstackStub) -> None:
    # 12 pieces 0.3 s apart: every read is answered well within the 1 s timeout, the whole
    # answer is not
    server.inject(Fault.trickle(12, 0.3))
    settings = provider_settings(server, provider_timeout_seconds=1.0, provider_max_retries=0)
    with pytest.raises(TransientError) as caught:
        get_provider("marketstack", settings).fetch_bars(["MSFT"], exchange_mic="XNAS", **WEEK)
    assert caught.value.code == "timeout"
    assert "not complete within 1s (STOCKDATA_PROVIDER_TIMEOUT_SECONDS)" in caught.value.message
    assert len(server.requests) == 1


def test_an_answer_trickled_within_the_deadline_is_read_whole(server: MarketstackStub) -> None:
    server.inject(Fault.trickle(3, 0.01))
    settings = provider_settings(server, provider_timeout_seconds=30.0, provider_max_retries=0)
    bars = get_provider("marketstack", settings).fetch_bars(["MSFT"], exchange_mic="XNAS", **WEEK)
    closes = dict(
        zip(bars.column("trade_date").to_pylist(), bars.column("close").to_pylist(), strict=True)
    )
    assert closes == {
        dt.date(2017, 11, 6): 84.47,
        dt.date(2017, 11, 7): 84.26,
        dt.date(2017, 11, 8): 84.56,
        dt.date(2017, 11, 9): 84.09,
        dt.date(2017, 11, 10): 83.87,
    }
