"""QueueSettings: embedded defaults, env prefix, Azure-legal names, secrets kept secret."""

from __future__ import annotations

import os

import pydantic
import pytest

import loaders
from stockdata.errors import ConfigurationError


def test_defaults_serve_the_embedded_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("STOCKDATA_QUEUE_"):
            monkeypatch.delenv(name)
    s = loaders.QueueSettings()
    assert (s.queue_backend, s.queue_name, s.poison_queue_name) == (
        "postgres",
        "eod-jobs",
        "eod-jobs-poison",
    )
    assert (
        s.queue_visibility_timeout_seconds,
        s.queue_renew_every_seconds,
        s.queue_max_deliveries,
    ) == (300, 60.0, 5)


def test_environment_and_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKDATA_QUEUE_BACKEND", "azure")
    monkeypatch.setenv("STOCKDATA_QUEUE_AZURE_CONNECTION_STRING", "AccountKey=abc123")
    s = loaders.QueueSettings()
    assert s.queue_backend == "azure"
    assert "abc123" not in repr(s)
    assert s.queue_azure_connection_string is not None
    assert s.queue_azure_connection_string.get_secret_value() == "AccountKey=abc123"


@pytest.mark.parametrize("name", ["EOD", "a", "eod_jobs", "-eod", "eod-", "x" * 57])
def test_names_azure_would_refuse_are_refused(name: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        loaders.QueueSettings(queue_name=name)


def test_azure_without_credentials_is_a_configuration_error() -> None:
    settings = loaders.QueueSettings(queue_backend="azure")
    with pytest.raises(ConfigurationError) as info:
        loaders.open_queue(settings)
    assert str(info.value).startswith(
        "the azure queue needs STOCKDATA_QUEUE_AZURE_CONNECTION_STRING"
    )
