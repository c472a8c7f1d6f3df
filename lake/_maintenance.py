"""Table upkeep: sorted optimize, guarded vacuum, restore, checkpoints and a summary."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from lake._schema import ACTIONS_TABLE, BY_DATE_TABLE, EOD_TABLE
from lake._settings import LakeSettings
from lake._write import (
    PARTITIONS_KEY,
    SORTED_KEY,
    RetryPolicy,
    open_table,
    writer_properties,
)
from stockdata.errors import ConfigurationError, InvalidInputError, NotFoundError, TransientError
from stockdata.logs import get_logger, scrub_text

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


def check_access(settings: LakeSettings) -> None:
    """Refuse a lake this process cannot use: credentials missing or refused, a root it
    cannot write. Raises `ConfigurationError` with a one-line reason; writes nothing."""
    if not settings.is_azure and "://" not in settings.root:
        root = Path(settings.root)
        existing = next((p for p in [root, *root.parents] if p.exists()), root)
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigurationError(
                f"cannot write the lake at {settings.root}: {existing} is not a writable "
                "folder (check STOCKDATA_LAKE_URI)"
            )
    settings.storage_options()  # missing credentials
    try:
        open_table(settings, EOD_TABLE)
    except Exception as exc:  # delta-rs and object_store raise their own types
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ConfigurationError(
            f"cannot read the lake at {settings.root}: {scrub_text(reason)} "
            "(check the STOCKDATA_LAKE_ credentials)"
        ) from None


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
}


def optimize(
    settings: LakeSettings,
    *,
    name: str = EOD_TABLE,
    partitions: list[str] | None = None,
    retry: RetryPolicy | None = None,
) -> OptimizeMetrics:
    """Rewrite each touched partition in the table's order into target-size files.

    eod_prices is sorted by (ticker, trade_date).

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
    name: str = EOD_TABLE,
    retention_hours: int | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Delete a table's files older than the retention that no kept version needs, and the
    orphans that failed commits left (files no commit names); returns what was really
    deleted (or would be), as paths relative to the table. Refuses a too-short retention.

    eod_prices must exist; another table that does not is skipped (an empty list). Orphans
    are found on local disk only: on object storage delta-rs's own vacuum runs alone."""
    hours = settings.lake_vacuum_retention_hours if retention_hours is None else retention_hours
    if hours < settings.lake_min_vacuum_retention_hours:
        raise InvalidInputError(
            f"refusing to vacuum with a retention of {hours} h: the minimum is "
            f"{settings.lake_min_vacuum_retention_hours} h (STOCKDATA_LAKE_MIN_VACUUM_RETENTION_"
            "HOURS); readers pinned to older versions would lose their files",
            code="vacuum-retention",
        )
    table = _require(settings, name) if name == EOD_TABLE else open_table(settings, name)
    if table is None:
        return []
    uri = settings.table_uri(name)
    root = None if settings.is_azure or "://" in uri else Path(uri)
    tombstoned = table.vacuum(retention_hours=hours, dry_run=True, enforce_retention_duration=False)
    if root is not None:  # delta-rs lists tombstones whose files are already gone
        tombstoned = [p for p in tombstoned if (root / p).exists()]
    orphans = _orphans(table, root, hours) if root is not None else []
    if dry_run:
        return sorted({*tombstoned, *orphans})
    if tombstoned:
        table.vacuum(retention_hours=hours, dry_run=False, enforce_retention_duration=False)
    deleted = [p for p in tombstoned if root is None or not (root / p).exists()]
    for path in orphans:
        (root / path).unlink(missing_ok=True)  # type: ignore[operator]
        deleted.append(path)
    if deleted:
        log.info("vacuumed", table=name, files=len(deleted), orphans=len(orphans))
    return sorted(set(deleted))


def _orphans(table: DeltaTable, root: Path, hours: int) -> list[str]:
    """Data files under `root` that no commit in the log names (written by a commit that
    failed, a lost conflict say), not live, and older than the retention."""
    adds = pa.table(table.get_add_actions(flatten=True))
    named = {unquote(str(p)) for p in adds.column("path").to_pylist()} if adds.num_rows else set()
    for commit in (root / "_delta_log").glob("*.json"):
        for line in commit.read_text().splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            for kind in ("add", "remove"):
                if kind in action:
                    named.add(unquote(action[kind]["path"]))
    cutoff = time.time() - hours * 3600
    out = []
    for path in root.rglob("*.parquet"):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(("_delta_log/", ".", "_")):
            continue
        if relative not in named and path.stat().st_mtime < cutoff:
            out.append(relative)
    return sorted(out)


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What `restore` did: eod_prices' versions, the rows and the jobs whose data it removed."""

    restored_to: int
    version: int
    rows_before: int
    rows_after: int
    #: Lineage ids (the `job_id` column, of bars or actions) with rows before the restore and
    #: none after.
    removed_jobs: tuple[str, ...]
    #: corporate_actions after the restore (None: no such table) and the actions it removed.
    actions_version: int | None = None
    actions_removed: int = 0


def _job_ids(table: DeltaTable) -> set[str]:
    ids = table.to_pyarrow_table(columns=["job_id"]).column("job_id")
    return {str(v) for v in pc.unique(ids).to_pylist() if v is not None}


