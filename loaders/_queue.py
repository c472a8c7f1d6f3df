"""The queue interface every backend implements, and the factory that opens one by settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from stockdata.errors import ConfigurationError, TransientError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from loaders._queue_settings import QueueSettings

#: Azure Storage Queue's limit on a message; payloads are kept well below it.
MAX_MESSAGE_BYTES = 64 * 1024


class StaleMessageError(TransientError):
    """The message's receipt is no longer valid: its visibility ran out and someone else holds it."""

    code = "stale-receipt"


@dataclass(frozen=True, slots=True)
class Message:
    """A received message: `receipt` proves who holds it; renewals hand out a new one."""

    id: str
    receipt: str
    body: str
    dequeue_count: int


@runtime_checkable
class Queue(Protocol):
    """At-least-once delivery with visibility timeouts, as Azure Storage Queue offers it."""

    name: str

    def send(self, body: str, *, delay: float = 0) -> str:
        """Put `body` on the queue, visible after `delay` seconds; returns the message id."""
        ...

    def receive(self, *, visibility_timeout: float, max_messages: int = 1) -> list[Message]:
        """Take up to `max_messages` visible messages and hide them for `visibility_timeout`."""
        ...

    def renew(self, message: Message, *, visibility_timeout: float) -> Message:
        """Hide a held message for another `visibility_timeout`; raises StaleMessageError."""
        ...

    def delete(self, message: Message) -> None:
        """Remove a held message for good; raises StaleMessageError if it is no longer held."""
        ...

    def release(self, message: Message, *, delay: float = 0) -> None:
        """Give a held message back, visible again after `delay` seconds."""
        ...

    def dead_letter(self, message: Message) -> None:
        """Move a held message to `<name>-poison`."""
        ...

    def depth(self) -> int:
        """Messages on the queue, hidden ones included."""
        ...


def check_size(body: str) -> None:
    size = len(body.encode())
    if size > MAX_MESSAGE_BYTES:
        raise ConfigurationError(
            f"queue message of {size} bytes exceeds {MAX_MESSAGE_BYTES}: use smaller ticker batches"
        )


def open_queue(
    settings: QueueSettings, *, engine: Engine | None = None, name: str | None = None
) -> Queue:
    """The configured backend for queue `name` (default: settings.queue_name)."""
    name = name or settings.queue_name
    if settings.queue_backend == "postgres":
        if engine is None:
            raise ConfigurationError("the postgres queue needs the catalog engine")
        from loaders._queues._postgres import PostgresQueue

        return PostgresQueue(engine, name)
    from loaders._queues._azure import AzureQueue

    return AzureQueue.from_settings(settings, name)


def open_poison_queue(settings: QueueSettings, *, engine: Engine | None = None) -> Queue:
    return open_queue(settings, engine=engine, name=settings.poison_queue_name)
