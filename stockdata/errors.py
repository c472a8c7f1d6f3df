"""The error taxonomy: workers decide retry vs dead-letter from the type alone."""

from __future__ import annotations

from typing import Any


class StockDataError(Exception):
    """Base of every error this project raises on purpose.

    `code` is a stable, machine-readable slug (it becomes the problem+json `type` and the
    catalog's `error_code`); the message says what happened and what to do about it.
    """

    code: str = "stockdata-error"
    #: The HTTP status the API answers with (the one exception handler reads it).
    http_status: int = 500

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
    http_status = 503

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
    http_status = 400


class ConfigurationError(PermanentError):
    """A setting is missing, malformed or unsafe for the chosen profile.

    Retrying the same process cannot help, but the work is not at fault: workers release
    the message they hold (another, well-configured worker may run it) and stop."""

    code = "configuration"
    http_status = 500


class CredentialError(ConfigurationError):
    """A provider or service refused this process's credentials (invalid key, quota spent).

    Like every `ConfigurationError` it means "this process is broken", not "this job is bad":
    a worker releases the job for another worker and stops."""

    code = "credentials"
    http_status = 502


class NotFoundError(PermanentError):
    """The thing asked for does not exist (an exchange, a ticker, a table, a job)."""

    code = "not-found"
    http_status = 404


class InvalidInputError(PermanentError):
    """Input from a user or a provider failed validation."""

    code = "invalid-input"
    http_status = 400


class AuthenticationError(PermanentError):
    """Credentials are missing, malformed, expired or unknown."""

    code = "unauthorized"
    http_status = 401


class PermissionDeniedError(PermanentError):
    """The caller is known but its role does not allow this."""

    code = "forbidden"
    http_status = 403


class FeatureDisabledError(NotFoundError):
    """A feature flag switches this endpoint off in this environment."""

    code = "feature-disabled"
    http_status = 404


class RateLimitedError(TransientError):
    """Too many requests from one key or client; `retry_after` says when to come back."""

    code = "rate-limited"
    http_status = 429


class ResourceLimitError(PermanentError):
    """A request exceeded a limit (time, rows, bytes, range) and was stopped."""

    code = "resource-limit"
    http_status = 422