def restore(settings: LakeSettings, *, version: int) -> RestoreResult:
    """Roll eod_prices back to `version` (a new commit; history is kept), and corporate_actions
    to the moment that version was committed; says which jobs' rows it removed.

    Run it again if it was interrupted: restoring to the same version is repeatable."""
    table = _require(settings)
    current = int(table.version())
    if not 0 <= version < current:
        raise InvalidInputError(
            f"cannot restore to version {version}: choose one from 0 to {current - 1}",
            code="restore-version",
        )
    rows_before = int(table.count())
    jobs_before = _job_ids(table)
    when = _committed_at(table, version)
    try:
        table.restore(version)
    except Exception as exc:  # delta-rs raises its own error types for a missing version
        raise InvalidInputError(
            f"cannot restore to {version}: {exc}", code="restore-version"
        ) from exc
    table.update_incremental()
    removed = sorted(jobs_before - _job_ids(table))
    actions = open_table(settings, ACTIONS_TABLE)
    actions_removed = 0
    if actions is not None:
        action_jobs = _job_ids(actions)
        actions_removed = _roll_back_actions(actions, when)
        removed = sorted(set(removed) | (action_jobs - _job_ids(actions)))
    log.info(
        "lake_restored",
        restored_to=version,
        version=table.version(),
        jobs=len(removed),
        actions_removed=actions_removed,
    )
    return RestoreResult(
        restored_to=version,
        version=int(table.version()),
        rows_before=rows_before,
        rows_after=int(table.count()),
        removed_jobs=tuple(removed),
        actions_version=int(actions.version()) if actions is not None else None,
        actions_removed=actions_removed,
    )


def _committed_at(table: DeltaTable, version: int) -> int:
    """The commit time (ms since the epoch) of one version of `table`."""
    for entry in table.history():
        if int(entry.get("version", -1)) == version:
            return int(entry["timestamp"])
    raise InvalidInputError(f"version {version} has no commit in the log", code="restore-version")


def _roll_back_actions(actions: DeltaTable, when: int) -> int:
    """corporate_actions back to what it held at `when` (the restored eod version's commit
    time): the newest version committed by then, or empty if it began later. A new commit;
    history is kept. Returns the rows removed (a corrected row put back counts as one)."""
    before = int(actions.count())
    target = max(
        (int(e["version"]) for e in actions.history() if int(e["timestamp"]) <= when),
        default=None,
    )
    if target is None:
        if before:
            actions.delete()
    elif target < actions.version():
        actions.restore(target)
    actions.update_incremental()
    return max(0, before - int(actions.count()))


@dataclass(frozen=True, slots=True)
class DropMetrics:
    """What `drop_by_date` deleted: the table's folder and the files (data and log) in it."""

    uri: str
    files: int
    bytes: int


def _azure_filesystem(settings: LakeSettings) -> Any:
    """An adlfs filesystem with the credentials of `storage_options` (adlfs has no stubs)."""
    from adlfs import AzureBlobFileSystem

    opts = settings.storage_options()
    account = opts.get("account_name")
    endpoint = opts.get("azure_endpoint")
    if endpoint and ("account_key" in opts or "sas_token" in opts):
        # adlfs reaches an endpoint of its own (Azurite, a private one) by connection string only
        secret = (
            f"AccountKey={opts['account_key']}"
            if "account_key" in opts
            else f"SharedAccessSignature={opts['sas_token']}"
        )
        return AzureBlobFileSystem(
            connection_string=f"AccountName={account};{secret};BlobEndpoint={endpoint}"
        )
    if "account_key" in opts:
        return AzureBlobFileSystem(account_name=account, account_key=opts["account_key"])
    if "sas_token" in opts:
        return AzureBlobFileSystem(account_name=account, sas_token=opts["sas_token"])
    # Azure AD: DefaultAzureCredential, as deltalake's chain (workload, managed identity, CLI)
    extra: dict[str, str] = {}
    if settings.lake_azure_client_id:
        extra = {
            "managed_identity_client_id": settings.lake_azure_client_id,
            "workload_identity_client_id": settings.lake_azure_client_id,
        }
    host = {"account_host": endpoint.split("://", 1)[-1]} if endpoint else {}
    return AzureBlobFileSystem(account_name=account, anon=False, **host, **extra)


def _azure_path(settings: LakeSettings, name: str) -> str:
    """`container/path/name` of a table, as adlfs names it."""
    rest = settings.table_uri(name).split("://", 1)[1]
    container, _, path = rest.partition("/")
    return f"{container.split('@', 1)[0]}/{path}"


def _by_date_files(settings: LakeSettings) -> tuple[Any, str, dict[str, int]]:
    """(filesystem or None for local disk, the folder, {file: bytes}) of a legacy eod_by_date."""
    uri = settings.table_uri(BY_DATE_TABLE)
    if settings.is_azure:
        fs = _azure_filesystem(settings)
        path = _azure_path(settings, BY_DATE_TABLE)
        found = fs.find(path, detail=True)
        return fs, path, {str(k): int(v.get("size") or 0) for k, v in found.items()}
    if "://" in uri:
        raise ConfigurationError(
            f"cannot list {uri}: lake drop-by-date handles local disk and ADLS lakes only"
        )
    root = Path(uri)
    files = [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
    return None, uri, {str(p): p.stat().st_size for p in files}


def has_legacy_by_date(settings: LakeSettings) -> bool:
    """Whether the lake still holds an `eod_by_date` folder, which older versions wrote."""
    return bool(_by_date_files(settings)[2])


def drop_by_date(settings: LakeSettings) -> DropMetrics | None:
    """Delete the legacy `eod_by_date` table, data and log; None when there is none.

    Nothing writes or reads it any more (docs/adr/0009-retire-eod-by-date.md): a lake made
    by an older version keeps a frozen copy of eod_prices until this runs. Only that
    table's folder is touched."""
    fs, path, files = _by_date_files(settings)
    if not files:
        return None
    if fs is None:
        shutil.rmtree(path)
    else:
        fs.rm(path, recursive=True)
    uri = settings.table_uri(BY_DATE_TABLE)
    log.info("legacy_table_dropped", table=BY_DATE_TABLE, files=len(files))
    return DropMetrics(uri=uri, files=len(files), bytes=sum(files.values()))


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
