"""The SQL sandbox end to end: worker processes over a real Delta lake of the MSFT sample."""

from __future__ import annotations

import csv
import datetime as dt
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

import lake
from query_api import _confine as confine
from query_api._sandbox import SqlSandbox, SqlSettings, _Worker
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


class RawWorker:
    """A sandbox worker driven directly, without the statement check: tests layers 2-4 alone."""

    def __init__(self, settings: lake.LakeSettings, sql: SqlSettings | None = None) -> None:
        self.worker = _Worker(lake.local_snapshot(settings), sql or SqlSettings())
        self.worker.wait_ready(60)

    def run(self, sql: str) -> tuple[str, object]:
        self.worker.send({"op": "run", "sql": sql, "max_rows": 1_000})
        reply = self.worker.receive(20)
        if reply["op"] == "ok":
            return "ok", self.worker.receive_table(20).to_pylist()
        return str(reply["code"]), reply["message"]

    def close(self) -> None:
        self.worker.stop()


@pytest.fixture(scope="module")
def raw(lake_settings: lake.LakeSettings) -> Iterator[RawWorker]:
    worker = RawWorker(lake_settings)
    yield worker
    worker.close()


def test_the_raw_worker_reads_the_views(raw: RawWorker) -> None:
    assert raw.run(
        "select close, period from eod where ticker = 'MSFT' and trade_date = '2008-10-10'"
    ) == ("ok", [{"close": 18.029, "period": "2008"}])
    assert raw.run("select count(*) as n from eod_rejects") == ("ok", [{"n": 0}])


@pytest.mark.parametrize(
    "sql",
    [
        "select * from read_csv('/etc/passwd')",
        "select * from read_text('/etc/hostname')",
        "select * from read_blob('/proc/self/environ')",
        "select * from glob('/etc/*')",
        "attach '/tmp/stockdata-escape.db' as x",
        "copy (select 1) to '/tmp/stockdata-escape.csv'",
        "export database '/tmp/stockdata-escape'",
        "select * from read_parquet('/tmp/stockdata-nothing/*.parquet')",
    ],
)
def test_duckdb_refuses_files_outside_the_snapshot_without_the_check(
    raw: RawWorker, sql: str
) -> None:
    code, message = raw.run(sql)
    assert code == "sql-refused", message
    assert not Path("/tmp/stockdata-escape.csv").exists()
    assert not Path("/tmp/stockdata-escape.db").exists()


def test_the_only_writable_place_is_the_workers_own_temp_directory(
    lake_settings: lake.LakeSettings,
) -> None:
    worker = RawWorker(lake_settings)
    try:
        temp = Path(worker.worker.temp_directory)
        assert worker.run("copy (select 42 as x) to 'scratch.csv'") == ("ok", [{"Count": 1}])
        assert (temp / "scratch.csv").read_text() == "x\n42\n"
        assert worker.run("copy (select 1) to '../escape.csv'")[0] == "sql-refused"
        assert not (temp.parent / "escape.csv").exists()
    finally:
        worker.close()
    assert not temp.exists()


@pytest.mark.parametrize(
    "sql",
    [
        "set enable_external_access = true",
        "set allowed_paths = ['/etc/passwd']",
        "set threads = 8",
        "reset lock_configuration",
    ],
)
def test_the_configuration_is_locked_without_the_check(raw: RawWorker, sql: str) -> None:
    code, message = raw.run(sql)
    assert code == "sql-error"
    assert "configuration has been locked" in str(message)


@pytest.mark.parametrize("name", ["delta", "azure", "httpfs"])
def test_no_extension_can_be_loaded_or_installed_without_the_check(
    raw: RawWorker, name: str
) -> None:
    assert raw.run(f"load {name}")[0] != "ok"
    assert raw.run(f"install {name}")[0] != "ok"
    path = lake.extension_path("delta") if name == "delta" else None
    if path is not None:
        assert raw.run(f"load '{path}'")[0] != "ok"
    assert raw.run(
        "select distinct function_name as f from duckdb_functions() where function_name in "
        "('write_blob', 'delta_scan', 'azure_glob', 'read_blob', 'read_text') order by 1"
    ) == ("ok", [{"f": "read_blob"}, {"f": "read_text"}])


def test_the_worker_can_see_only_the_snapshot_files(
    raw: RawWorker, lake_settings: lake.LakeSettings
) -> None:
    snapshot = lake.local_snapshot(lake_settings)
    code, rows = raw.run("select current_setting('allowed_paths') as p")
    assert code == "ok"
    assert sorted(rows[0]["p"]) == sorted(snapshot.paths)  # type: ignore[index]
    assert raw.run("select current_setting('enable_external_access') as e") == (
        "ok",
        [{"e": False}],
    )


def test_the_worker_is_confined_by_the_os(raw: RawWorker) -> None:
    assert raw.worker.confinement == {
        "no_new_privs": True,
        "landlock_abi": confine.landlock_abi(),
        "seccomp_denied": len(confine.DENIED_SYSCALLS["x86_64"]),
    }
    environ = Path(f"/proc/{raw.worker.proc.pid}/environ").read_bytes().split(b"\0")
    assert sorted(e.split(b"=")[0] for e in environ if e) == [
        b"ARROW_DEFAULT_MEMORY_POOL",
        b"LC_ALL",
        b"OMP_NUM_THREADS",
        b"OPENBLAS_NUM_THREADS",
    ]
    status = Path(f"/proc/{raw.worker.proc.pid}/status").read_text()
    assert "NoNewPrivs:\t1" in status
    assert "Seccomp:\t2" in status
    limits = Path(f"/proc/{raw.worker.proc.pid}/limits").read_text()
    address_space = next(line for line in limits.splitlines() if "address space" in line)
    assert address_space.split()[3:5] == [str(768 * 1024**2), str(768 * 1024**2)]
    assert os.getsid(raw.worker.proc.pid) == raw.worker.proc.pid


