"""`POST /v1/sql` attacked as a hostile caller would: every class of escape we know of.

Each attempt asserts the exact status and problem type, that the answer leaks nothing (no
file content, no path of the lake or the server, no setting), and that nothing was written.
After the whole suite the server still answers a normal query with the right rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

import lake
from catalog import DatabaseSettings
from query_api import create_app
from query_api._hardening import SecuritySettings
from query_api._sandbox import SqlSettings
from tests.integration.query_api.conftest import DEAD_DATABASE_URL, api_settings

TYPE = "https://stockdata.dev/problems/"
CANARY = Path("/tmp/stockdata-attack-canary")

REFUSED = (400, "sql-refused")
INVALID = (400, "sql-invalid")
TIMEOUT = (422, "sql-timeout")

#: (attempt, SQL, expected status and problem type).
ATTACKS: list[tuple[str, str, tuple[int, str]]] = [
    # -- file and blob functions of every extension that can be loaded ------------------
    ("read_csv", "select * from read_csv('/etc/passwd')", REFUSED),
    ("read_csv_auto", "select * from read_csv_auto('/etc/passwd')", REFUSED),
    ("read_text", "select * from read_text('/etc/passwd')", REFUSED),
    ("read_blob", "select * from read_blob('/proc/self/environ')", REFUSED),
    ("read_json", "select * from read_json('/etc/passwd')", REFUSED),
    ("read_json_auto", "select * from read_json_auto('/etc/passwd')", REFUSED),
    ("read_ndjson", "select * from read_ndjson_objects('/etc/passwd')", REFUSED),
    ("read_parquet", "select * from read_parquet('/etc/passwd')", REFUSED),
    ("parquet_scan", "select * from parquet_scan('{lake}/eod_prices/*/*.parquet')", REFUSED),
    ("parquet_metadata", "select * from parquet_metadata('{lake}/eod_prices/*/*')", REFUSED),
    ("parquet_schema", "select * from parquet_schema('{lake}/eod_prices/*/*')", REFUSED),
    ("parquet_kv", "select * from parquet_kv_metadata('{lake}/eod_prices/*/*')", REFUSED),
    ("sniff_csv", "select * from sniff_csv('/etc/passwd')", REFUSED),
    ("glob", "select * from glob('/etc/*')", REFUSED),
    ("read_duckdb", "select * from read_duckdb('/tmp/x.db')", REFUSED),
    ("delta_scan", "select * from delta_scan('{lake}/eod_prices')", REFUSED),
    ("write_blob", f"select write_blob('{CANARY}', 'x'::blob)", REFUSED),
    ("write_blob nested", f"select 1 where write_blob('{CANARY}/a/b.py', 'x'::blob)", REFUSED),
    ("file as table", "select * from '/etc/passwd'", REFUSED),
    (
        "lake log as table",
        "select * from '{lake}/eod_prices/_delta_log/00000000000000000000.json'",
        REFUSED,
    ),
    ("http url", "select * from 'http://127.0.0.1:9/x.csv'", REFUSED),
    ("az url", "select * from 'az://lake/eod_prices/x.parquet'", REFUSED),
    ("read in subquery", "select (select max(content) from read_text('/etc/passwd'))", REFUSED),
    (
        "read in where",
        "select 1 from eod where ticker in (select content from read_text('/etc/hostname'))",
        REFUSED,
    ),
    (
        "read in lateral",
        "select * from eod, lateral (select * from read_text('/etc/passwd')) limit 1",
        REFUSED,
    ),
    # -- statements that change state ---------------------------------------------------
    ("copy to", f"copy (select 1) to '{CANARY}.csv'", REFUSED),
    ("copy table to", f"copy eod to '{CANARY}.parquet' (format parquet)", REFUSED),
    ("copy from", "copy eod_rejects from '/etc/passwd'", REFUSED),
    ("export", f"export database '{CANARY}'", REFUSED),
    ("import", "import database '/tmp'", INVALID),
    ("attach", f"attach '{CANARY}.db' as x", REFUSED),
    ("detach", "detach memory", REFUSED),
    ("install", "install httpfs", REFUSED),
    ("force install", "force install delta", REFUSED),
    ("load", "load delta", REFUSED),
    ("set", "set enable_external_access = true", REFUSED),
    ("set global", "set global allowed_directories = ['/']", REFUSED),
    ("reset", "reset lock_configuration", REFUSED),
    ("pragma", "pragma enable_profiling", REFUSED),
    ("call", "call pragma_version()", REFUSED),
    ("prepare", "prepare p as select 1", REFUSED),
    ("execute", "execute p", REFUSED),
    ("create table", "create table t as select 1", REFUSED),
    ("create macro", "create macro m() as table select * from read_text('/etc/passwd')", REFUSED),
    ("create secret", "create secret s (type s3, key_id 'x', secret 'y')", REFUSED),
    ("insert", "insert into eod_rejects select * from eod_rejects", REFUSED),
    ("update", "update eod set close = 0", REFUSED),
    ("delete", "delete from eod", REFUSED),
    ("drop", "drop view eod", REFUSED),
    ("alter", "alter view eod rename to x", REFUSED),
    ("checkpoint", "checkpoint", REFUSED),
    ("use", "use system", REFUSED),
    ("begin", "begin transaction", REFUSED),
    ("explain", "explain select * from eod", REFUSED),
    ("pivot statement", "pivot eod on ticker using sum(close)", REFUSED),
    ("update extensions", "update extensions", REFUSED),
    # -- scope and alias shadowing ------------------------------------------------------
    (
        "cte named like a file",
        'with "/etc/passwd" as (select * from \'/etc/passwd\') select * from "/etc/passwd"',
        REFUSED,
    ),
    (
        "inner cte shadows outer file",
        "select * from (with \"/etc/passwd\" as (select 1) select 1) t, '/etc/passwd'",
        REFUSED,
    ),
    (
        "cte in sibling subquery",
        "select * from (with x as (select 1) select * from x) a, x",
        REFUSED,
    ),
    (
        "cte in scalar subquery",
        "select (with \"/etc/hostname\" as (select 1) select 1), * from '/etc/hostname'",
        REFUSED,
    ),
    (
        "cte shadows view with a file",
        "with eod as (select * from '/etc/passwd') select * from eod",
        REFUSED,
    ),
    (
        "cte used before defined",
        "with a as (select * from b), b as (select * from '/etc/passwd') select * from a",
        REFUSED,
    ),
    (
        "self-referencing plain cte",
        'with "/etc/passwd" as (select * from "/etc/passwd") select 1',
        REFUSED,
    ),
    (
        "union branch cte",
        "(with \"/etc/passwd\" as (select 1) select 1) union all select * from '/etc/passwd'",
        REFUSED,
    ),
    ("alias named like a view", "select * from read_text('/etc/passwd') as eod", REFUSED),
    ("file aliased as a view", "select * from '/etc/passwd' eod", REFUSED),
    ("homoglyph view name", "select * from \u0435od", REFUSED),
    ("system catalog", "select * from system.main.duckdb_settings", REFUSED),
    ("temp catalog", "select * from temp.main.eod", REFUSED),
    ("memory catalog", "select * from memory.main.eod", REFUSED),
    ("information_schema", "select * from information_schema.tables", REFUSED),
    ("pg_catalog view", "select * from pg_catalog.pg_settings", REFUSED),
    ("sqlite_master", "select * from sqlite_master", REFUSED),
    ("duckdb_tables view", "select * from duckdb_tables", REFUSED),
    ("unknown table (the retired eod_by_date)", "select * from eod_by_date", REFUSED),
    ("time travel", "select * from eod at (version => 1)", REFUSED),
    # -- SHOW / DESCRIBE / SUMMARIZE, settings and system functions -----------------------
    ("show tables", "from (show all tables)", REFUSED),
    ("show databases", "select * from (show databases)", REFUSED),
    ("describe in subquery", "select * from (describe eod)", REFUSED),
    ("summarize in subquery", "select * from (summarize eod)", REFUSED),
    ("describe statement", "describe eod", REFUSED),
    ("current_setting", "select current_setting('allowed_directories')", REFUSED),
    ("current_setting temp", "select current_setting('temp_directory')", REFUSED),
    ("duckdb_settings", "select * from duckdb_settings()", REFUSED),
    ("duckdb_databases", "select * from duckdb_databases()", REFUSED),
    ("duckdb_secrets", "select * from duckdb_secrets()", REFUSED),
    ("duckdb_extensions", "select * from duckdb_extensions()", REFUSED),
    ("duckdb_functions", "select * from duckdb_functions()", REFUSED),
    ("pragma_database_list", "select * from pragma_database_list()", REFUSED),
    ("version", "select version()", REFUSED),
    ("current_database", "select current_database()", REFUSED),
    ("current_query", "select current_query()", REFUSED),
    ("getvariable", "select getvariable('x')", REFUSED),
    (
        "query table function",
        "select * from query('select * from read_text(''/etc/passwd'')')",
        REFUSED,
    ),
    ("query_table", "select * from query_table('eod')", REFUSED),
    ("serialized sql", "select * from json_execute_serialized_sql('{}')", REFUSED),
    ("which_secret", "select * from which_secret('s3://x', 's3')", REFUSED),
    ("pg function", "select pg_catalog.pg_get_viewdef('eod')", REFUSED),
    ("schema-qualified function", "select system.main.upper('a')", REFUSED),
    ("sleep", "select sleep_ms(60000)", REFUSED),
    ("write_log", "select write_log('x')", REFUSED),
    ("setseed", "select setseed(0.5)", REFUSED),
    ("parameter", "select $1", REFUSED),
    # -- statement smuggling --------------------------------------------------------------
    ("two statements", f"select 1; copy (select 1) to '{CANARY}'", REFUSED),
    ("statement after line comment", f"select 1 -- x\n; attach '{CANARY}' as y", REFUSED),
    ("statement after block comment", f"select 1 /* ; */ ; copy (select 1) to '{CANARY}'", REFUSED),
    ("leading comment hides copy", f"/* select */ copy (select 1) to '{CANARY}'", REFUSED),
    ("nul byte", "select 1\x00; drop view eod", REFUSED),
    ("fullwidth semicolon", "select 1\uff1b drop view eod", INVALID),
    ("zero-width space", "select\u200b * from read_text('/etc/passwd')", REFUSED),
    ("empty", "   ", REFUSED),
    ("only a comment", "-- nothing", REFUSED),
    # -- resource bombs ---------------------------------------------------------------------
    ("time: cross join", "select count(*) from eod a, eod b, eod c", TIMEOUT),
    (
        "recursion: endless cte",
        "with recursive r(n) as (select 1 union all select n + 1 from r) select count(*) from r",
        TIMEOUT,
    ),
    (
        "deep nesting: case x400",
        "select " + "case when 1 = 1 then " * 400 + "1" + " end" * 400,
        REFUSED,
    ),
    ("deep nesting: functions", "select " + "abs(" * 2000 + "1" + ")" * 2000, INVALID),
    ("deep nesting: subqueries", "select " + "(select " * 120 + "1" + ")" * 120, REFUSED),
    ("too long", "select '" + "x" * 20_001 + "'", REFUSED),
]

#: Bombs that run but must be cut off or refused without taking the server down.
MEMORY_BOMBS = [
    "select length(string_agg(repeat('x', 1000000), '')) from range(3000)",
    "select list(range) from range(400000000)",
]


@pytest.fixture(scope="module")
def client(sample_lake: lake.LakeSettings) -> Iterator[TestClient[Litestar]]:
    app = create_app(
        api_settings(),
        lake_settings=sample_lake,
        database_settings=DatabaseSettings(
            database_url=DEAD_DATABASE_URL, database_connect_timeout=1
        ),
        sql=True,
        sql_settings=SqlSettings(
            sql_timeout_seconds=3, sql_workers=1, sql_max_rows=1_000, sql_memory_limit="256MB"
        ),
        security_settings=SecuritySettings(rate_limit_per_minute=0),
        access_logs=False,
    )
    with TestClient(app, timeout=60) as test_client:
        yield test_client


def _assert_nothing_leaked(text: str, sample_lake: lake.LakeSettings, *, echoed: str = "") -> None:
    """No file content, server path or setting in an answer (beyond the caller's own SQL)."""
    text = text.replace(echoed, "") if echoed else text
    assert "root:" not in text
    assert sample_lake.root not in text
    assert "/tmp/stockdata-sql-" not in text
    assert "stockdata-test-pg" not in text
    assert "No such file" not in text


@pytest.mark.parametrize(
    ("sql", "expected"),
    [(sql, expected) for _, sql, expected in ATTACKS],
    ids=[name for name, _, _ in ATTACKS],
)
def test_every_attack_is_refused_and_leaks_nothing(
    client: TestClient[Litestar],
    sample_lake: lake.LakeSettings,
    sql: str,
    expected: tuple[int, str],
) -> None:
    sent = sql.replace("{lake}", sample_lake.root)
    resp = client.post("/v1/sql", json={"sql": sent})
    assert resp.status_code == expected[0], resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["type"] == TYPE + expected[1]
    assert "\n" not in resp.json()["detail"]
    echoed = sent.split("'")[1] if "{lake}" in sql else ""
    _assert_nothing_leaked(resp.text, sample_lake, echoed=echoed)
    assert not any(Path("/tmp").glob(CANARY.name + "*"))


def test_at_least_sixty_distinct_attacks() -> None:
    assert len({sql for _, sql, _ in ATTACKS}) == len(ATTACKS) >= 60


@pytest.mark.parametrize("sql", MEMORY_BOMBS)
def test_memory_bombs_end_in_a_4xx_and_the_sandbox_recovers(
    client: TestClient[Litestar], sql: str
) -> None:
    resp = client.post("/v1/sql", json={"sql": sql})
    assert resp.status_code in {400, 422}, resp.text
    assert resp.json()["type"] in {
        TYPE + "sql-memory",
        TYPE + "sql-aborted",
        TYPE + "sql-timeout",
        TYPE + "sql-error",
    }
    ok = client.post("/v1/sql", json={"sql": "select 42 as x"})
    assert ok.json()["rows"] == [[42]]


def test_a_huge_result_is_cut_at_the_row_cap_and_says_so(client: TestClient[Litestar]) -> None:
    resp = client.post("/v1/sql", json={"sql": "select a.trade_date from eod a, eod b"})
    assert resp.status_code == 200
    body = resp.json()
    assert (body["row_count"], body["truncated"]) == (1_000, True)


def test_after_every_attack_a_normal_query_answers(client: TestClient[Litestar]) -> None:
    for _, sql, _ in ATTACKS[:10]:
        client.post("/v1/sql", json={"sql": sql})
    resp = client.post(
        "/v1/sql",
        json={
            "sql": "select ticker, count(*) as n, max(close) as top from eod group by 1 order by 1"
        },
    )
    assert resp.status_code == 200
    assert json.loads(resp.text)["rows"] == [["GOOG", 2148, 806.85], ["MSFT", 7983, 84.56]]
