"""SQLAlchemy 2 typed models of the catalog: reference data, ingestion metadata, API keys."""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _now() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    POISONED = "poisoned"


class Role(enum.StrEnum):
    READER = "reader"
    ANALYST = "analyst"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return {"reader": 0, "analyst": 1, "admin": 2}[self.value]


class Currency(Base):
    __tablename__ = "currencies"

    code: Mapped[str] = mapped_column(String(3), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    symbol: Mapped[str | None] = mapped_column(String(8))


class Exchange(Base):
    __tablename__ = "exchanges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mic: Mapped[str] = mapped_column(String(4), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    acronym: Mapped[str | None] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(100))
    country_code: Mapped[str | None] = mapped_column(String(2))
    city: Mapped[str | None] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    currency_code: Mapped[str | None] = mapped_column(ForeignKey("currencies.code"))
    calendar_code: Mapped[str | None] = mapped_column(
        String(16), comment="exchange-calendars calendar name used for session checks"
    )
    website: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _now()

    tickers: Mapped[list[Ticker]] = relationship(back_populates="exchange")


class Ticker(Base):
    __tablename__ = "tickers"
    __table_args__ = (
        UniqueConstraint("exchange_id", "symbol"),
        Index("ix_tickers_symbol", "symbol"),
        Index("ix_tickers_lower_name", func.lower(text("name"))),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exchange_id: Mapped[int] = mapped_column(ForeignKey("exchanges.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(300))
    currency_code: Mapped[str | None] = mapped_column(ForeignKey("currencies.code"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    first_ingested: Mapped[dt.date | None] = mapped_column(Date)
    last_ingested: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _now()

    exchange: Mapped[Exchange] = relationship(back_populates="tickers")


class DataStore(Base):
    """Where a lake lives: a local directory or an ADLS container."""

    __tablename__ = "data_stores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    uri: Mapped[str] = mapped_column(String(500))
    container: Mapped[str | None] = mapped_column(String(100))
    partition_by: Mapped[str] = mapped_column(String(16), server_default=text("'year'"))
    created_at: Mapped[dt.datetime] = _now()


class IngestionJob(Base):
    __tablename__ = "ingestion_jobs"
    __table_args__ = (
        CheckConstraint("date_from <= date_to", name="date_range"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        Index("ix_ingestion_jobs_status_created_at", "status", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    idempotency_key: Mapped[str] = mapped_column(
        String(200), unique=True, comment="provider|exchange|from|to|kind|batch digest"
    )
    kind: Mapped[str] = mapped_column(String(16), comment="daily, backfill or load")
    provider: Mapped[str] = mapped_column(String(32))
    exchange_mic: Mapped[str | None] = mapped_column(String(4))
    date_from: Mapped[dt.date] = mapped_column(Date)
    date_to: Mapped[dt.date] = mapped_column(Date)
    tickers: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    status: Mapped[JobStatus] = mapped_column(
        Enum(
            JobStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]
        ),
        default=JobStatus.QUEUED,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    rows_written: Mapped[int | None] = mapped_column(BigInteger)
    rows_rejected: Mapped[int | None] = mapped_column(BigInteger)
    lake_version: Mapped[int | None] = mapped_column(BigInteger)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    data_store_id: Mapped[int | None] = mapped_column(ForeignKey("data_stores.id"))
    created_at: Mapped[dt.datetime] = _now()
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = _now()

    outputs: Mapped[list[JobOutput]] = relationship(back_populates="job")


class JobOutput(Base):
    """Where a job's data landed: one row per Delta table the job committed to."""

    __tablename__ = "job_outputs"
    __table_args__ = (UniqueConstraint("job_id", "table_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ingestion_jobs.id", ondelete="CASCADE"))
    data_store_id: Mapped[int | None] = mapped_column(ForeignKey("data_stores.id"))
    table_uri: Mapped[str] = mapped_column(String(500))
    table_name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int | None] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    partitions: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)
    created_at: Mapped[dt.datetime] = _now()

    job: Mapped[IngestionJob] = relationship(back_populates="outputs")


class ApiKey(Base):
    """An API key; only its SHA-256 digest is stored, the raw key is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])
    )
    created_at: Mapped[dt.datetime] = _now()
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class QueueMessage(Base):
    """The Postgres-backed job queue (the embedded default; Azure Storage Queue in production)."""

    __tablename__ = "queue_messages"
    __table_args__ = (Index("ix_queue_messages_queue_visible_at", "queue", "visible_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(63))
    body: Mapped[str] = mapped_column(Text)
    dequeue_count: Mapped[int] = mapped_column(Integer, default=0)
    receipt: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    enqueued_at: Mapped[dt.datetime] = _now()
    visible_at: Mapped[dt.datetime] = _now()
