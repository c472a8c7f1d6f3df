"""Idempotent, conflict-safe writes of bars and rejects."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
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
    ACTION_SCHEMA,
    ACTIONS_TABLE,
    EOD_SCHEMA,
    EOD_TABLE,
    REJECT_SCHEMA,
    REJECTS_TABLE,
    TABLE_CONFIGURATION,
)
from lake._settings import Granularity, LakeSettings
from lake._validate import RowCheck, validate
from stockdata.backoff import backoff_delay
from stockdata.errors import TransientError
from stockdata.logs import get_logger

log = get_logger(__name__)

#: Commit metadata: the partitions a write touched, and whether it left them sorted.
PARTITIONS_KEY = "stockdata.partitions"
SORTED_KEY = "stockdata.sorted"

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
    #: Rows of the batch that passed validation, whether or not this call committed them.
    rows_valid: int = 0
    #: First and last trade date per ticker among the valid rows.
    ticker_ranges: Mapping[str, tuple[dt.date, dt.date]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff for commit conflicts: exponential with full jitter, capped."""

    attempts: int = 12
    base_seconds: float = 0.05
    max_seconds: float = 2.0

    def delay(self, attempt: int) -> float:
        """Full jitter (many writers retry at once: spread them out), capped."""
        return backoff_delay(attempt, base=self.base_seconds, cap=self.max_seconds)


def period_of(dates: pa.ChunkedArray | pa.Array, granularity: Granularity) -> pa.Array:
    """The partition value of each date: "YYYY" or "YYYY-MM"."""
    if isinstance(dates, pa.ChunkedArray):
        dates = dates.combine_chunks()
    code = np.asarray(pc.year(dates).fill_null(0), dtype=np.int32)
    if granularity == "month":
        code = code * 100 + np.asarray(pc.month(dates).fill_null(0), dtype=np.int32)
    values, inverse = np.unique(code, return_inverse=True)
    labels = [str(v) if granularity == "year" else f"{v // 100:04d}-{v % 100:02d}" for v in values]
    return pa.DictionaryArray.from_arrays(
        pa.array(inverse.astype(np.int32)), pa.array(labels, pa.string())
    ).cast(pa.string())


#: Low-cardinality text columns: dictionary-encoded. Floats are not (dictionary-encoding
#: prices cost 3x the write time for nothing, measured in bench/run_lake.py).
_DICTIONARY_COLUMNS = ("ticker", "exchange_mic", "currency", "source", "job_id")


def writer_properties(settings: LakeSettings) -> WriterProperties:
    """Snappy (every Delta reader has it; ZSTD halves the write rate on 2 cores), page stats."""
    return WriterProperties(
        compression="SNAPPY",
        max_row_group_size=settings.lake_row_group_rows,
        default_column_properties=ColumnProperties(
            dictionary_enabled=False, statistics_enabled="PAGE"
        ),
        column_properties={
            name: ColumnProperties(dictionary_enabled=True, statistics_enabled="PAGE")
            for name in _DICTIONARY_COLUMNS
        },
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
    schema, partition = {
        EOD_TABLE: (EOD_SCHEMA, ["period"]),
        REJECTS_TABLE: (REJECT_SCHEMA, None),
        ACTIONS_TABLE: (ACTION_SCHEMA, None),
    }[name]
    try:
        DeltaTable.create(
            settings.table_uri(name),
            schema=schema,
            partition_by=partition,
            mode="ignore",
            name=name,
            configuration=(
                {**TABLE_CONFIGURATION, "delta.dataSkippingStatsColumns": "ticker,ex_date"}
                if name == ACTIONS_TABLE
                else TABLE_CONFIGURATION
            ),
            storage_options=settings.storage_options(),
        )
    except DeltaError as exc:  # another writer created it first
        log.debug("create_table_raced", table=name, error=str(exc))
    table = open_table(settings, name)
    if table is None:
        raise TransientError(f"table {name} could not be created at {settings.table_uri(name)}")
    return table


#: Per-thread cache of the DeltaTable objects writers commit through: re-opening a table
#: replays its log from the last checkpoint on every job, `update_incremental` reads only
#: the commits since. One thread never shares its objects with another.
_WRITER_TABLES = threading.local()
_WRITER_TABLES_MAX = 8


def _writer_table(settings: LakeSettings, name: str) -> DeltaTable:
    """`ensure_table`, reusing this thread's open DeltaTable brought up to date."""
    uri = settings.table_uri(name)
    key = (uri, tuple(sorted(settings.storage_options().items())))
    cache: dict[tuple[str, tuple[tuple[str, str], ...]], DeltaTable] | None = getattr(
        _WRITER_TABLES, "tables", None
    )
    if cache is None:
        cache = _WRITER_TABLES.tables = {}
    table = cache.get(key)
    if table is not None:
        try:
            table.update_incremental()
            return table
        except (DeltaError, OSError) as exc:  # gone or unreadable: open afresh
            log.debug("writer_table_reopen", table=name, error=str(exc))
            del cache[key]
    table = ensure_table(settings, name)
    if len(cache) >= _WRITER_TABLES_MAX:
        del cache[next(iter(cache))]
    cache[key] = table
    return table


def _repeat(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], pa.string())
    ).cast(pa.string())


