"""Idempotent, conflict-safe writes of bars and rejects."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import (
    ColumnProperties,
    CommitProperties,
    DeltaTable,
    Transaction,
    WriterProperties,
    write_deltalake,
)
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from lake._schema import (
    EOD_SCHEMA,
    EOD_TABLE,
    REJECT_SCHEMA,
    REJECTS_TABLE,
    TABLE_CONFIGURATION,
)
from lake._settings import Granularity, LakeSettings
from lake._validate import RowCheck, validate
from stockdata.errors import TransientError
from stockdata.logs import get_logger

log = get_logger(__name__)

#: The Delta application-transaction version a job commits with; a job writes once.
JOB_TXN_VERSION = 1


@dataclass(frozen=True, slots=True)
class WriteMetrics:
    """What a write did. `committed` is False when the job had already been written."""

    rows_written: int
    rows_rejected: int
    rows_inserted: int
    rows_updated: int
    files_added: int
    version: int | None
    committed: bool
    partitions: tuple[str, ...]
    attempts: int


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff for commit conflicts: exponential with full jitter, capped."""

    attempts: int = 12
    base_seconds: float = 0.05
    max_seconds: float = 2.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_seconds, self.base_seconds * 2**attempt))  # noqa: S311


def period_of(dates: pa.ChunkedArray | pa.Array, granularity: Granularity) -> pa.Array:
    fmt = "%Y" if granularity == "year" else "%Y-%m"
    return pc.strftime(dates.cast(pa.timestamp("s")), format=fmt)


def writer_properties(settings: LakeSettings) -> WriterProperties:
    return WriterProperties(
        compression="ZSTD",
        compression_level=3,
        max_row_group_size=settings.lake_row_group_rows,
        default_column_properties=ColumnProperties(statistics_enabled="PAGE"),
    )


def open_table(settings: LakeSettings, name: str) -> DeltaTable | None:
    try:
        return DeltaTable(settings.table_uri(name), storage_options=settings.storage_options())
    except TableNotFoundError:
        return None


def ensure_table(settings: LakeSettings, name: str) -> DeltaTable:
    """Open a table, creating it empty with the project's schema and properties if missing."""
    table = open_table(settings, name)
    if table is not None:
        return table
    schema, partition = (EOD_SCHEMA, ["period"]) if name == EOD_TABLE else (REJECT_SCHEMA, None)
    try:
        DeltaTable.create(
            settings.table_uri(name),
            schema=schema,
            partition_by=partition,
            mode="ignore",
            name=name,
            configuration=TABLE_CONFIGURATION,
            storage_options=settings.storage_options(),
        )
    except DeltaError as exc:  # another writer created it first
        log.debug("create_table_raced", table=name, error=str(exc))
    table = open_table(settings, name)
    if table is None:
        raise TransientError(f"table {name} could not be created at {settings.table_uri(name)}")
    return table


def _with_lineage(
    good: pa.Table, *, job_id: str, granularity: Granularity, now: dt.datetime
) -> pa.Table:
    n = good.num_rows
    out = good.append_column(pa.field("job_id", pa.string()), pa.array([job_id] * n, pa.string()))
    out = out.append_column(
        EOD_SCHEMA.field("ingested_at"), pa.array([now] * n, pa.timestamp("us", tz="UTC"))
    )
    out = out.append_column(
        EOD_SCHEMA.field("period"), period_of(good.column("trade_date"), granularity)
    )
    return out.cast(EOD_SCHEMA).sort_by([("ticker", "ascending"), ("trade_date", "ascending")])


def _merge_predicate(batch: pa.Table) -> str:
    lo, hi = pc.min_max(batch.column("trade_date")).values()
    periods = ", ".join(f"'{p}'" for p in sorted(set(batch.column("period").to_pylist())))
    return (
        f"t.period IN ({periods}) AND t.trade_date >= CAST('{lo}' AS DATE) "
        f"AND t.trade_date <= CAST('{hi}' AS DATE) "
        "AND t.ticker = s.ticker AND t.trade_date = s.trade_date AND t.period = s.period"
    )


