"""`stockdata lake duckdb-init`: a portable script for any DuckDB 1.5.x, printed without writing."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import lake
from tests.integration.lake.test_lake_cli import TODAY, run

RELEASE = duckdb.__version__


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def msft_lake(tmp_path: Path, msft_bars: pa.Table) -> lake.LakeSettings:
    settings = lake.LakeSettings(lake_uri=str(tmp_path / "lake"), home=tmp_path)
    lake.write_bars(settings, msft_bars, job_id="job-1", today=TODAY)
    return settings


def test_the_script_names_no_path_of_this_machine_and_says_how_to_get_the_extension(
    msft_lake: lake.LakeSettings,
) -> None:
    out = run(msft_lake, "lake", "duckdb-init")
    assert (out.returncode, out.stderr) == (0, "")
    lines = out.stdout.splitlines()
    assert lines[:10] == [
        "-- stockdata lake views. Run with: duckdb -init lake.sql",
        f"-- Needs DuckDB 1.5.x (this project runs {RELEASE}) and its delta extension. "
        "Install them once, either",
        "--   from DuckDB's core repository (network): INSTALL delta FROM core;",
        f"--   or offline from PyPI: pip install duckdb-extension-delta=={RELEASE}, then",
        f"--   INSTALL '<site-packages>/duckdb_extension_delta/extensions/v{RELEASE}/"
        "delta.duckdb_extension';",
        "SELECT CASE WHEN NOT starts_with(version(), 'v1.5.') THEN error('this script needs "
        "DuckDB 1.5.x, not ' || version()) END AS duckdb_version_check;",
        "SET autoinstall_known_extensions = false;",
        "SET autoload_known_extensions = false;",
        "LOAD delta;",
        f"-- eod_rejects: no table yet at {msft_lake.lake_uri}/eod_rejects; its view is left "
        "out (run duckdb-init again once it exists)",
    ]
    # Nothing of the virtualenv: the only paths are the lake's own tables.
    assert sys.prefix not in out.stdout
    assert "site-packages/" not in out.stdout.replace("'<site-packages>/", "")
    assert ".duckdb_extension'" not in out.stdout.replace(
        f"v{RELEASE}/delta.duckdb_extension';", ""
    )


def test_printing_creates_nothing(msft_lake: lake.LakeSettings) -> None:
    root = Path(msft_lake.lake_uri or "")
    before = _files(root)
    assert "eod_rejects" not in before
    out = run(msft_lake, "lake", "duckdb-init")
    assert out.returncode == 0
    assert _files(root) == before


def test_the_script_runs_in_a_fresh_duckdb_once_the_extension_is_installed(
    msft_lake: lake.LakeSettings, tmp_path: Path
) -> None:
    script = run(msft_lake, "lake", "duckdb-init").stdout
    config = {"allow_unsigned_extensions": False, "extension_directory": str(tmp_path / "ext")}

    bare = duckdb.connect(config=config)
    with pytest.raises(duckdb.IOException, match='Install it first using "INSTALL delta"'):
        bare.execute(script)

    con = duckdb.connect(config=config)
    # What the script's comment says to do offline, with the file of the pip package.
    con.execute(f"INSTALL '{lake.extension_path('delta')}'")
    con.execute(script)
    assert con.execute("select count(*) from eod where ticker = 'MSFT'").fetchone() == (7983,)
    assert con.execute(
        "select close_21_ago, close from eod_deltas where trade_date = DATE '2008-10-10'"
    ).fetchone() == (22.926, 18.029)
    views = con.execute(
        "select view_name from duckdb_views() where not internal order by view_name"
    ).fetchall()
    assert views == [("eod",), ("eod_deltas",)]


def test_the_version_check_refuses_another_duckdb_release(msft_lake: lake.LakeSettings) -> None:
    script = run(msft_lake, "lake", "duckdb-init").stdout
    check = next(line for line in script.splitlines() if "duckdb_version_check" in line)
    con = duckdb.connect()
    assert con.execute(check).fetchone() == (None,)
    with pytest.raises(duckdb.InvalidInputException, match=r"needs DuckDB 1\.5\.x, not v1\.4\.3"):
        con.execute(check.replace("version()", "'v1.4.3'"))


def test_without_a_lake_it_says_what_to_do_and_writes_nothing(tmp_path: Path) -> None:
    settings = lake.LakeSettings(home=tmp_path, lake_uri=str(tmp_path / "nolake"))
    out = run(settings, "lake", "duckdb-init")
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == (
        f"error: no eod_prices table at {tmp_path / 'nolake'}/eod_prices: load data first "
        "(`stockdata ingest load` or `stockdata demo --no-serve`)\n"
    )
    assert not (tmp_path / "nolake").exists()
