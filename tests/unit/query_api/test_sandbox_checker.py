"""The SQL sandbox's statement check: DuckDB's own parser decides what a query is."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from query_api._sandbox import StatementChecker
from stockdata.errors import InvalidInputError


@pytest.fixture(scope="module")
def checker() -> Iterator[StatementChecker]:
    c = StatementChecker(max_length=2_000)
    yield c
    c.close()


@pytest.mark.parametrize(
    "sql",
    [
        "select close from eod where ticker = 'MSFT'",
        "  -- a comment\nSELECT 1",
        "/* block */ with w as (select * from eod_deltas) select count(*) from w",
        "from eod limit 3",
        "(select 1) union all (select 2)",
        "select * from range(3)",
        "select e.ticker from eod e join eod_rejects r on e.ticker = r.ticker",
        "select * from main.eod",
    ],
)
def test_plain_reads_pass_unchanged(checker: StatementChecker, sql: str) -> None:
    assert checker.check(sql) == sql


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("select * from read_csv('/etc/passwd')", "table function read_csv()"),
        ("select * from read_csv_auto('/etc/passwd')", "table function read_csv_auto()"),
        ("select * from read_text('/etc/passwd')", "table function read_text()"),
        ("select * from read_blob('/etc/passwd')", "table function read_blob()"),
        ("select * from read_json('/etc/passwd')", "table function read_json()"),
        ("select * from read_parquet('/etc/passwd')", "table function read_parquet()"),
        ("select * from glob('/etc/*')", "table function glob()"),
        ("select * from delta_scan('/etc')", "table function delta_scan()"),
        ("select * from '/etc/passwd'", "relation '/etc/passwd'"),
        ("select * from 'https://example.com/x.csv'", "relation 'https://example.com/x.csv'"),
        ("select * from read_parquet('http://127.0.0.1:1/x.parquet')", "table function"),
        ("select * from query('select 1')", "table function query()"),
        ("select * from duckdb_secrets()", "table function duckdb_secrets()"),
        ("select (select max(content) from read_text('/etc/passwd'))", "table function read_text"),
        ("select * from lake_eod", "relation 'lake_eod'"),
        ("select * from system.main.duckdb_settings", "relation"),
        ("copy (select 1) to '/tmp/x.csv'", "not COPY"),
        ("copy eod to '/tmp/x.parquet'", "not COPY"),
        ("attach '/tmp/x.db' as x", "not ATTACH"),
        ("detach lake_eod", "not DETACH"),
        ("install httpfs", "not LOAD"),
        ("load httpfs", "not LOAD"),
        ("set threads = 8", "not SET"),
        ("reset threads", "not SET"),
        ("pragma version", "table function pragma_version()"),
        ("pragma enable_profiling", "not PRAGMA"),
        ("create table t as select 1", "not CREATE"),
        ("insert into eod_rejects select * from eod_rejects", "not INSERT"),
        ("drop view eod", "not DROP"),
        ("update eod set close = 0", "not UPDATE"),
        ("delete from eod", "not DELETE"),
        ("call pragma_version()", "not CALL"),
        ("export database '/tmp/dump'", "not EXPORT"),
        ("describe eod", "not DESCRIBE"),
        ("summarize eod", "not SUMMARIZE"),
        ("explain select 1", "not EXPLAIN"),
        ("select 1; select 2", "exactly one statement is allowed, got 2"),
        ("select 1; copy (select 1) to '/tmp/x'", "exactly one statement is allowed, got 2"),
        ("", "the query is empty"),
        ("select 1 " + "x" * 2_000, "longer than 2000 characters"),
    ],
)
def test_everything_else_is_refused(checker: StatementChecker, sql: str, reason: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        checker.check(sql)
    assert caught.value.code == "sql-refused"
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_syntax_error_is_invalid_not_refused(checker: StatementChecker) -> None:
    with pytest.raises(InvalidInputError) as caught:
        checker.check("selec 1")
    assert caught.value.code == "sql-invalid"
    assert str(caught.value) == 'SQL does not parse: Parser Error: syntax error at or near "selec"'