@pytest.mark.azure
def test_the_sandbox_reads_a_lake_on_azurite_from_a_local_mirror(
    azurite: _services.Azurite, samples: Path, tmp_path: Path
) -> None:
    from azure.storage.blob import BlobServiceClient

    container = "sandbox-" + uuid.uuid4().hex[:8]
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(container)
    settings = lake.LakeSettings(
        lake_uri=f"az://{container}/lake",
        lake_azure_connection_string=azurite.connection_string,
    )
    lake.write_bars(settings, _bars(samples / "MSFT.csv", "MSFT"), job_id="sandbox-azure")
    mirror = tmp_path / "mirror"
    sql = SqlSettings(sql_timeout_seconds=20.0, sql_mirror_dir=mirror)
    with SqlSandbox(settings, sql) as box:
        result = box.run("select close from eod where trade_date = '2008-10-10'")
        assert result.table.to_pylist() == [{"close": 18.029}]
        with pytest.raises(InvalidInputError) as caught:
            box.run(f"select * from read_parquet('az://{container}/lake/eod_prices/*/*.parquet')")
        assert caught.value.code == "sql-refused"
    mirrored = sorted(p.relative_to(mirror).parts[0] for p in mirror.rglob("*.parquet"))
    assert mirrored and set(mirrored) == {"eod_prices"}
    worker = _Worker(lake.local_snapshot(settings, mirror=mirror), sql)
    try:
        worker.wait_ready(60)
        worker.send({"op": "run", "sql": f"select * from 'az://{container}/lake/x'", "max_rows": 1})
        assert worker.receive(20)["op"] == "error"
    finally:
        worker.stop()


def test_without_a_lake_each_query_says_so_then_the_new_lake_is_served(
    tmp_path: Path, samples: Path
) -> None:
    settings = lake.LakeSettings(lake_uri=str(tmp_path / "empty"))
    sql = SqlSettings(sql_timeout_seconds=10.0, sql_snapshot_poll_seconds=0)
    with SqlSandbox(settings, sql) as box:
        for _ in range(2):
            with pytest.raises(NotFoundError) as caught:
                box.run("select count(*) from eod")
            assert str(caught.value) == (
                f"no eod_prices table at {settings.root}/eod_prices: load data first "
                "(`stockdata ingest load` or `stockdata demo --no-serve`)"
            )
        assert box.worker_pids == []
        bars = _bars(samples / "MSFT.csv", "MSFT")
        lake.write_bars(settings, bars.slice(0, 100), job_id="first")
        assert box.run("select count(*) as n from eod").table.to_pylist() == [{"n": 100}]
        (first,) = box.worker_pids
        lake.write_bars(settings, bars.slice(100), job_id="second")
        assert box.run("select count(*) as n from eod").table.to_pylist() == [{"n": 7_983}]
        assert box.worker_pids != [first]
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


def test_a_file_planted_where_python_looks_is_never_executed(
    tmp_path: Path, lake_settings: lake.LakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack that once ran code: plant `sitecustomize.py`, get the worker replaced."""
    marker = tmp_path / "executed"
    payload = f"open({str(marker)!r}, 'w').write('pwned')\n"
    planted = tmp_path / "planted"
    planted.mkdir()
    for name in ("sitecustomize.py", "usercustomize.py", "duckdb.py", "_confine.py", "json.py"):
        (planted / name).write_text(payload)
    # What a plain `python` would honour: PYTHONPATH, PYTHONSTARTUP, the user site, the cwd.
    monkeypatch.setenv("PYTHONPATH", str(planted))
    monkeypatch.setenv("PYTHONSTARTUP", str(planted / "sitecustomize.py"))
    monkeypatch.setenv("PYTHONUSERBASE", str(planted))
    monkeypatch.chdir(planted)
    sql = SqlSettings(sql_timeout_seconds=2.0, sql_workers=1)
    with SqlSandbox(lake_settings, sql) as box:
        (first,) = box.worker_pids
        raw = next(iter(box._all))
        # The worker's only writable place is its own temp dir (its cwd): plant there too,
        # through SQL, as an attacker with the check bypassed would.
        raw.wait_ready(60)
        literal = "'" + payload.strip().replace("'", "''") + "'"
        raw.send(
            {
                "op": "run",
                "sql": f"copy (select {literal} as p) to 'sitecustomize.py' (header false, quote '')",
                "max_rows": 1,
            }
        )
        reply = raw.receive(20)
        assert reply["op"] == "ok", reply
        raw.receive_table(20)
        assert (Path(raw.temp_directory) / "sitecustomize.py").exists()
        with pytest.raises(ResourceLimitError):
            box.run("select count(*) from eod a, eod b, eod c")  # past the limit: replaced
        assert box.run("select count(*) as n from eod").table.to_pylist() == [{"n": 7_983}]
        assert box.worker_pids != [first]
    assert not marker.exists()
