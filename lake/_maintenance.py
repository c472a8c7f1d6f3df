"""Table upkeep: sorted optimize, guarded vacuum, restore, checkpoints and a summary."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from lake._schema import BY_DATE_TABLE, EOD_TABLE
from lake._settings import LakeSettings
from lake._write import (
    PARTITIONS_KEY,
    SORTED_KEY,
    RetryPolicy,
    open_table,
    writer_properties,
)
from stockdata.errors import InvalidInputError, NotFoundError, TransientError
from stockdata.logs import get_logger

log = get_logger(__name__)

#: Custom commit metadata that marks an optimize rewrite (and which partition it sorted).
OPTIMIZE_KEY = "stockdata.operation"
OPTIMIZE_PARTITION_KEY = "stockdata.partition"


@dataclass(frozen=True, slots=True)
class TableInfo:
    """What `stockdata lake info` prints."""

    uri: str
    version: int
    rows: int
    files: int
    partitions: int
    bytes: int
    last_optimize_version: int | None
    last_optimize_at: dt.datetime | None
    oldest_version: int


@dataclass(frozen=True, slots=True)
class OptimizeMetrics:
    """Partitions rewritten (sorted by ticker, trade_date), files before and after, new version."""

    partitions: tuple[str, ...]
    files_removed: int
    files_added: int
    rows: int
    version: int


def _require(settings: LakeSettings, name: str = EOD_TABLE) -> DeltaTable:
    table = open_table(settings, name)
    if table is None:
        raise NotFoundError(f"no {name} table at {settings.table_uri(name)}: load data first")
    return table


def _last_optimize(table: DeltaTable) -> tuple[int | None, int | None]:
    """(version, timestamp ms) of the newest optimize commit still in the log."""
    for commit in table.history():
        if commit.get(OPTIMIZE_KEY) == "optimize":
            return int(commit["version"]), int(commit["timestamp"])
    return None, None


def table_info(settings: LakeSettings, *, name: str = EOD_TABLE) -> TableInfo:
    """Version, size and maintenance state of a table, from its Delta log alone."""
    table = _require(settings, name)
    adds = pa.table(table.get_add_actions(flatten=True))
    rows = int(pc.sum(adds.column("num_records")).as_py() or 0) if adds.num_rows else 0
    size = int(pc.sum(adds.column("size_bytes")).as_py() or 0) if adds.num_rows else 0
    parts = (
        len(pc.unique(adds.column("partition.period")))
        if adds.num_rows and "partition.period" in adds.column_names
        else 0
    )
    history = table.history()
    opt_version, opt_ms = _last_optimize(table)
    return TableInfo(
        uri=settings.table_uri(name),
        version=int(table.version()),
        rows=rows,
        files=adds.num_rows,
        partitions=parts,
        bytes=size,
        last_optimize_version=opt_version,
        last_optimize_at=(
            dt.datetime.fromtimestamp(opt_ms / 1000, dt.UTC) if opt_ms is not None else None
        ),
        oldest_version=min(int(c["version"]) for c in history) if history else 0,
    )


def partitions_to_optimize(table: DeltaTable) -> list[str]:
    """Partitions to rewrite: more than one file, or touched since the last optimize by a
    commit that may have left them unsorted (a merge, or a writer that is not ours)."""
    adds = pa.table(table.get_add_actions(flatten=True))
    if adds.num_rows == 0:
        return []
    counts = adds.group_by("partition.period").aggregate(
        [("path", "count"), ("modification_time", "max")]
    )
    periods = counts.column("partition.period").to_pylist()
    chosen = {
        p for p, n in zip(periods, counts.column("path_count").to_pylist(), strict=True) if n > 1
    }
    foreign_since: int | None = None
    for commit in table.history():
        if commit.get(OPTIMIZE_KEY) == "optimize":
            break
        if commit.get("operation") in {"CREATE TABLE", "VACUUM START", "VACUUM END"}:
            continue
        touched = commit.get(PARTITIONS_KEY)
        if touched is None:  # not written by write_bars: judge its files by their time
            # its files were written a little before it committed
            start = int(commit.get("timestamp", 0)) - 60_000
            foreign_since = start if foreign_since is None else min(foreign_since, start)
        elif commit.get(SORTED_KEY) != "true":
            chosen.update(str(touched).split(","))
    if foreign_since is not None:
        newest = counts.column("modification_time_max").to_pylist()
        chosen.update(p for p, t in zip(periods, newest, strict=True) if t >= foreign_since)
    return sorted(chosen & set(periods))


#: The order each table's rows are kept in.
SORT_ORDER = {
    EOD_TABLE: [("ticker", "ascending"), ("trade_date", "ascending")],
    BY_DATE_TABLE: [("trade_date", "ascending"), ("ticker", "ascending")],
}


def optimize(
    settings: LakeSettings,
    *,
    name: str = EOD_TABLE,
    partitions: list[str] | None = None,
    retry: RetryPolicy | None = None,
) -> OptimizeMetrics:
    """Rewrite each touched partition in the table's order into target-size files.

    eod_prices is sorted by (ticker, trade_date), eod_by_date by (trade_date, ticker).

    Never an unsorted compaction: `optimize.compact()` interleaves files and loses the
    clustering that makes per-ticker reads skip row groups. Each partition is one commit,
    guarded by `period = p`, so a concurrent write to it makes this rewrite retry, not lose
    rows. The commit carries `stockdata.operation = optimize` and the partition.
    """
    retry = retry or RetryPolicy()
    table = _require(settings, name)
    todo = partitions if partitions is not None else partitions_to_optimize(table)
    removed = added = rows = 0
    props = writer_properties(settings)
    for part in todo:
        for attempt in range(retry.attempts):
            table.update_incremental()
            adds = pa.table(table.get_add_actions(flatten=True))
            before = int(pc.sum(pc.equal(adds.column("partition.period"), part)).as_py() or 0)
            if before == 0:
                break
            data = table.to_pyarrow_table(partitions=[("period", "=", part)]).sort_by(
                SORT_ORDER[name]
            )
            try:
                write_deltalake(
                    table,
                    data,
                    mode="overwrite",
                    predicate=f"period = '{part}'",
                    writer_properties=props,
                    target_file_size=settings.lake_target_file_bytes,
                    commit_properties=CommitProperties(
                        custom_metadata={OPTIMIZE_KEY: "optimize", OPTIMIZE_PARTITION_KEY: part}
                    ),
                )
            except CommitFailedError:
                time.sleep(retry.delay(attempt))
                continue
            table.update_incremental()
            metrics = table.history(1)[0].get("operationMetrics", {})
            removed += before
            added += int(metrics.get("num_added_files", 0))
            rows += data.num_rows
            log.info(
                "partition_optimized", table=name, partition=part, rows=data.num_rows, files=before
            )
            break
        else:
            raise TransientError(
                f"optimize of partition {part} kept conflicting with writers; run it again",
                code="commit-conflict",
            )
    table.update_incremental()
    return OptimizeMetrics(tuple(todo), removed, added, rows, int(table.version()))


def vacuum(
    settings: LakeSettings,
    *,
    retention_hours: int | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Delete files no version within the retention needs; refuses a too-short retention."""
    hours = settings.lake_vacuum_retention_hours if retention_hours is None else retention_hours
    if hours < settings.lake_min_vacuum_retention_hours:
        raise InvalidInputError(
            f"refusing to vacuum with a retention of {hours} h: the minimum is "
            f"{settings.lake_min_vacuum_retention_hours} h (STOCKDATA_LAKE_MIN_VACUUM_RETENTION_"
            "HOURS); readers pinned to older versions would lose their files",
            code="vacuum-retention",
        )
    table = _require(settings)
    files = table.vacuum(retention_hours=hours, dry_run=dry_run, enforce_retention_duration=False)
    return sorted(files)


