"""`stockdata lake`: information and upkeep of the Delta tables."""

from __future__ import annotations

import click

import lake as lakepkg


@click.group("lake")
def lake() -> None:
    """Delta tables: info, optimize, vacuum, restore, duckdb-init."""


@lake.command()
def info() -> None:
    """Version, rows, files, partitions, bytes, last optimize, oldest time-travel version."""
    i = lakepkg.table_info(lakepkg.LakeSettings())
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


@lake.command()
def optimize() -> None:
    """Rewrite the partitions touched since the last run, in each table's sort order."""
    settings = lakepkg.LakeSettings()
    for name in (lakepkg.EOD_TABLE, lakepkg.BY_DATE_TABLE):
        m = lakepkg.optimize(settings, name=name)
        if not m.partitions:
            click.echo(f"{name}: nothing to optimize")
            continue
        click.echo(
            f"{name}: optimized {len(m.partitions)} partition(s) {', '.join(m.partitions)}: "
            f"{m.files_removed} file(s) -> {m.files_added}, {m.rows} rows, version {m.version}"
        )


@lake.command()
@click.option("--retention-hours", type=int, default=None, help="Default: the configured one.")
@click.option("--dry-run", is_flag=True, help="List the files that would be deleted.")
def vacuum(retention_hours: int | None, dry_run: bool) -> None:
    """Delete data files older than the retention that no kept version needs."""
    files = lakepkg.vacuum(lakepkg.LakeSettings(), retention_hours=retention_hours, dry_run=dry_run)
    for path in files:
        click.echo(path)
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {len(files)} file(s)")


@lake.command()
@click.option("--version", "version", type=int, required=True, help="Version to roll back to.")
def restore(version: int) -> None:
    """Roll eod_prices back to VERSION (time travel); a new version records the rollback."""
    result = lakepkg.restore(lakepkg.LakeSettings(), version=version)
    click.echo(f"restored eod_prices to version {version}; now at version {result['version']}")


@lake.command("duckdb-init")
def duckdb_init() -> None:
    """Print SQL that sets up the lake's views in a plain `duckdb` shell (no secrets)."""
    settings = lakepkg.LakeSettings()
    if lakepkg.open_table(settings, lakepkg.EOD_TABLE) is not None:
        for name in (lakepkg.BY_DATE_TABLE, lakepkg.REJECTS_TABLE):  # the script attaches them
            lakepkg.ensure_table(settings, name)
    click.echo(lakepkg.init_sql(settings), nl=False)
