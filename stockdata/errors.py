"""The error taxonomy: workers decide retry vs dead-letter from the type alone."""

from __future__ import annotations

from typing import Any


class StockDataError(Exception):
    """Base of every error this project raises on purpose.

    `code` is a stable, machine-readable slug (it becomes the problem+json `type` and the
    catalog's `error_code`); the message says what happened and what to do about it.
    """

    code: str = "stockdata-error"

    def __init__(self, message: str, *, code: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.fields = fields

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class TransientError(StockDataError):
    """Retrying later may succeed: timeouts, HTTP 429/5xx, commit conflicts."""

    code = "transient"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(message, code=code, **fields)
        self.retry_after = retry_after


class PermanentError(StockDataError):
    """Retrying cannot help: validation failures, HTTP 4xx, unknown tickers, bad settings."""

    code = "permanent"


class ConfigurationError(PermanentError):
    """A setting is missing, malformed or unsafe for the chosen profile."""

    code = "configuration"


class NotFoundError(PermanentError):
    """The thing asked for does not exist (an exchange, a ticker, a table, a job)."""

    code = "not-found"


class InvalidInputError(PermanentError):
    """Input from a user or a provider failed validation."""

    code = "invalid-input"