def _with_lineage(
    good: pa.Table, *, job_id: str, granularity: Granularity, now: dt.datetime
) -> pa.Table:
    n = good.num_rows
    out = good.append_column(pa.field("job_id", pa.string()), _repeat(job_id, n))
    stamp = np.full(n, np.datetime64(now.replace(tzinfo=None), "us"))
    out = out.append_column(
        EOD_SCHEMA.field("ingested_at"), pa.array(stamp, pa.timestamp("us", tz="UTC"))
    )
    out = out.append_column(
        EOD_SCHEMA.field("period"), period_of(good.column("trade_date"), granularity)
    )
    return out.cast(EOD_SCHEMA)


Box = tuple[str, str, dt.date, dt.date, list[str]]


def _box(batch: pa.Table) -> Box:
    """(first ticker, last ticker, first date, last date, sorted periods) of a batch."""
    tlo, thi = (v.as_py() for v in pc.min_max(batch.column("ticker")).values())
    dlo, dhi = (v.as_py() for v in pc.min_max(batch.column("trade_date")).values())
    return tlo, thi, dlo, dhi, sorted(pc.unique(batch.column("period")).to_pylist())


def _can_collide(table: DeltaTable, batch: pa.Table, box: Box | None = None) -> bool:
    """Whether any file's (ticker, trade_date) stats box overlaps the batch's box.

    Reads only the Delta log. False means no existing row can share a key with the batch,
    so a predicate-guarded append is exact; True means the batch must be merged.
    """
    tlo, thi, dlo, dhi, periods = box or _box(batch)
    adds = pa.table(table.get_add_actions(flatten=True))
    if adds.num_rows == 0:
        return False
    names = set(adds.column_names)
    needed = {"min.ticker", "max.ticker", "min.trade_date", "max.trade_date"}
    if not needed <= names:
        return True
    if "partition.period" in names:
        adds = adds.filter(pc.is_in(adds.column("partition.period"), pa.array(periods)))
    if adds.num_rows == 0:
        return False
    overlap = pc.and_kleene(
        pc.and_kleene(
            pc.less_equal(adds.column("min.ticker"), thi),
            pc.greater_equal(adds.column("max.ticker"), tlo),
        ),
        pc.and_kleene(
            pc.less_equal(adds.column("min.trade_date"), pa.scalar(dhi, pa.date32())),
            pc.greater_equal(adds.column("max.trade_date"), pa.scalar(dlo, pa.date32())),
        ),
    )
    return bool(pc.any(pc.fill_null(overlap, True)).as_py())


def _append_predicate(batch: pa.Table, box: Box | None = None) -> str:
    """The batch's key box: the guarded append reads (and would replace) only this region."""
    tlo, thi, dlo, dhi, periods = box or _box(batch)
    quoted = ", ".join(_sql_str(p) for p in periods)
    return (
        f"period IN ({quoted}) AND ticker >= {_sql_str(tlo)} AND ticker <= {_sql_str(thi)} "
        f"AND trade_date >= '{dlo}' AND trade_date <= '{dhi}'"
    )


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _merge_predicate(batch: pa.Table, box: Box | None = None) -> str:
    _, _, lo, hi, sorted_periods = box or _box(batch)
    periods = ", ".join(_sql_str(p) for p in sorted_periods)
    return (
        f"t.period IN ({periods}) AND t.trade_date >= CAST('{lo}' AS DATE) "
        f"AND t.trade_date <= CAST('{hi}' AS DATE) "
        "AND t.ticker = s.ticker AND t.trade_date = s.trade_date AND t.period = s.period"
    )


