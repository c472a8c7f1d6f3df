"""The versioned job payload: exact shape, round trip, size, and refusal of bad payloads."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

import loaders
from stockdata.errors import InvalidInputError


def _message(n: int = 2) -> loaders.JobMessage:
    return loaders.JobMessage(
        job_id="6f1c2d3e-0000-4000-8000-000000000001",
        kind="daily",
        provider="marketstack",
        exchange_mic="XNAS",
        date_from=dt.date(2024, 11, 29),
        date_to=dt.date(2024, 11, 29),
        tickers=tuple(f"T{i:03d}" for i in range(n)),
        exchange="NASDAQ",
    )


def test_payload_is_versioned_and_keeps_the_old_field_names() -> None:
    assert json.loads(_message().to_json()) == {
        "v": 1,
        "job_id": "6f1c2d3e-0000-4000-8000-000000000001",
        "kind": "daily",
        "provider": "marketstack",
        "exchange_mic": "XNAS",
        "date_from": "2024-11-29",
        "date_to": "2024-11-29",
        "tickers": ["T000", "T001"],
        "provider_options": {},
        "type": "EOD",
        "exchange": "NASDAQ",
        "date": "2024-11-29",
    }


def test_round_trip() -> None:
    msg = _message()
    assert loaders.JobMessage.from_json(msg.to_json()) == msg


def test_a_full_batch_of_long_symbols_stays_far_below_64_kb() -> None:
    tickers = tuple(f"VERYLONGSYMBOL{i:05d}.XLON" for i in range(loaders.MAX_BATCH))
    body = dataclasses.replace(_message(), tickers=tickers).to_json()
    assert len(body.encode()) == 2952
    assert len(body.encode()) < loaders.MAX_MESSAGE_BYTES // 16


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "job message is not JSON"),
        ("[1]", "job message is not a JSON object"),
        ('{"v": 2}', "job message version 2 is not supported"),
        ('{"v": 1, "kind": "daily"}', "job message is malformed: 'tickers'"),
        (
            '{"v": 1, "kind": "weekly", "tickers": []}',
            "job message is malformed: unknown kind 'weekly'",
        ),
    ],
)
def test_bad_payloads_are_permanent_errors(body: str, reason: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        loaders.JobMessage.from_json(body)
    assert info.value.code == "bad-message"
    assert str(info.value).startswith(reason)


def test_batches_of_the_largest_provider_limit_fit_in_64_kb_even_with_32_char_symbols() -> None:
    largest = max(loaders.max_symbols_per_job(name) for name in loaders.provider_names())
    assert largest == 2500
    # 32 characters is the catalog's longest symbol (tickers.symbol is VARCHAR(32))
    long_symbols = [f"SYMBOL{i:026d}" for i in range(largest)]
    cut = loaders.batches(long_symbols, largest, limit=largest)
    assert [len(b) for b in cut] == [1287, 1213]
    short_symbols = [f"T{i:05d}" for i in range(largest)]
    assert [len(b) for b in loaders.batches(short_symbols, largest, limit=largest)] == [2500]
    for batch in [*cut, short_symbols]:
        body = dataclasses.replace(_message(), tickers=tuple(batch)).to_json()
        # even base64-encoded (as some Azure Storage Queue clients send it) it stays under 64 KB
        assert (len(body.encode()) + 2) // 3 * 4 < loaders.MAX_MESSAGE_BYTES
    first = dataclasses.replace(_message(), tickers=tuple(cut[0])).to_json()
    assert (len(first.encode()) + 2) // 3 * 4 == 60396
