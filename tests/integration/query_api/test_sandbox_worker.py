"""The SQL sandbox end to end: worker processes over a real Delta lake of the MSFT sample."""

from __future__ import annotations

import csv
import datetime as dt
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import lake
from query_api._sandbox import SqlSandbox, SqlSettings
from query_api._sandbox_worker import locked_connection
from stockdata.errors import InvalidInputError, NotFoundError, ResourceLimitError
from tests import _services


def _bars(path: Path, ticker: str) -> pa.Table:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return pa.table(
        {
            "ticker": [ticker] * len(rows),
            "exchange_mic": ["XNAS"] * len(rows),
            "trade_date": [dt.date.fromisoformat(r["Date"]) for r in rows],
            "open": [float(r["Open"]) for r in rows],
            "high": [float(r["High"]) for r in rows],
            "low": [float(r["Low"]) for r in rows],
            "close": [float(r["Close"]) for r in rows],
            "volume": [int(r["Volume"]) for r in rows],
        }
    )


def _close_on(path: Path, day: str) -> float:
    with path.open(newline="") as f:
        return next(float(r["Close"]) for r in csv.DictReader(f) if r["Date"] == day)


@pytest.fixture(scope="module")
def lake_settings(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> lake.LakeSettings:
    settings = lake.LakeSettings(lake_uri=str(tmp_path_factory.mktemp("sandbox-lake")))
    lake.write_bars(settings, _bars(samples / "MSFT.csv", "MSFT"), job_id="sandbox-test")
    return settings


@pytest.fixture(scope="module")
def sandbox(lake_settings: lake.LakeSettings) -> Iterator[SqlSandbox]:
    settings = SqlSettings(sql_timeout_seconds=2.0, sql_max_rows=1_000, sql_workers=1)
    with SqlSandbox(lake_settings, settings) as box:
        yield box


def test_a_query_returns_the_close_from_the_sample(sandbox: SqlSandbox, samples: Path) -> None:
    result = sandbox.run("select close from eod where ticker='MSFT' and trade_date='2008-10-10'")
    assert result.table.to_pylist() == [{"close": _close_on(samples / "MSFT.csv", "2008-10-10")}]
    assert result.table.to_pylist() == [{"close": 18.029}]
    assert result.truncated is False


def test_with_and_window_views_answer(sandbox: SqlSandbox) -> None:
    result = sandbox.run(
        "with m as (select * from eod_deltas where ticker = 'MSFT') "
        "select count(*) as n, min(trade_date) as first, max(trade_date) as last from m"
    )
    assert result.table.to_pylist() == [
        {"n": 7_983, "first": dt.date(1986, 3, 13), "last": dt.date(2017, 11, 10)}
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "select * from read_csv('/etc/passwd')",
        "select * from read_csv_auto('/etc/passwd')",
        "select * from read_text('/etc/passwd')",
        "select * from read_blob('/etc/passwd')",
        "select * from read_json('/etc/passwd')",
        "select * from read_parquet('/etc/passwd')",
        "select * from glob('/etc/*')",
        "select * from delta_scan('/etc')",
        "select * from '/etc/passwd'",
        "select * from read_csv('http://127.0.0.1:9/x.csv')",
        "select * from 'https://example.com/data.parquet'",
        "copy (select * from eod) to '/tmp/stockdata-escape.csv'",
        "attach '/tmp/stockdata-escape.db' as x",
        "install httpfs",
        "load httpfs",
        "set enable_external_access = true",
        "reset lock_configuration",
        "pragma enable_profiling",
        "create table t as select 1",
        "insert into eod_rejects select * from eod_rejects",
        "drop view eod",
        "update eod set close = 0",
        "call pragma_version()",
        "export database '/tmp/stockdata-escape'",
        "select 1; select 2",
    ],
)
def test_every_escape_is_refused(sandbox: SqlSandbox, sql: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        sandbox.run(sql)
    assert caught.value.code == "sql-refused"
    assert not Path("/tmp/stockdata-escape.csv").exists()


def test_a_cross_join_bomb_is_killed_and_the_sandbox_keeps_serving(sandbox: SqlSandbox) -> None:
    before = sandbox.worker_pids
    with pytest.raises(ResourceLimitError) as caught:
        sandbox.run("select count(*) from eod a, eod b, eod c")
    assert caught.value.code == "sql-timeout"
    assert str(caught.value) == "the query ran longer than 2 s and was stopped; narrow it down"
    after = sandbox.worker_pids
    assert len(after) == 1
    assert after != before
    result = sandbox.run("select count(*) as n from eod")
    assert result.table.to_pylist() == [{"n": 7_983}]


def test_a_huge_result_is_cut_off_at_the_row_cap(sandbox: SqlSandbox) -> None:
    result = sandbox.run("select a.trade_date, b.close from eod a, eod b")
    assert result.table.num_rows == 1_000
    assert result.truncated is True
    limited = sandbox.run("select trade_date from eod order by trade_date", limit=3)
    assert limited.table.column("trade_date").to_pylist() == [
        dt.date(1986, 3, 13),
        dt.date(1986, 3, 14),
        dt.date(1986, 3, 17),
    ]
    assert limited.truncated is True
    exact = sandbox.run("select trade_date from eod order by trade_date limit 3", limit=3)
    assert exact.truncated is False


def test_the_byte_cap_cuts_a_wide_result(lake_settings: lake.LakeSettings) -> None:
    settings = SqlSettings(sql_timeout_seconds=5.0, sql_max_bytes=4_096, sql_workers=1)
    with SqlSandbox(lake_settings, settings) as box:
        result = box.run("select trade_date, open, high, low, close from eod order by trade_date")
    assert result.truncated is True
    assert 0 < result.table.num_rows < 7_983
    assert result.table.nbytes <= 4_096


def test_the_worker_connection_is_locked_down(lake_settings: lake.LakeSettings) -> None:
    con = locked_connection(lake_settings, threads=1, memory_limit="512MB")
    try:
        assert con.execute(
            "select close from eod where ticker = 'MSFT' and trade_date = '2008-10-10'"
        ).fetchall() == [(18.029,)]
        with pytest.raises(duckdb.PermissionException):
            con.execute("select * from read_csv('/etc/passwd')")
        with pytest.raises(duckdb.PermissionException):
            con.execute("select * from read_text('/etc/passwd')")
        with pytest.raises(duckdb.PermissionException):
            con.execute("attach '/tmp/stockdata-escape.db' as x")
        with pytest.raises(duckdb.PermissionException):
            con.execute("copy (select 1) to '/tmp/stockdata-escape.csv'")
        with pytest.raises(duckdb.InvalidInputException, match="configuration has been locked"):
            con.execute("set enable_external_access = true")
        with pytest.raises(duckdb.InvalidInputException, match="configuration has been locked"):
            con.execute("set threads = 8")
        with pytest.raises(duckdb.Error):
            con.execute("install httpfs")
        with pytest.raises(duckdb.Error):
            con.execute("load httpfs")
        settings = dict(
            con.execute(
                "select name, value from duckdb_settings() where name in ('threads', "
                "'memory_limit', 'enable_external_access', 'python_enable_replacements', "
                "'lock_configuration', 'autoload_known_extensions', "
                "'autoinstall_known_extensions', 'allow_unsigned_extensions')"
            ).fetchall()
        )
        assert settings == {
            "threads": "1",
            "memory_limit": "488.2 MiB",
            "enable_external_access": "false",
            "python_enable_replacements": "false",
            "lock_configuration": "true",
            "autoload_known_extensions": "false",
            "autoinstall_known_extensions": "false",
            "allow_unsigned_extensions": "false",
        }
    finally:
        con.close()
    assert not Path("/tmp/stockdata-escape.csv").exists()
    assert not Path("/tmp/stockdata-escape.db").exists()


@pytest.mark.azure
def test_the_sandbox_reads_a_lake_on_azurite_and_nothing_else(
    azurite: _services.Azurite, samples: Path
) -> None:
    from azure.storage.blob import BlobServiceClient

    container = "sandbox-" + uuid.uuid4().hex[:8]
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(container)
    settings = lake.LakeSettings(
        lake_uri=f"az://{container}/lake",
        lake_azure_connection_string=azurite.connection_string,
    )
    lake.write_bars(settings, _bars(samples / "MSFT.csv", "MSFT"), job_id="sandbox-azure")
    with SqlSandbox(settings, SqlSettings(sql_timeout_seconds=20.0)) as box:
        result = box.run("select close from eod where trade_date = '2008-10-10'")
        assert result.table.to_pylist() == [{"close": 18.029}]
    con = locked_connection(settings, threads=1, memory_limit="512MB")
    try:
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"select * from read_parquet('az://{container}/elsewhere/*.parquet')")
        with pytest.raises(duckdb.PermissionException):
            con.execute("select * from read_csv('/etc/passwd')")
    finally:
        con.close()


