"""The one HTTP client every provider uses: timeouts, bounded retries, scrubbed logs.

Retries timeouts, connection errors, cut or undecodable bodies, HTTP 429 and 5xx (and
whatever the provider's `check` calls transient) with exponential backoff and full jitter,
waiting at least `Retry-After`; then raises `TransientError`. Anything else the provider's
`check` or the status calls permanent raises `PermanentError` at once. No message and no
log line contains the key: URLs pass through `scrub_url` and known secrets are masked.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests

from stockdata.backoff import backoff_delay
from stockdata.errors import PermanentError, StockDataError, TransientError
from stockdata.logs import get_logger, scrub_text, scrub_url

if TYPE_CHECKING:
    from loaders._provider_settings import ProviderSettings

log = get_logger(__name__)

_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer as a provider's `check` sees it: status, decoded JSON (or None), text."""

    status: int
    payload: Any
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)


#: A provider's error detector: raise TransientError/PermanentError for an error reply.
ErrorCheck = Callable[[Reply], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long one request may take and how often it is retried.

    `timeout_seconds` bounds connecting, each read, and the whole answer: a body trickled in
    pieces is abandoned once the deadline passes (at most one read's wait later)."""

    timeout_seconds: float = 30.0
    max_retries: int = 5
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 60.0

    def backoff(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Full jitter (uniform 0..base*2^attempt, capped), never shorter than Retry-After."""
        return backoff_delay(
            attempt,
            base=self.backoff_base_seconds,
            cap=self.backoff_max_seconds,
            retry_after=retry_after,
            rng=rng,
        )


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


class HttpClient:
    """GET JSON from one provider with retries; errors carry the provider's code."""

    def __init__(
        self,
        provider: str,
        *,
        policy: RetryPolicy | None = None,
        check: ErrorCheck | None = None,
        secrets: Sequence[str] = (),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self.policy = policy or RetryPolicy()
        self._check = check
        self._secrets = tuple(s for s in secrets if s)
        self._session = session or requests.Session()
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.attempts = 0

    @classmethod
    def for_settings(
        cls,
        provider: str,
        settings: ProviderSettings,
        *,
        check: ErrorCheck | None = None,
        secrets: Sequence[str] = (),
        sleep: Callable[[float], None] = time.sleep,
    ) -> HttpClient:
        """A client with the timeout and retry policy of `ProviderSettings`."""
        policy = RetryPolicy(
            timeout_seconds=settings.provider_timeout_seconds,
            max_retries=settings.provider_max_retries,
            backoff_base_seconds=settings.provider_backoff_base_seconds,
            backoff_max_seconds=settings.provider_backoff_max_seconds,
        )
        return cls(provider, policy=policy, check=check, secrets=secrets, sleep=sleep)

    def close(self) -> None:
        self._session.close()

    def redact(self, text: str) -> str:
        """`text` with URLs scrubbed and every known secret replaced by `***`."""
        text = scrub_text(text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """GET `url` and return its decoded JSON body, retrying what is transient."""
        shown = self.redact(scrub_url(_full_url(url, params)))
        last: TransientError | None = None
        for attempt in range(self.policy.max_retries + 1):
            try:
                return self._once(url, params, headers, shown)
            except TransientError as exc:
                last = exc
                if attempt == self.policy.max_retries:
                    break
                if (exc.retry_after or 0) > self.policy.backoff_max_seconds:
                    log.warning(
                        "provider_retry_after_too_long",
                        provider=self.provider,
                        url=shown,
                        retry_after=exc.retry_after,
                    )
                    raise
                delay = self.policy.backoff(attempt, exc.retry_after, self._rng)
                log.warning(
                    "provider_retry",
                    provider=self.provider,
                    url=shown,
                    attempt=attempt + 1,
                    code=exc.code,
                    reason=exc.message,
                    delay_seconds=round(delay, 3),
                )
                self._sleep(delay)
        assert last is not None
        raise TransientError(
            f"{self.provider}: giving up after {self.policy.max_retries + 1} attempts: "
            f"{last.message}",
            code=last.code,
            retry_after=last.retry_after,
            provider=self.provider,
            attempts=self.policy.max_retries + 1,
        )

    def _once(
        self,
        url: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        shown: str,
    ) -> Any:
        self.attempts += 1
        log.debug("provider_request", provider=self.provider, url=shown)
        timeout = self.policy.timeout_seconds
        deadline = time.monotonic() + timeout
        try:
            response = self._session.get(
                url,
                params=dict(params or {}),
                headers=dict(headers or {}),
                timeout=timeout,
                stream=True,
            )
            try:
                chunks = []
                for chunk in response.iter_content(chunk_size=64 * 1024):
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise TransientError(
                            f"{self.provider}: answer from {shown} not complete within "
                            f"{timeout:g}s (STOCKDATA_PROVIDER_TIMEOUT_SECONDS)",
                            code="timeout",
                        )
                response._content = b"".join(chunks)  # what `.text` decodes
            finally:
                response.close()
            text = response.text
        except requests.Timeout:
            raise TransientError(
                f"{self.provider}: no answer within {timeout:g}s from {shown}",
                code="timeout",
            ) from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise TransientError(
                f"{self.provider}: connection failed ({type(exc).__name__}: "
                f"{self.redact(str(exc))})",
                code="connection-error",
            ) from None
        except requests.RequestException as exc:
            raise PermanentError(
                f"{self.provider}: request could not be sent ({type(exc).__name__}: "
                f"{self.redact(str(exc))})",
                code="request-error",
            ) from None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        try:
            payload: Any = json.loads(text) if text.strip() else None
            decoded = True
        except ValueError:
            payload, decoded = None, False
        reply = Reply(response.status_code, payload, text, dict(response.headers))
        if self._check is not None:
            try:
                self._check(reply)
            except TransientError as exc:
                exc.args = (self.redact(exc.message),)
                if exc.retry_after is None:
                    exc.retry_after = retry_after
                raise exc from None
            except StockDataError as exc:
                exc.args = (self.redact(exc.message),)
                raise exc from None
        status = response.status_code
        if status in _TRANSIENT_STATUS or status >= 500:
            raise TransientError(
                f"{self.provider}: HTTP {status} from {shown}",
                code=f"http-{status}",
                retry_after=retry_after,
            )
        if status >= 400:
            raise PermanentError(
                f"{self.provider}: HTTP {status} from {shown}: {self.redact(text[:200])}",
                code=f"http-{status}",
            )
        if not decoded:
            raise TransientError(
                f"{self.provider}: body of {len(text)} characters from {shown} is not valid "
                "JSON (cut short?)",
                code="invalid-body",
            )
        return payload


def _full_url(url: str, params: Mapping[str, Any] | None) -> str:
    prepared = requests.Request("GET", url, params=dict(params or {})).prepare()
    return str(prepared.url)
