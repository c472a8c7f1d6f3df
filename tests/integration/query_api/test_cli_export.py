"""`stockdata export` as a user runs it: a real process writing Parquet and CSV from the lake."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

import lake
from tests.integration.query_api.conftest import bars_table

MSFT_ROWS = 7_983
GOOG_ROWS = 2_148


def run(settings: lake.LakeSettings, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKDATA_")}
    env["STOCKDATA_HOME"] = str(home)
    env["STOCKDATA_LAKE_URI"] = settings.lake_uri or ""
    return subprocess.run(
        [sys.executable, "-m", "stockdata", "--log-level", "WARNING", "export", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_export_one_ticker_to_parquet(sample_lake: lake.LakeSettings, tmp_path: Path) -> None:
    out = tmp_path / "msft.parquet"
    done = run(sample_lake, tmp_path, str(out), "--ticker", "msft")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith(f"wrote {MSFT_ROWS} rows to {out} (parquet, lake version ")
    table = pq.read_table(out)
    assert table.num_rows == MSFT_ROWS
    assert set(table.column("ticker").to_pylist()) == {"MSFT"}
    assert table.column("date")[0].as_py().isoformat() == "1986-03-13"
    assert table.column("close")[MSFT_ROWS - 1].as_py() == 83.87
    assert list(tmp_path.glob(".*partial")) == []


def test_export_reads_the_lake_and_builds_no_serving_form(
    tmp_path: Path, msft_rows: list[dict[str, Any]]
) -> None:
    """An export streams from DuckDB over Delta; it never publishes (and holds in memory) a
    serving form of the whole lake as an API process would."""
    settings = lake.LakeSettings(lake_uri=str(tmp_path / "lake"))
    lake.write_bars(settings, bars_table("MSFT", msft_rows), job_id="export-msft")
    out = tmp_path / "all.parquet"
    done = run(settings, tmp_path, str(out))
    assert (done.returncode, done.stderr) == (0, "")
    assert pq.read_table(out).num_rows == MSFT_ROWS
    assert not settings.serving_root.exists()


def test_export_range_and_exchange_to_csv(sample_lake: lake.LakeSettings, tmp_path: Path) -> None:
    out = tmp_path / "out" / "2008.csv"
    done = run(
        sample_lake, tmp_path, str(out), "--exchange", "XNAS", "--from", "2008-01-01",
        "--to", "2008-12-31",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 253
    assert [(r["date"], r["ticker"]) for r in rows[:2]] == [
        ("2008-01-02", "GOOG"),
        ("2008-01-02", "MSFT"),
    ]
    both = run(
        sample_lake, tmp_path, str(tmp_path / "all.csv"), "--ticker", "GOOG", "--ticker", "MSFT"
    )
    assert both.stdout.startswith(f"wrote {MSFT_ROWS + GOOG_ROWS} rows")


def test_export_refuses_bad_input_in_one_line(
    sample_lake: lake.LakeSettings, tmp_path: Path
) -> None:
    cases = [
        (["x.txt"], "error: x.txt: name a .parquet or .csv file, or pass --format\n"),
        (["x.csv", "--ticker", "NOPE"], "error: no data for symbol 'NOPE'\n"),
        (
            ["x.csv", "--from", "2009-01-01", "--to", "2008-01-01"],
            "error: --from 2009-01-01 is after --to 2008-01-01\n",
        ),
    ]
    for args, stderr in cases:
        args[0] = str(tmp_path / args[0])
        done = run(sample_lake, tmp_path, *args)
        assert (done.returncode, done.stderr.replace(str(tmp_path) + "/", "")) == (1, stderr)
    (tmp_path / "kept.csv").write_text("keep")
    again = run(sample_lake, tmp_path, str(tmp_path / "kept.csv"))
    assert again.returncode == 1
    assert again.stderr.endswith("kept.csv exists; pass --force to replace it\n")
    assert (tmp_path / "kept.csv").read_text() == "keep"
    bad_date = run(sample_lake, tmp_path, str(tmp_path / "y.csv"), "--from", "2008-13-01")
    assert bad_date.returncode == 2
    assert "'2008-13-01' is not an ISO date (YYYY-MM-DD)" in bad_date.stderr
