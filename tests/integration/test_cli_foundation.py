"""The `stockdata` command as a user runs it: real processes, real Postgres."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

STOCKDATA = [sys.executable, "-m", "stockdata"]


def run(
    *args: str, env: dict[str, str] | None = None, home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("STOCKDATA_")}
    if home is not None:
        full["STOCKDATA_HOME"] = str(home)
    full.update(env or {})
    return subprocess.run(
        [*STOCKDATA, *args], capture_output=True, text=True, env=full, timeout=120
    )


def test_help_lists_the_groups() -> None:
    out = run("--help")
    assert out.returncode == 0
    for group in ("db", "catalog", "demo"):
        assert f"  {group} " in out.stdout


def test_unknown_subcommand_is_one_line_and_exit_2() -> None:
    out = run("frobnicate")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: No such command 'frobnicate'."


def test_unreachable_database_url_is_one_line_without_the_password() -> None:
    out = run(
        "db", "upgrade", env={"STOCKDATA_DATABASE_URL": "postgresql://app:s3cret@127.0.0.1:9/x"}
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "error: cannot reach the catalog database at postgresql+psycopg://app:***@127.0.0.1:9/x"
    )
    assert "s3cret" not in out.stderr


def test_malformed_setting_is_named() -> None:
    out = run("db", "current", env={"STOCKDATA_DATABASE_POOL_SIZE": "many"})
    assert out.returncode == 2
    assert out.stderr.startswith("error: invalid setting STOCKDATA_DATABASE_POOL_SIZE:")


def test_non_postgres_url_is_refused() -> None:
    out = run("db", "upgrade", env={"STOCKDATA_DATABASE_URL": "mysql://u@h/db"})
    assert out.returncode == 1
    assert (
        out.stderr.strip()
        == "error: STOCKDATA_DATABASE_URL must be a postgresql:// URL, got mysql://"
    )


def test_db_upgrade_and_seed_against_a_database_given_by_url(pg_url: str, tmp_path: Path) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS cli_by_url"))
        conn.execute(sa.text("CREATE DATABASE cli_by_url"))
    url = sa.make_url(pg_url).set(database="cli_by_url").render_as_string(hide_password=False)
    env = {"STOCKDATA_DATABASE_URL": url}
    try:
        up = run("db", "upgrade", env=env, home=tmp_path)
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip() == "catalog at revision 0001"
        seed = run("catalog", "seed", env=env, home=tmp_path)
        assert seed.returncode == 0, seed.stderr
        assert seed.stdout.strip().endswith("tickers: 2 new, 0 changed")
        again = run("catalog", "seed", env=env, home=tmp_path)
        assert "exchanges: 0 new, 0 changed; tickers: 0 new, 0 changed" in again.stdout
        assert not (tmp_path / "postgres").exists()  # no embedded server was started
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("DROP DATABASE cli_by_url WITH (FORCE)"))
        admin.dispose()


@pytest.mark.timeout(120)
def test_embedded_database_starts_on_first_use(tmp_path: Path) -> None:
    from catalog import DatabaseSettings

    pgdata = DatabaseSettings(home=tmp_path).pgdata
    try:
        up = run("db", "upgrade", home=tmp_path)
        assert up.returncode == 0, up.stderr
        assert (pgdata / "PG_VERSION").read_text().strip() == "18"
        cur = run("db", "current", home=tmp_path)
        assert cur.stdout.split() == ["current:", "0001", "head:", "0001"]
    finally:
        shutil.rmtree(pgdata, ignore_errors=True)


def test_embedded_data_dir_moves_out_of_folders_closed_to_its_user() -> None:
    from catalog import DatabaseSettings

    closed = Path(tempfile.mkdtemp(prefix="stockdata-closed-"))  # 0700, like /root
    open_ = Path(tempfile.mkdtemp(prefix="stockdata-open-"))
    open_.chmod(0o755)
    try:
        assert DatabaseSettings(home=open_ / "home").pgdata == open_ / "home" / "postgres"
        inside_closed = DatabaseSettings(home=closed / "home").pgdata
        if os.geteuid() == 0:
            assert inside_closed.parent == Path(tempfile.gettempdir())
            assert inside_closed.name.startswith("stockdata-pg-")
            assert DatabaseSettings(home=closed / "home").pgdata == inside_closed
        else:
            assert inside_closed == closed / "home" / "postgres"
    finally:
        shutil.rmtree(closed)
        shutil.rmtree(open_)