def restore(settings: LakeSettings, *, version: int | dt.datetime) -> dict[str, object]:
    """Roll eod_prices back to an earlier version (a new commit; history is kept)."""
    table = _require(settings)
    current = int(table.version())
    if isinstance(version, int) and not 0 <= version < current:
        raise InvalidInputError(
            f"cannot restore to version {version}: choose one from 0 to {current - 1}",
            code="restore-version",
        )
    try:
        result = table.restore(version)
    except Exception as exc:  # delta-rs raises its own error types for a missing version
        raise InvalidInputError(
            f"cannot restore to {version}: {exc}", code="restore-version"
        ) from exc
    table.update_incremental()
    return {**dict(result), "version": int(table.version()), "restored_to": version}


def version_as_of(settings: LakeSettings, as_of: str) -> int:
    """A table version from `N` or an ISO timestamp (the newest version committed by then)."""
    table = _require(settings)
    if as_of.strip().isdigit():
        version = int(as_of)
        if version > table.version():
            raise InvalidInputError(
                f"version {version} does not exist: the latest is {table.version()}",
                code="as-of",
            )
        return version
    try:
        when = dt.datetime.fromisoformat(as_of)
    except ValueError as exc:
        raise InvalidInputError(
            f"--as-of {as_of!r} is neither a version number nor an ISO timestamp", code="as-of"
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    try:
        table.load_as_version(when)
    except Exception as exc:
        raise InvalidInputError(f"no table version at {as_of}: {exc}", code="as-of") from exc
    return int(table.version())


def checkpoint(settings: LakeSettings) -> int:
    """Write a checkpoint of the current version now (writes also do, every 20 commits)."""
    table = _require(settings)
    table.create_checkpoint()
    return int(table.version())
