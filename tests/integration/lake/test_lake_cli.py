"""`stockdata sql` and `stockdata lake` as a user runs them: real processes, real Delta files."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

import lake

TODAY = dt.date(2026, 1, 2)


def run(settings: lake.LakeSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKDATA_")}
    env["STOCKDATA_HOME"] = str(settings.home)
    env["STOCKDATA_LAKE_URI"] = settings.lake_uri or ""
    if settings.lake_azure_connection_string is not None:
        env["STOCKDATA_LAKE_AZURE_CONNECTION_STRING"] = (
            settings.lake_azure_connection_string.get_secret_value()
        )
    return subprocess.run(
        [sys.executable, "-m", "stockdata", "--log-level", "WARNING", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def loaded(lake_settings: lake.LakeSettings, msft_bars: pa.Table) -> lake.LakeSettings:
    """MSFT loaded, on disk and on Azurite."""
    lake.write_bars(lake_settings, msft_bars, job_id="job-1", today=TODAY)
    return lake_settings


@pytest.fixture
def loaded_local(tmp_path: Path, msft_bars: pa.Table) -> lake.LakeSettings:
    """MSFT loaded on disk: the storage-independent CLI behaviour, without a second run."""
    settings = lake.LakeSettings(lake_uri=str(tmp_path / "lake"), home=tmp_path)
    lake.write_bars(settings, msft_bars, job_id="job-1", today=TODAY)
    return settings


def test_sql_counts_msft(loaded: lake.LakeSettings) -> None:
    out = run(loaded, "sql", "select count(*) from eod where ticker='MSFT'")
    assert (out.returncode, out.stdout, out.stderr) == (0, "7983\n", "")


def test_sql_formats(loaded_local: lake.LakeSettings) -> None:
    query = (
        "select ticker, trade_date, close from eod where ticker = 'MSFT' "
        "and trade_date between DATE '2017-11-08' and DATE '2017-11-10' order by trade_date"
    )
    as_csv = run(loaded_local, "sql", query, "--format", "csv")
    assert as_csv.stdout == (
        "ticker,trade_date,close\n"
        "MSFT,2017-11-08,84.56\nMSFT,2017-11-09,84.09\nMSFT,2017-11-10,83.87\n"
    )
    as_json = run(loaded_local, "sql", query, "--format", "json")
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == [
        {"ticker": "MSFT", "trade_date": "2017-11-08", "close": 84.56},
        {"ticker": "MSFT", "trade_date": "2017-11-09", "close": 84.09},
        {"ticker": "MSFT", "trade_date": "2017-11-10", "close": 83.87},
    ]
    as_table = run(loaded_local, "sql", query)
    assert as_table.stdout == (
        "ticker  trade_date  close\n"
        "------  ----------  -----\n"
        "MSFT    2017-11-08  84.56\n"
        "MSFT    2017-11-09  84.09\n"
        "MSFT    2017-11-10  83.87\n"
    )


def test_sql_error_is_one_line(loaded_local: lake.LakeSettings) -> None:
    out = run(loaded_local, "sql", "select nope from eod")
    assert out.returncode == 1
    assert out.stdout == ""
    assert len(out.stderr.splitlines()) == 1
    assert out.stderr.startswith('error: Binder Error: Referenced column "nope" not found')


def test_sql_as_of_version_and_restore(loaded: lake.LakeSettings, msft_bars: pa.Table) -> None:
    # Blob storage keeps commit times to the second: leave a clear gap around the midpoint.
    time.sleep(1.2)
    between = dt.datetime.now(dt.UTC).isoformat()
    time.sleep(1.2)
    extra = lake.synthetic_bars(["ZZZ"], date_from=dt.date(2025, 1, 2), date_to=dt.date(2025, 1, 3))
    lake.write_bars(loaded, extra, job_id="job-2", today=TODAY)
    count = "select count(*) from eod"
    assert run(loaded, "sql", count).stdout == "7985\n"
    assert run(loaded, "sql", count, "--as-of", "1").stdout == "7983\n"
    assert run(loaded, "sql", count, "--as-of", between).stdout == "7983\n"
    bad = run(loaded, "sql", count, "--as-of", "9")
    assert (bad.returncode, bad.stderr) == (1, "error: version 9 does not exist: the latest is 2\n")

    restored = run(loaded, "lake", "restore", "--version", "1")
    assert (restored.returncode, restored.stdout) == (
        0,
        "restored eod_prices to version 1; now at version 3; 2 row(s) of 1 job(s) removed\n",
    )
    assert run(loaded, "sql", count).stdout == "7983\n"


def test_lake_info_optimize_and_vacuum(
    loaded_local: lake.LakeSettings, msft_bars: pa.Table
) -> None:
    info = run(loaded_local, "lake", "info").stdout.splitlines()
    assert info[0] == f"table:          {loaded_local.table_uri(lake.EOD_TABLE)}"
    assert info[1:5] == [
        "version:        1",
        "rows:           7983",
        "files:          32",
        "partitions:     32",
    ]
    assert info[6:] == ["last optimize:  never", "oldest version: 0"]

    # the load appended sorted files, one per partition: nothing to rewrite
    nothing = "eod_prices: nothing to optimize\n"
    assert run(loaded_local, "lake", "optimize").stdout == nothing
    # a merge into 1986 may leave it unsorted: only that partition is rewritten
    lake.write_bars(loaded_local, msft_bars.slice(0, 3), job_id="job-2", today=TODAY)
    first = run(loaded_local, "lake", "optimize")
    assert first.stdout == (
        "eod_prices: optimized 1 partition(s) 1986: 1 file(s) -> 1, 204 rows, version 3\n"
    )
    assert run(loaded_local, "lake", "optimize").stdout == nothing

    after = run(loaded_local, "lake", "info").stdout.splitlines()
    assert after[1] == "version:        3"
    assert after[6].startswith("last optimize:  version 3 at ")
    table = DeltaTable(
        loaded_local.table_uri(lake.EOD_TABLE), storage_options=loaded_local.storage_options()
    )
    assert table.history(1)[0]["stockdata.partition"] == "1986"
    assert run(loaded_local, "sql", "select count(*) from eod").stdout == "7983\n"
    table.update_incremental()
    assert len([f for f in table.file_uris() if "period=1986" in f]) == 1
    rewritten = table.to_pyarrow_table(partitions=[("period", "=", "1986")])
    dates = rewritten.column("trade_date").to_pylist()
    assert dates == sorted(dates) and len(dates) == 204

    refused = run(loaded_local, "lake", "vacuum", "--retention-hours", "1")
    assert refused.returncode == 1
    assert refused.stderr == (
        "error: refusing to vacuum with a retention of 1 h: the minimum is 24 h "
        "(STOCKDATA_LAKE_MIN_VACUUM_RETENTION_HOURS); readers pinned to older versions would "
        "lose their files\n"
    )
    dry = run(loaded_local, "lake", "vacuum", "--retention-hours", "24", "--dry-run")
    assert (dry.returncode, dry.stdout) == (
        0,
        "eod_prices: would delete 0 file(s)\neod_rejects: would delete 0 file(s)\n"
        "corporate_actions: would delete 0 file(s)\n",
    )


def _plant_orphan(settings: lake.LakeSettings, name: str) -> str:
    """A Parquet file as a commit that lost a conflict leaves it: written, never committed,
    two days old."""
    folder = Path(settings.table_uri(name)) / "period=1986"
    orphan = folder / "part-00000-lost-commit.parquet"
    orphan.write_bytes(next(folder.glob("*.parquet")).read_bytes())
    two_days_ago = time.time() - 48 * 3600
    os.utime(orphan, (two_days_ago, two_days_ago))
    return f"{name}/period=1986/{orphan.name}"


def test_vacuum_covers_every_table_and_orphans_and_says_what_it_deleted(
    loaded_local: lake.LakeSettings, msft_bars: pa.Table
) -> None:
    lake.write_bars(loaded_local, msft_bars.slice(0, 3), job_id="job-2", today=TODAY)
    assert run(loaded_local, "lake", "optimize").returncode == 0
    orphans = [_plant_orphan(loaded_local, lake.EOD_TABLE)]
    env_free = loaded_local.model_copy(update={"lake_min_vacuum_retention_hours": 0})
    first = run_with(env_free, "lake", "vacuum", "--retention-hours", "0")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[-3:] == [
        "eod_prices: deleted 3 file(s)",
        "eod_rejects: deleted 0 file(s)",
        "corporate_actions: deleted 0 file(s)",
    ]
    assert set(orphans) <= set(lines)
    files = sorted(Path(loaded_local.table_uri(lake.EOD_TABLE)).rglob("*.parquet"))
    assert len(files) == 32  # the live files, one per year
    again = run_with(env_free, "lake", "vacuum", "--retention-hours", "0")
    assert (again.returncode, again.stdout) == (
        0,
        "eod_prices: deleted 0 file(s)\neod_rejects: deleted 0 file(s)\n"
        "corporate_actions: deleted 0 file(s)\n",
    )
    assert run(loaded_local, "sql", "select count(*) from eod").stdout == "7983\n"


def run_with(settings: lake.LakeSettings, *args: str) -> subprocess.CompletedProcess[str]:
    """`run` with the minimum retention of `settings` too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKDATA_")}
    env["STOCKDATA_HOME"] = str(settings.home)
    env["STOCKDATA_LAKE_URI"] = settings.lake_uri or ""
    env["STOCKDATA_LAKE_MIN_VACUUM_RETENTION_HOURS"] = str(settings.lake_min_vacuum_retention_hours)
    return subprocess.run(
        [sys.executable, "-m", "stockdata", "--log-level", "WARNING", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_lake_on_an_empty_home_says_what_to_do(tmp_path: Path) -> None:
    settings = lake.LakeSettings(home=tmp_path, lake_uri=str(tmp_path / "nolake"))
    out = run(settings, "sql", "select 1")
    assert out.returncode == 1
    assert out.stderr == (
        f"error: no eod_prices table at {tmp_path / 'nolake'}/eod_prices: load data first "
        "(`stockdata ingest load` or `stockdata demo --no-serve`)\n"
    )


def test_duckdb_init_prints_no_secret_and_works_in_a_plain_shell(
    loaded: lake.LakeSettings,
) -> None:
    out = run(loaded, "lake", "duckdb-init")
    assert out.returncode == 0
    script = out.stdout
    if loaded.is_azure:
        key = loaded.storage_options()["account_key"]
        assert key not in script
        assert (
            "CREATE OR REPLACE SECRET stockdata_lake (TYPE azure, CONNECTION_STRING "
            "'<your storage connection string>');"
        ) in script.splitlines()
        return
    import duckdb

    # A plain DuckDB with its own extension folder, the extension installed as the script says.
    ext_dir = loaded.home / "duckdb-extensions"
    con = duckdb.connect(
        config={"allow_unsigned_extensions": False, "extension_directory": str(ext_dir)}
    )
    con.execute(f"INSTALL '{lake.extension_path('delta')}'")
    con.execute(script)
    assert con.execute(
        "select count(*) from eod_deltas where change_21 is not null"
    ).fetchone() == (7983 - 21,)


def _files_of(settings: lake.LakeSettings, name: str) -> dict[str, int]:
    """Every file under a table's folder (data and log) and its size, on disk or Azurite."""
    if not settings.is_azure:
        root = Path(settings.table_uri(name))
        return {
            p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()
        }
    from azure.storage.blob import BlobServiceClient

    assert settings.lake_azure_connection_string is not None
    service = BlobServiceClient.from_connection_string(
        settings.lake_azure_connection_string.get_secret_value()
    )
    container, _, prefix = settings.root.split("://", 1)[1].partition("/")
    blobs = service.get_container_client(container).list_blobs(f"{prefix}/{name}/")
    return {b.name.removeprefix(f"{prefix}/{name}/"): int(b.size) for b in blobs}


def _plant_legacy_by_date(settings: lake.LakeSettings) -> None:
    """The date-ordered copy an older version kept next to eod_prices."""
    from deltalake import write_deltalake

    eod = DeltaTable(settings.table_uri(lake.EOD_TABLE), storage_options=settings.storage_options())
    columns = ["ticker", "exchange_mic", "trade_date", "close", "adj_close", "volume", "period"]
    rows = eod.to_pyarrow_table(columns=columns).sort_by("trade_date")
    write_deltalake(
        settings.table_uri("eod_by_date"),
        rows,
        partition_by=["period"],
        configuration=lake.TABLE_CONFIGURATION,
        storage_options=settings.storage_options(),
    )


def test_drop_by_date_deletes_the_legacy_table_and_nothing_else(
    loaded: lake.LakeSettings,
) -> None:
    where = f"{loaded.root}/eod_by_date"
    refused = run(loaded, "lake", "drop-by-date")
    assert (refused.returncode, refused.stdout, refused.stderr) == (
        1,
        "",
        f"error: refusing to delete {where} without --yes: `stockdata lake drop-by-date --yes`\n",
    )
    absent = run(loaded, "lake", "drop-by-date", "--yes")
    assert (absent.returncode, absent.stdout, absent.stderr) == (
        0,
        "no eod_by_date table: nothing to do\n",
        "",
    )
    quiet = run(loaded, "lake", "info")
    assert (quiet.returncode, quiet.stderr) == (0, "")

    _plant_legacy_by_date(loaded)
    eod_files = _files_of(loaded, lake.EOD_TABLE)
    legacy = _files_of(loaded, "eod_by_date")
    assert len(legacy) == 33  # one data file per year and the first commit
    info = run(loaded, "lake", "info")
    assert info.returncode == 0
    assert info.stdout.splitlines()[:3] == [
        f"table:          {loaded.table_uri(lake.EOD_TABLE)}",
        "version:        1",
        "rows:           7983",
    ]
    assert info.stderr == (
        f"warning: a legacy eod_by_date table is still at {where} (nothing writes or reads it "
        "now): delete it with `stockdata lake drop-by-date --yes`\n"
    )
    assert run(loaded, "lake", "drop-by-date").returncode == 1
    assert _files_of(loaded, "eod_by_date") == legacy

    dropped = run(loaded, "lake", "drop-by-date", "--yes")
    assert (dropped.returncode, dropped.stdout, dropped.stderr) == (
        0,
        f"deleted the eod_by_date table at {where}: 33 file(s), {sum(legacy.values())} bytes "
        "(data and log); eod_prices is untouched\n",
        "",
    )
    assert _files_of(loaded, "eod_by_date") == {}
    assert _files_of(loaded, lake.EOD_TABLE) == eod_files
    assert run(loaded, "sql", "select count(*) from eod").stdout == "7983\n"
    eod = DeltaTable(loaded.table_uri(lake.EOD_TABLE), storage_options=loaded.storage_options())
    assert (eod.version(), eod.to_pyarrow_table(columns=["ticker"]).num_rows) == (1, 7983)
    after = run(loaded, "lake", "info")
    assert (after.returncode, after.stderr) == (0, "")
    again = run(loaded, "lake", "drop-by-date", "--yes")
    assert (again.returncode, again.stdout) == (0, "no eod_by_date table: nothing to do\n")
