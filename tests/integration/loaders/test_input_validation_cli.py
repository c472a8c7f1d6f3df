"""One validation for symbols and inputs: the CLI refuses what the API would, unreadable files
and a catalog behind the code are one line, and a failed load leaves no ticker behind."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

import catalog
from stockdata.symbols import SYMBOL_PATTERN
from tests.integration.loaders.test_ingest_cli import ingest

RULE = "use 1-32 letters, digits, '.' or '-', starting with a letter or digit"


def test_the_api_routes_use_the_shared_symbol_rule() -> None:
    from query_api.routes import _common, eod

    assert _common.SYMBOL_PATTERN is SYMBOL_PATTERN
    assert eod.SYMBOL_PATTERN is SYMBOL_PATTERN


def test_a_symbol_the_api_refuses_is_refused_by_every_command(
    seeded: Engine, pg_url: str, samples: Path, tmp_path: Path
) -> None:
    lake_dir = tmp_path / "lake"
    kw = {"pg_url": pg_url, "home": tmp_path, "lake_dir": lake_dir}
    load = ingest(
        "load", str(samples / "MSFT.csv"), "--ticker", "A B/C", "--exchange", "XNAS", **kw
    )
    assert (load.returncode, load.stdout, load.stderr) == (
        2,
        "",
        f"error: Invalid value for '--ticker': 'A B/C' is not a ticker symbol: {RULE}\n",
    )
    backfill = ingest(
        "backfill",
        "--provider",
        "synthetic",
        "--tickers",
        "MSFT,BAD!",
        "--from",
        "2020-01-01",
        **kw,
    )
    assert (backfill.returncode, backfill.stderr) == (
        2,
        f"error: Invalid value for '--tickers': 'BAD!' is not a ticker symbol: {RULE}\n",
    )
    with catalog.session_scope(seeded) as session:
        assert sum(catalog.job_counts(session).values()) == 0
        symbols = session.scalars(sa.select(catalog.Ticker.symbol)).all()
    assert "A B/C" not in symbols and "BAD!" not in symbols
    assert not lake_dir.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xff\xfe\x00D,a\n1,2\n", "it is not UTF-8 text (a CSV) nor Parquet"),
        (
            b"\x7fELF\x02\x01\x01\x00\n\x00\x01,\x02\x03\n",
            "CSV parse error: Expected 1 columns, got 2",
        ),
    ],
    ids=["binary-header", "binary-body"],
)
def test_a_binary_file_is_one_line_exit_2_and_leaves_no_ticker(
    content: bytes, reason: str, seeded: Engine, pg_url: str, tmp_path: Path
) -> None:
    blob = tmp_path / "bars.csv"
    blob.write_bytes(content)
    out = ingest(
        "load",
        str(blob),
        "--ticker",
        "NEWCO",
        "--exchange",
        "XNAS",
        pg_url=pg_url,
        home=tmp_path,
        lake_dir=tmp_path / "lake",
    )
    assert (out.returncode, out.stdout, out.stderr) == (
        2,
        "",
        f"error: Invalid value for 'FILE': cannot read bars.csv: {reason}\n",
    )
    with catalog.session_scope(seeded) as session:
        assert (
            session.scalars(sa.select(catalog.Ticker).where(catalog.Ticker.symbol == "NEWCO")).all()
            == []
        )


@pytest.fixture
def scratch_db(pg_engine: Engine, pg_url: str) -> Iterator[str]:
    """A database of its own on the session's server (so downgrading it harms no other test)."""
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))


def test_a_catalog_behind_the_code_says_run_db_upgrade(scratch_db: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKDATA_")}
    env |= {"STOCKDATA_HOME": str(tmp_path), "STOCKDATA_DATABASE_URL": scratch_db}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stockdata", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    assert run("db", "upgrade").returncode == 0
    assert run("db", "downgrade", "base").returncode == 0
    behind = (
        "error: the catalog's schema is missing or behind this code: run `stockdata db upgrade`\n"
    )
    for args in (("catalog", "tickers"), ("catalog", "exchanges"), ("ingest", "status")):
        out = run(*args)
        assert (out.returncode, out.stdout, out.stderr) == (1, "", behind), args
    work = run("ingest", "work", "--until-empty")
    assert (work.returncode, work.stderr) == (
        1,
        "error: the catalog has no schema: run `stockdata db upgrade`\n",
    )
