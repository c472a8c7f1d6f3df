"""The versioned JSON job message: what a worker needs, plus the old system's field names."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from loaders._queue import check_size
from stockdata.errors import InvalidInputError

#: The payload version this code writes; readers accept every version they know.
MESSAGE_VERSION = 1
JobKind = Literal["daily", "backfill", "load", "actions"]
#: `actions` jobs fetch corporate actions only (`stockdata ingest actions`).
JOB_KINDS: tuple[JobKind, ...] = ("daily", "backfill", "load", "actions")


@dataclass(frozen=True, slots=True)
class JobMessage:
    """One job on the queue: the catalog row is the truth, the message carries enough to run it."""

    job_id: str
    kind: JobKind
    provider: str
    exchange_mic: str
    date_from: dt.date
    date_to: dt.date
    tickers: tuple[str, ...]
    exchange: str | None = None
    provider_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": MESSAGE_VERSION,
            "job_id": self.job_id,
            "kind": self.kind,
            "provider": self.provider,
            "exchange_mic": self.exchange_mic,
            "date_from": self.date_from.isoformat(),
            "date_to": self.date_to.isoformat(),
            "tickers": list(self.tickers),
            "provider_options": self.provider_options,
            # the old controller's fields, for dashboards and tools that read them
            "type": "EOD",
            "exchange": self.exchange or self.exchange_mic,
            "date": self.date_to.isoformat(),
        }

    def to_json(self) -> str:
        body = json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)
        check_size(body)
        return body

    @classmethod
    def from_json(cls, body: str) -> JobMessage:
        """Parse a payload; anything malformed is a PermanentError (it can never succeed)."""
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise InvalidInputError(f"job message is not JSON: {exc}", code="bad-message") from exc
        if not isinstance(data, dict):
            raise InvalidInputError("job message is not a JSON object", code="bad-message")
        version = data.get("v")
        if version != MESSAGE_VERSION:
            raise InvalidInputError(
                f"job message version {version!r} is not supported (this worker reads "
                f"v{MESSAGE_VERSION}); upgrade the worker",
                code="bad-message",
            )
        try:
            kind = data["kind"]
            if kind not in JOB_KINDS:
                raise ValueError(f"unknown kind {kind!r}")
            tickers = data["tickers"]
            if not isinstance(tickers, list) or not all(isinstance(t, str) for t in tickers):
                raise ValueError("tickers must be a list of strings")
            options = data.get("provider_options") or {}
            if not isinstance(options, dict):
                raise ValueError("provider_options must be an object")
            return cls(
                job_id=str(data["job_id"]),
                kind=kind,
                provider=str(data["provider"]),
                exchange_mic=str(data["exchange_mic"]),
                date_from=dt.date.fromisoformat(data["date_from"]),
                date_to=dt.date.fromisoformat(data["date_to"]),
                tickers=tuple(tickers),
                exchange=data.get("exchange"),
                provider_options=options,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"job message is malformed: {exc}", code="bad-message") from exc