def _commit_with_retry(
    settings: LakeSettings,
    name: str,
    app_id: str,
    write: object,
    retry: RetryPolicy,
    *,
    metadata: dict[str, str] | None = None,
) -> tuple[dict[str, int], int | None, bool, int]:
    """Run `write(table, commit_properties)` once per app id, retrying commit conflicts."""
    for attempt in range(retry.attempts):
        table = _writer_table(settings, name)
        if table.transaction_version(app_id) is not None:
            return {}, table.version(), False, attempt + 1
        props = CommitProperties(
            app_transactions=[Transaction(app_id, JOB_TXN_VERSION)],
            custom_metadata=dict(metadata or {}),
        )
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
    """Record rejected rows once per row (replays commit nothing, and a row rejected again
    by a later job, a re-load with one more row say, is not added twice). Returns the rows
    added."""
    if rejects.num_rows == 0:
        return 0
    stamped = rejects.set_column(0, "job_id", pa.array([job_id] * rejects.num_rows, pa.string()))
    first = pc.equal(  # one row per (raw, reason) within the batch
        pa.array(range(stamped.num_rows)),
        pc.index_in(
            pc.binary_join_element_wise(stamped["raw"], stamped["reason"], "\x1f"),
            pc.binary_join_element_wise(stamped["raw"], stamped["reason"], "\x1f"),
        ),
    )
    stamped = stamped.filter(first)

    def insert_new(table: DeltaTable, props: CommitProperties) -> dict[str, int]:
        return dict(
            table.merge(
                stamped,
                predicate="t.raw = s.raw AND t.reason = s.reason",
                source_alias="s",
                target_alias="t",
                commit_properties=props,
            )
            .when_not_matched_insert_all()
            .execute()
        )

    metrics, _, committed, _ = _commit_with_retry(
        settings, REJECTS_TABLE, f"{job_id}:rejects", insert_new, retry or RetryPolicy()
    )
    return int(metrics.get("num_target_rows_inserted", 0)) if committed else 0


def _upsert(
    settings: LakeSettings,
    name: str,
    batch: pa.Table,
    *,
    app_id: str,
    retry: RetryPolicy,
    box: Box | None = None,
) -> tuple[dict[str, int], int | None, bool, int]:
    """Insert-or-update `batch` (sorted, with `period`) keyed by (ticker, trade_date), once.

    `box` is `_box(batch)` when the caller already has it."""
    box = box or _box(batch)
    predicate = _merge_predicate(batch, box)
    append_predicate = _append_predicate(batch, box)
    touched = ",".join(box[4])
    # Which partitions this commit touched and whether their files stay sorted (the guarded
    # append writes the sorted batch; a merge may not): `optimize` reads this from the log.
    metadata = {PARTITIONS_KEY: touched, SORTED_KEY: "false"}
    props_writer = writer_properties(settings)

    def merge(table: DeltaTable, props: CommitProperties) -> dict[str, int]:
        if not _can_collide(table, batch, box):
            # Fast path. A blind append would not conflict with a concurrent writer of the
            # same keys; an overwrite guarded by the batch's key box makes the conflict
            # checker reject us if anyone added files in that box since our snapshot, and
            # it replaces nothing because the log shows no file there.
            write_deltalake(
                table,
                batch,
                mode="overwrite",
                predicate=append_predicate,
                writer_properties=props_writer,
                target_file_size=settings.lake_target_file_bytes,
                commit_properties=CommitProperties(
                    app_transactions=[Transaction(app_id, JOB_TXN_VERSION)],
                    custom_metadata={**metadata, SORTED_KEY: "true"},
                ),
            )
            table.update_incremental()
            added = table.history(1)[0].get("operationMetrics", {}).get("num_added_files", 0)
            return {
                "num_target_rows_inserted": batch.num_rows,
                "num_target_files_added": int(added),
                "fast_path": 1,
            }
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

    return _commit_with_retry(settings, name, app_id, merge, retry, metadata=metadata)


def ticker_ranges(bars: pa.Table) -> dict[str, tuple[dt.date, dt.date]]:
    """First and last trade date of each ticker in `bars`."""
    if bars.num_rows == 0:
        return {}
    agg = bars.group_by("ticker").aggregate([("trade_date", "min"), ("trade_date", "max")])
    return dict(
        zip(
            agg.column("ticker").to_pylist(),
            zip(
                agg.column("trade_date_min").to_pylist(),
                agg.column("trade_date_max").to_pylist(),
                strict=True,
            ),
            strict=True,
        )
    )


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
    ranges = ticker_ranges(checked.good)
    batch = _with_lineage(
        checked.good,
        job_id=job_id,
        granularity=settings.lake_partition,
        now=dt.datetime.now(dt.UTC),
    )
    box = _box(batch)
    metrics, version, committed, attempts = _upsert(
        settings, EOD_TABLE, batch, app_id=job_id, retry=retry, box=box
    )
    # Splits and dividends a provider sends on its bars are actions too: a daily run that
    # sees one makes the whole history adjust (lake/_adjust.py) without re-downloading it.
    from lake._actions import actions_from_bars, write_actions

    carried = actions_from_bars(checked.good)
    if carried.num_rows:
        write_actions(settings, carried, job_id=job_id, today=today, retry=retry)
    inserted = metrics.get("num_target_rows_inserted", 0)
    updated = metrics.get("num_target_rows_updated", 0)
    partitions = tuple(box[4])
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
        rows_valid=checked.good.num_rows,
        ticker_ranges=ranges,
    )