def test_only_the_lake_and_a_private_spill_directory_are_reachable(
    sandbox: SqlSandbox, lake_settings: lake.LakeSettings
) -> None:
    result = sandbox.run("select current_setting('allowed_directories') as dirs")
    dirs = result.table.to_pylist()[0]["dirs"]
    assert dirs[0] == lake_settings.root + "/"
    assert len(dirs) == 2
    assert dirs[1].startswith(str(Path(tempfile.gettempdir()) / "stockdata-sql-"))
    assert sandbox.run(
        "select current_setting('max_temp_directory_size') as m"
    ).table.to_pylist() == [{"m": "953.6 MiB"}]


def test_without_a_lake_each_query_says_so_and_the_worker_stays_up(tmp_path: Path) -> None:
    settings = lake.LakeSettings(lake_uri=str(tmp_path / "empty"))
    with SqlSandbox(settings, SqlSettings(sql_timeout_seconds=10.0)) as box:
        for _ in range(2):
            with pytest.raises(NotFoundError) as caught:
                box.run("select count(*) from eod")
            assert str(caught.value) == (
                f"no eod_prices table at {settings.root}/eod_prices: load data first "
                "(`stockdata ingest load` or `stockdata demo --no-serve`)"
            )
        assert len(box.worker_pids) == 1


def test_a_worker_that_died_while_idle_is_replaced_transparently(sandbox: SqlSandbox) -> None:
    import os
    import signal

    (pid,) = sandbox.worker_pids
    os.kill(pid, signal.SIGKILL)
    # Wait until it has fully exited, without reaping it (the sandbox's Popen does that).
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        time.sleep(0.01)
    result = sandbox.run("select count(*) as n from eod")
    assert result.table.to_pylist() == [{"n": 7_983}]
    assert sandbox.worker_pids != [pid]