def _commit_with_retry(
    settings: LakeSettings, name: str, app_id: str, write: object, retry: RetryPolicy
) -> tuple[dict[str, int], int | None, bool, int]:
    """Run `write(table, commit_properties)` once per app id, retrying commit conflicts."""
    for attempt in range(retry.attempts):
        table = ensure_table(settings, name)
        if table.transaction_version(app_id) is not None:
            return {}, table.version(), False, attempt + 1
        props = CommitProperties(app_transactions=[Transaction(app_id, JOB_TXN_VERSION)])
        try:
            metrics = write(table, props)  # type: ignore[operator]
        except CommitFailedError as exc:
            wait = retry.delay(attempt)
            log.info(
                "commit_conflict",
                table=name,
                app_id=app_id,
                attempt=attempt + 1,
                retry_in=round(wait, 3),
                error=str(exc)[:200],
            )
            time.sleep(wait)
            continue
        table.update_incremental()
        return dict(metrics or {}), table.version(), True, attempt + 1
    raise TransientError(
        f"gave up committing to {name} after {retry.attempts} conflicting attempts; retry the job",
        code="commit-conflict",
    )


def write_rejects(
    settings: LakeSettings, rejects: pa.Table, *, job_id: str, retry: RetryPolicy | None = None
) -> int:
    """Append rejected rows for a job once (replays commit nothing). Returns rows appended."""
    if rejects.num_rows == 0:
        return 0
    stamped = rejects.set_column(0, "job_id", pa.array([job_id] * rejects.num_rows, pa.string()))

    def append(table: DeltaTable, props: CommitProperties) -> dict[str, int]:
        write_deltalake(table, stamped, mode="append", commit_properties=props)
        return {}

    _, _, committed, _ = _commit_with_retry(
        settings, REJECTS_TABLE, f"{job_id}:rejects", append, retry or RetryPolicy()
    )
    return stamped.num_rows if committed else 0


def write_bars(
    settings: LakeSettings,
    bars: pa.Table,
    *,
    job_id: str,
    today: dt.date | None = None,
    extra_checks: Iterable[RowCheck] = (),
    retry: RetryPolicy | None = None,
) -> WriteMetrics:
    """Validate a batch and upsert it into eod_prices keyed by (ticker, trade_date), once per job.

    The job id is the Delta application id: a replayed job finds its transaction in the log
    and commits nothing. Concurrent writers that touch the same rows conflict, and the loser
    retries against the new snapshot, so no row is lost or duplicated.
    """
    retry = retry or RetryPolicy()
    checked = validate(bars, today=today, extra_checks=extra_checks)
    rejected = write_rejects(settings, checked.rejects, job_id=job_id, retry=retry)
    if checked.good.num_rows == 0:
        table = open_table(settings, EOD_TABLE)
        return WriteMetrics(
            0, checked.rejects.num_rows, 0, 0, 0, table.version() if table else None, False, (), 0
        )
    batch = _with_lineage(
        checked.good,
        job_id=job_id,
        granularity=settings.lake_partition,
        now=dt.datetime.now(dt.UTC),
    )
    predicate = _merge_predicate(batch)
    props_writer = writer_properties(settings)

    def merge(table: DeltaTable, props: CommitProperties) -> dict[str, int]:
        result = (
            table.merge(
                batch,
                predicate=predicate,
                source_alias="s",
                target_alias="t",
                writer_properties=props_writer,
                commit_properties=props,
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
        return {k: int(v) for k, v in result.items() if isinstance(v, int | float)}

    metrics, version, committed, attempts = _commit_with_retry(
        settings, EOD_TABLE, job_id, merge, retry
    )
    inserted = metrics.get("num_target_rows_inserted", 0)
    updated = metrics.get("num_target_rows_updated", 0)
    partitions = tuple(sorted(set(batch.column("period").to_pylist())))
    log.info(
        "bars_written",
        job_id=job_id,
        committed=committed,
        inserted=inserted,
        updated=updated,
        rejected=rejected,
        version=version,
        attempts=attempts,
    )
    return WriteMetrics(
        rows_written=batch.num_rows if committed else 0,
        rows_rejected=checked.rejects.num_rows,
        rows_inserted=inserted,
        rows_updated=updated,
        files_added=metrics.get("num_target_files_added", 0),
        version=version,
        committed=committed,
        partitions=partitions,
        attempts=attempts,
    )
