"""Azure Storage Queue: the production backend (KEDA scales workers on its length)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.queue import QueueClient

from loaders._queue import Message, StaleMessageError, check_size
from stockdata.errors import ConfigurationError, TransientError

if TYPE_CHECKING:
    from loaders._queue_settings import QueueSettings


def _seconds(value: float) -> int:
    return max(0, math.ceil(value))


class AzureQueue:
    """A queue client plus its poison queue; both are created on first use."""

    def __init__(self, client: QueueClient, poison: QueueClient) -> None:
        self._client = client
        self._poison = poison
        self.name: str = client.queue_name
        for c in (client, poison):
            try:
                c.create_queue()
            except ResourceExistsError:
                pass
            except AzureError as exc:
                raise TransientError(f"cannot reach queue {c.queue_name}: {exc}") from exc

    def __repr__(self) -> str:
        return f"AzureQueue({self.name!r})"

    @classmethod
    def from_settings(cls, settings: QueueSettings, name: str) -> AzureQueue:
        poison = f"{name}-poison"
        if settings.queue_azure_connection_string is not None:
            conn = settings.queue_azure_connection_string.get_secret_value()
            return cls(
                QueueClient.from_connection_string(conn, name),
                QueueClient.from_connection_string(conn, poison),
            )
        if not settings.queue_azure_account_url:
            raise ConfigurationError(
                "the azure queue needs STOCKDATA_QUEUE_AZURE_CONNECTION_STRING or "
                "STOCKDATA_QUEUE_AZURE_ACCOUNT_URL (with an account key or Azure AD)"
            )
        credential: Any
        if settings.queue_azure_account_key is not None:
            url = settings.queue_azure_account_url
            account = url.split("//", 1)[-1].split(".", 1)[0]
            credential = {
                "account_name": account,
                "account_key": settings.queue_azure_account_key.get_secret_value(),
            }
        elif settings.queue_azure_use_azure_ad:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential(
                managed_identity_client_id=settings.queue_azure_client_id,
                workload_identity_client_id=settings.queue_azure_client_id,
            )
        else:
            raise ConfigurationError(
                "set STOCKDATA_QUEUE_AZURE_ACCOUNT_KEY or STOCKDATA_QUEUE_AZURE_USE_AZURE_AD=true"
            )
        url = settings.queue_azure_account_url
        return cls(
            QueueClient(url, name, credential=credential),
            QueueClient(url, poison, credential=credential),
        )

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ResourceNotFoundError as exc:
            raise StaleMessageError(f"{what} on {self.name}: the message is gone") from exc
        except HttpResponseError as exc:
            detail = f"{getattr(exc, 'error_code', '')} {exc}".lower().replace(" ", "")
            if exc.status_code in (400, 404) and "popreceipt" in detail:
                raise StaleMessageError(f"{what} on {self.name}: receipt no longer valid") from exc
            if exc.status_code is not None and exc.status_code < 500 and exc.status_code != 429:
                raise ConfigurationError(f"{what} on {self.name} refused: {exc.reason}") from exc
            raise TransientError(f"{what} on {self.name} failed: {exc.reason}") from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise TransientError(f"{what} on {self.name}: {exc}") from exc

    def send(self, body: str, *, delay: float = 0) -> str:
        check_size(body)
        sent = self._call(
            "send", self._client.send_message, body, visibility_timeout=_seconds(delay) or None
        )
        return str(sent.id)

    def receive(self, *, visibility_timeout: float, max_messages: int = 1) -> list[Message]:
        got = self._call(
            "receive",
            lambda: list(
                self._client.receive_messages(
                    messages_per_page=max_messages,
                    max_messages=max_messages,
                    visibility_timeout=max(1, _seconds(visibility_timeout)),
                )
            ),
        )
        return [
            Message(id=m.id, receipt=m.pop_receipt, body=m.content, dequeue_count=m.dequeue_count)
            for m in got
        ]

    def renew(self, message: Message, *, visibility_timeout: float) -> Message:
        updated = self._call(
            "renew",
            self._client.update_message,
            message.id,
            pop_receipt=message.receipt,
            visibility_timeout=_seconds(visibility_timeout),
        )
        return Message(message.id, updated.pop_receipt, message.body, message.dequeue_count)

    def delete(self, message: Message) -> None:
        self._call("delete", self._client.delete_message, message.id, message.receipt)

    def release(self, message: Message, *, delay: float = 0) -> None:
        self._call(
            "release",
            self._client.update_message,
            message.id,
            pop_receipt=message.receipt,
            visibility_timeout=_seconds(delay),
        )

    def dead_letter(self, message: Message) -> None:
        """Copy to the poison queue, then delete: a crash in between leaves a duplicate there,
        never a lost message (replaying a finished job is a no-op)."""
        self._call("dead-letter", self._poison.send_message, message.body)
        self.delete(message)

    def depth(self) -> int:
        props = self._call("depth", self._client.get_queue_properties)
        return int(props.approximate_message_count or 0)
