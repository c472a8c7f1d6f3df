"""Feature flags in both modes: an offline document, and remote local evaluation on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from query_api._flags import (
    DELTA_API,
    SQL_API,
    TICKER_API,
    FeatureFlags,
    FlagSettings,
    build_flags,
    environment_document,
)
from stockdata.errors import ConfigurationError
from tests.stubs.flagsmith import FlagsmithStub


def _wait_until(check: Callable[[], bool], *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def _offline(path: Path, **overrides: object) -> FeatureFlags:
    return build_flags(FlagSettings(flags_file=path, **overrides))  # type: ignore[arg-type]


def test_the_shipped_dev_document_enables_all_three_flags() -> None:
    flags = build_flags(FlagSettings())
    try:
        assert flags.mode == "offline"
        assert flags.source == "document"
        assert flags.snapshot() == {DELTA_API: True, SQL_API: True, TICKER_API: True}
    finally:
        flags.close()


def test_offline_document_switches_each_flag(tmp_path: Path) -> None:
    path = tmp_path / "env.json"
    path.write_text(
        json.dumps(environment_document({TICKER_API: True, DELTA_API: False, SQL_API: False}))
    )
    flags = _offline(path)
    assert flags.is_enabled(TICKER_API) is True
    assert flags.is_enabled(DELTA_API) is False
    assert flags.is_enabled(SQL_API) is False
    path.write_text(
        json.dumps(environment_document({TICKER_API: False, DELTA_API: True, SQL_API: True}))
    )
    flipped = _offline(path)
    assert (
        flipped.is_enabled(TICKER_API),
        flipped.is_enabled(DELTA_API),
        flipped.is_enabled(SQL_API),
    ) == (False, True, True)


def test_a_flag_missing_from_the_document_takes_its_default(tmp_path: Path) -> None:
    path = tmp_path / "env.json"
    path.write_text(json.dumps(environment_document({TICKER_API: False})))
    flags = _offline(path, flag_defaults={DELTA_API: True, SQL_API: False})
    assert flags.snapshot() == {DELTA_API: True, SQL_API: False, TICKER_API: False}
    assert flags.is_enabled("no_such_flag") is False


def test_an_unreadable_document_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "env.json"
    path.write_text('{"not": "an environment document"}')
    with pytest.raises(ConfigurationError) as caught:
        _offline(path)
    assert str(caught.value) == (
        f"STOCKDATA_FLAGS_FILE {path} is not a readable Flagsmith environment document: KeyError"
    )


def test_remote_mode_needs_a_server_side_key() -> None:
    with pytest.raises(ConfigurationError) as caught:
        build_flags(FlagSettings(flagsmith_environment_key=SecretStr("client-key")))
    assert caught.value.code == "configuration"


def test_remote_mode_refreshes_and_never_requests_per_check() -> None:
    with FlagsmithStub({TICKER_API: True, DELTA_API: True, SQL_API: False}) as stub:
        flags = build_flags(
            FlagSettings(
                flagsmith_environment_key=SecretStr(stub.key),
                flagsmith_api_url=stub.api_url,
                flags_refresh_seconds=0.2,
                flags_max_stale_seconds=60,
            )
        )
        try:
            assert flags.mode == "remote"
            assert flags.is_enabled(TICKER_API) is True
            assert flags.is_enabled(SQL_API) is False
            assert stub.requests[0] == ("/api/v1/environment-document/", stub.key)

            stub.set_flags({TICKER_API: False, DELTA_API: True, SQL_API: True})
            _wait_until(lambda: flags.is_enabled(TICKER_API) is False)
            assert flags.is_enabled(SQL_API) is True

            flags.close()
            settled = stub.request_count
            for _ in range(5_000):
                assert flags.is_enabled(TICKER_API) is False
            assert stub.request_count == settled
        finally:
            flags.close()


def test_remote_mode_falls_back_to_defaults_when_flagsmith_stops_answering() -> None:
    defaults = {TICKER_API: False, DELTA_API: True, SQL_API: False}
    stub = FlagsmithStub({TICKER_API: True, DELTA_API: False, SQL_API: True}).start()
    flags = build_flags(
        FlagSettings(
            flagsmith_environment_key=SecretStr(stub.key),
            flagsmith_api_url=stub.api_url,
            flags_refresh_seconds=0.1,
            flags_max_stale_seconds=0.5,
            flag_defaults=defaults,
        )
    )
    try:
        assert flags.snapshot() == {TICKER_API: True, DELTA_API: False, SQL_API: True}
        stub.stop()
        _wait_until(lambda: flags.source == "defaults")
        assert flags.snapshot() == defaults
    finally:
        flags.close()
        stub.stop()


def test_remote_mode_unreachable_at_start_uses_defaults_without_requests_per_check() -> None:
    with FlagsmithStub({TICKER_API: True}) as stub:
        url = stub.api_url
        key = stub.key
    flags = build_flags(
        FlagSettings(
            flagsmith_environment_key=SecretStr(key),
            flagsmith_api_url=url,
            flags_refresh_seconds=600,
            flag_defaults={TICKER_API: True, DELTA_API: False},
        )
    )
    try:
        assert flags.source == "defaults"
        assert flags.snapshot() == {TICKER_API: True, DELTA_API: False, SQL_API: False}
    finally:
        flags.close()


def test_remote_mode_with_a_wrong_key_uses_defaults_and_counts_one_fetch() -> None:
    with FlagsmithStub({TICKER_API: False}) as stub:
        flags = build_flags(
            FlagSettings(
                flagsmith_environment_key=SecretStr("ser.wrong"),
                flagsmith_api_url=stub.api_url,
                flags_refresh_seconds=600,
                flag_defaults={TICKER_API: True},
            )
        )
        try:
            # The SDK fetches once in its constructor and once as its poller starts.
            _wait_until(lambda: stub.request_count == 2)
            for _ in range(1_000):
                assert flags.is_enabled(TICKER_API) is True
            assert stub.request_count == 2
            assert stub.requests[0] == ("/api/v1/environment-document/", "ser.wrong")
        finally:
            flags.close()
