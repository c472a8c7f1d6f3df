"""`stockdata lake`: information and upkeep of the Delta tables."""

from __future__ import annotations

import uuid

import click

import catalog
import lake as lakepkg
from stockdata.cli import _context
from stockdata.errors import InvalidInputError, NotFoundError


@click.group("lake")
def lake() -> None:
    """Delta tables: info, optimize, vacuum, restore, publish, duckdb-init, check-adjustments,
    drop-by-date."""


@lake.command()
def info() -> None:
    """Version, rows, files, partitions, bytes, last optimize, oldest time-travel version."""
    settings = lakepkg.LakeSettings()
    i = lakepkg.table_info(settings)
    last = (
        f"version {i.last_optimize_version} at {i.last_optimize_at:%Y-%m-%dT%H:%M:%SZ}"
        if i.last_optimize_at is not None
        else "never"
    )
    for key, value in (
        ("table", i.uri),
        ("version", i.version),
        ("rows", i.rows),
        ("files", i.files),
        ("partitions", i.partitions),
        ("bytes", i.bytes),
        ("last optimize", last),
        ("oldest version", i.oldest_version),
    ):
        click.echo(f"{key + ':':<16}{value}")
    if lakepkg.has_legacy_by_date(settings):
        click.echo(
            f"warning: a legacy eod_by_date table is still at {settings.root}/eod_by_date "
            "(nothing writes or reads it now): delete it with "
            "`stockdata lake drop-by-date --yes`",
            err=True,
        )


@lake.command()
def optimize() -> None:
    """Rewrite the eod_prices partitions touched since the last run, sorted by ticker, date."""
    settings = lakepkg.LakeSettings()
    name = lakepkg.EOD_TABLE
    m = lakepkg.optimize(settings, name=name)
    if not m.partitions:
        click.echo(f"{name}: nothing to optimize")
        return
    click.echo(
        f"{name}: optimized {len(m.partitions)} partition(s) {', '.join(m.partitions)}: "
        f"{m.files_removed} file(s) -> {m.files_added}, {m.rows} rows, version {m.version}"
    )


@lake.command()
@click.option("--retention-hours", type=int, default=None, help="Default: the configured one.")
@click.option("--dry-run", is_flag=True, help="List the files that would be deleted.")
def vacuum(retention_hours: int | None, dry_run: bool) -> None:
    """Delete, in every table, data files older than the retention that no kept version
    needs and files that failed commits left behind; prints what was really deleted."""
    settings = lakepkg.LakeSettings()
    verb = "would delete" if dry_run else "deleted"
    for name in (lakepkg.EOD_TABLE, lakepkg.REJECTS_TABLE, lakepkg.ACTIONS_TABLE):
        files = lakepkg.vacuum(
            settings, name=name, retention_hours=retention_hours, dry_run=dry_run
        )
        for path in files:
            click.echo(f"{name}/{path}")
        click.echo(f"{name}: {verb} {len(files)} file(s)")


@lake.command()
@click.option("--version", "version", type=int, required=True, help="Version to roll back to.")
def restore(version: int) -> None:
    """Roll eod_prices back to VERSION, and corporate_actions with it (new versions record
    the rollback); the jobs whose rows it removed are marked failed so they can be loaded
    again."""
    r = lakepkg.restore(lakepkg.LakeSettings(), version=version)
    actions = (
        f"; corporate_actions rolled back with it ({r.actions_removed} action(s) removed)"
        if r.actions_removed
        else ""
    )
    click.echo(
        f"restored eod_prices to version {version}; now at version {r.version}; "
        f"{r.rows_before - r.rows_after} row(s) of "
        f"{len(r.removed_jobs)} job(s) removed{actions}"
    )
    ids = []
    for lineage in r.removed_jobs:  # "<job uuid>" or "<job uuid>:<generation>"
        try:
            ids.append(uuid.UUID(lineage.split(":", 1)[0]))
        except ValueError:
            continue  # rows written outside the job machinery
    if not ids:
        return
    with catalog.session_scope(_context.engine()) as session:
        marked = catalog.mark_jobs_restored_away(session, sorted(set(ids)), version=version)
    for job_id in marked:
        click.echo(f"job {job_id}: rows removed, marked failed (restored-away)")
    click.echo(
        f"{len(marked)} job(s) to load again: `stockdata ingest retry` "
        "(or `stockdata ingest load` the same file)"
    )


@lake.command()
@click.option("--version", "version", type=int, default=None, help="Default: the latest.")
def publish(version: int | None) -> None:
    """Build the serving form of a version (the API memory-maps it); no-op if it exists."""
    settings = lakepkg.LakeSettings()
    m = lakepkg.publish(settings, version=version)
    assert m is not None  # a waiting publish always gets the lock
    verb = "built" if m.built else "already published:"
    click.echo(
        f"{verb} serving form of version {m.version} at {m.path}: {m.rows} rows, "
        f"{m.series} series, {m.bytes} bytes ({m.bytes_per_row:.1f} per row), {m.seconds} s"
    )


@lake.command("duckdb-init")
def duckdb_init() -> None:
    """Print SQL that sets up the lake's views in any DuckDB 1.5.x shell (no secrets, no writes)."""
    settings = lakepkg.LakeSettings()
    tables = [
        name
        for name in (lakepkg.EOD_TABLE, lakepkg.REJECTS_TABLE, lakepkg.ACTIONS_TABLE)
        if lakepkg.open_table(settings, name) is not None
    ]
    if lakepkg.EOD_TABLE not in tables:
        raise NotFoundError(
            f"no eod_prices table at {settings.table_uri(lakepkg.EOD_TABLE)}: load data first "
            "(`stockdata ingest load` or `stockdata demo --no-serve`)"
        )
    click.echo(lakepkg.init_sql(settings, tables=tables), nl=False)


@lake.command("drop-by-date")
@click.option("--yes", is_flag=True, help="Confirm: delete the table's files and its history.")
def drop_by_date(yes: bool) -> None:
    """Delete the legacy eod_by_date table that older versions wrote (nothing reads it now)."""
    settings = lakepkg.LakeSettings()
    where = f"{settings.root}/eod_by_date"
    if not yes:
        raise InvalidInputError(
            f"refusing to delete {where} without --yes: `stockdata lake drop-by-date --yes`"
        )
    dropped = lakepkg.drop_by_date(settings)
    if dropped is None:
        click.echo("no eod_by_date table: nothing to do")
        return
    click.echo(
        f"deleted the eod_by_date table at {dropped.uri}: {dropped.files} file(s), "
        f"{dropped.bytes} bytes (data and log); eod_prices is untouched"
    )


@lake.command("check-adjustments")
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0.0, max=1.0),
    default=0.005,
    show_default=True,
    help="Relative difference from a provider's adjusted close that is reported.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per finding.")
def check_adjustments(tolerance: float, as_json: bool) -> None:
    """Compare our adjustment with the providers' and flag actions that look wrong.

    Exits 1 when anything is found (so a schedule can alert on it), 0 when clean."""
    import json

    findings = lakepkg.check_adjustments(lakepkg.LakeSettings(), tolerance=tolerance)
    for f in findings:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "check": f.check,
                        "ticker": f.ticker,
                        "exchange_mic": f.exchange_mic,
                        "date": f.date,
                        "detail": f.detail,
                    }
                )
            )
        else:
            click.echo(f"{f.check:<24}{f.ticker:<10}{f.exchange_mic:<6}{f.date}  {f.detail}")
    if not as_json:
        click.echo(f"{len(findings)} finding(s)", err=bool(findings))
    if findings:
        raise SystemExit(1)
