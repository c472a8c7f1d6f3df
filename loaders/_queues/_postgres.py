"""A queue in the catalog's `queue_messages` table: SKIP LOCKED receives, receipts, visibility."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from loaders._queue import Message, StaleMessageError, check_size

_RECEIVE = sa.text(
    """
    UPDATE queue_messages m
       SET visible_at = now() + make_interval(secs => :vt),
           dequeue_count = m.dequeue_count + 1,
           receipt = gen_random_uuid()
      FROM (SELECT id FROM queue_messages
             WHERE queue = :queue AND visible_at <= now()
             ORDER BY visible_at, id
             LIMIT :n
             FOR UPDATE SKIP LOCKED) picked
     WHERE m.id = picked.id
 RETURNING m.id, m.receipt, m.body, m.dequeue_count
    """
)


class PostgresQueue:
    """The embedded default: no extra service, transactional, good for one machine or a few."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self.name = name

    def __repr__(self) -> str:
        return f"PostgresQueue({self.name!r})"

    def send(self, body: str, *, delay: float = 0) -> str:
        check_size(body)
        with self._engine.begin() as conn:
            msg_id: int = conn.execute(
                sa.text(
                    "INSERT INTO queue_messages (queue, body, dequeue_count, visible_at) "
                    "VALUES (:queue, :body, 0, now() + make_interval(secs => :delay)) RETURNING id"
                ),
                {"queue": self.name, "body": body, "delay": float(delay)},
            ).scalar_one()
        return str(msg_id)

    def receive(self, *, visibility_timeout: float, max_messages: int = 1) -> list[Message]:
        with self._engine.begin() as conn:
            rows = conn.execute(
                _RECEIVE,
                {"queue": self.name, "vt": float(visibility_timeout), "n": max_messages},
            ).all()
        return [
            Message(
                id=str(r.id), receipt=str(r.receipt), body=r.body, dequeue_count=r.dequeue_count
            )
            for r in sorted(rows, key=lambda r: r.id)
        ]

    def _held(
        self, conn: sa.Connection, sql: str, message: Message, **params: object
    ) -> sa.Row[Any]:
        row = conn.execute(
            sa.text(sql),
            {"id": int(message.id), "receipt": uuid.UUID(message.receipt), **params},
        ).first()
        if row is None:
            raise StaleMessageError(
                f"message {message.id} on {self.name} is no longer held by this receipt"
            )
        return row

    def renew(self, message: Message, *, visibility_timeout: float) -> Message:
        with self._engine.begin() as conn:
            row = self._held(
                conn,
                "UPDATE queue_messages SET visible_at = now() + make_interval(secs => :vt), "
                "receipt = gen_random_uuid() WHERE id = :id AND receipt = :receipt "
                "AND queue = :queue RETURNING receipt",
                message,
                vt=float(visibility_timeout),
                queue=self.name,
            )
        return Message(message.id, str(row.receipt), message.body, message.dequeue_count)

    def delete(self, message: Message) -> None:
        with self._engine.begin() as conn:
            self._held(
                conn,
                "DELETE FROM queue_messages WHERE id = :id AND receipt = :receipt "
                "AND queue = :queue RETURNING id",
                message,
                queue=self.name,
            )

    def release(self, message: Message, *, delay: float = 0) -> None:
        with self._engine.begin() as conn:
            self._held(
                conn,
                "UPDATE queue_messages SET visible_at = now() + make_interval(secs => :delay), "
                "receipt = NULL WHERE id = :id AND receipt = :receipt AND queue = :queue "
                "RETURNING id",
                message,
                delay=float(delay),
                queue=self.name,
            )

    def dead_letter(self, message: Message) -> None:
        with self._engine.begin() as conn:
            self._held(
                conn,
                "UPDATE queue_messages SET queue = :poison, visible_at = now(), receipt = NULL, "
                "dequeue_count = 0 WHERE id = :id AND receipt = :receipt AND queue = :queue "
                "RETURNING id",
                message,
                poison=f"{self.name}-poison",
                queue=self.name,
            )

    def depth(self) -> int:
        with self._engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(*) FROM queue_messages WHERE queue = :queue"),
                    {"queue": self.name},
                ).scalar_one()
            )
