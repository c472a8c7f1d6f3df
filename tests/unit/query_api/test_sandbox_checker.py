"""The SQL sandbox's statement check: DuckDB's own parser decides what a query is."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from query_api._sandbox import StatementChecker
from query_api._sql_allowlist import SAFE_FUNCTIONS, SAFE_TABLE_FUNCTIONS
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


@pytest.mark.parametrize(
    "sql",
    [
        "with recursive r(n) as (select 1 union all select n + 1 from r where n < 3) select * from r",
        "with a as (select 1 as x), b as (select * from a) select * from b",
        "select * from (with x as (select 1 as y) select * from x) t",
        "with x as (select 1 as y) select (select y from x), * from x",
        "select ticker, lag(close) over (partition by ticker order by trade_date) from eod "
        "qualify row_number() over (partition by ticker order by trade_date desc) = 1",
        "select [x * 2 for x in [1, 2, 3] if x > 1], {'a': 1}, list_transform([1], lambda x: x + 1)",
        "select quantile_cont(close, 0.5), arg_max(ticker, close), 1.5::decimal(10, 2) from eod",
        "select * exclude (close) from eod",
        "select case when close > 1 then 'a' else 'b' end, try_cast(close as int) from eod",
        "select strftime(trade_date, '%Y'), date_trunc('year', trade_date), current_date from eod",
        "from eod pivot (sum(close) for ticker in ('MSFT', 'GOOG'))",
        "select * from unnest([1, 2]), (values (1, 2)) v(a, b)",
    ],
)
def test_ordinary_analysis_passes(checker: StatementChecker, sql: str) -> None:
    assert checker.check(sql) == sql


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        # A CTE's name counts only where it is visible.
        (
            'with "/etc/passwd" as (select * from \'/etc/passwd\') select * from "/etc/passwd"',
            "relation '/etc/passwd'",
        ),
        ("select * from (with x as (select 1) select * from x) a, x", "relation 'x'"),
        (
            "select * from (with \"/etc/passwd\" as (select 1) select 1) t, '/etc/passwd'",
            "relation '/etc/passwd'",
        ),
        (
            "with a as (select * from b), b as (select * from '/etc/passwd') select * from a",
            "relation 'b'",
        ),
        ("with eod as (select * from '/etc/passwd') select * from eod", "relation '/etc/passwd'"),
        ("from (show all tables)", "show ref is not allowed"),
        ("select * from (describe eod)", "show ref is not allowed"),
        ("select * from eod at (version => 1)", "time travel"),
        ("select write_blob('/tmp/x', 'x'::blob)", "function write_blob()"),
        ("select current_setting('allowed_directories')", "function current_setting()"),
        ("select get_block_size('memory')", "function get_block_size()"),
        ("select pg_catalog.upper('a')", "function upper()"),
        ("select $1", "parameter expressions are not allowed"),
        ("select 1\x00", "NUL character"),
        ("import database '/etc'", "does not parse"),
    ],
)
def test_scope_and_allow_list_refusals(checker: StatementChecker, sql: str, reason: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        checker.check(sql)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    checker = StatementChecker(max_length=100_000)
    try:
        with pytest.raises(InvalidInputError) as caught:
            checker.check("select " + "case when 1 = 1 then " * 400 + "1" + " end" * 400)
        assert str(caught.value) == "SQL refused: the query is nested more than 300 levels deep"
        assert checker.check("select " + "abs(" * 50 + "1" + ")" * 50).startswith("select abs(")
    finally:
        checker.close()


def test_import_is_parsed_without_reading_files(checker: StatementChecker) -> None:
    with pytest.raises(InvalidInputError) as caught:
        checker.check("import database '/etc'")
    assert "file system operations are disabled" in str(caught.value)


def test_the_allow_list_is_reviewed_against_this_duckdb() -> None:
    import duckdb

    con = duckdb.connect()
    known = {
        row[0]
        for row in con.execute(
            "select function_name from duckdb_functions() where schema_name = 'main'"
        ).fetchall()
    }
    assert known >= SAFE_FUNCTIONS
    dangerous = {
        "current_setting",
        "current_database",
        "current_schema",
        "current_query",
        "version",
        "sleep_ms",
        "write_log",
        "getvariable",
        "nextval",
        "currval",
        "setseed",
        "json_serialize_sql",
        "json_deserialize_sql",
        "json_serialize_plan",
        "get_block_size",
        "write_blob",
        "read_blob",
        "read_text",
        "pg_sleep",
        "txid_current",
        "stats",
    }
    assert not SAFE_FUNCTIONS & dangerous
    assert not {n for n in SAFE_FUNCTIONS if n.startswith(("pg_", "__internal", "duckdb_"))}
    # No allowed macro reads the catalog, a setting or a table function behind its name.
    macros = con.execute(
        "select function_name, lower(macro_definition) from duckdb_functions() "
        "where function_type = 'macro' and schema_name = 'main'"
    ).fetchall()
    for name, body in macros:
        if name in SAFE_FUNCTIONS:
            assert " from " not in f" {body} " and "setting" not in body, name
    assert {"range", "generate_series", "unnest"} == SAFE_TABLE_FUNCTIONS
