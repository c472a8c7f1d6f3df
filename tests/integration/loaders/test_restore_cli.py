"""A restore is a first-class operation: eod_prices and corporate_actions roll back together,
the catalog learns which jobs lost their rows, and loading them again writes them again."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from deltalake import DeltaTable
from sqlalchemy.engine import Engine

import catalog
import lake
from tests.integration.loaders.test_ingest_cli import UUID, ingest


def _stockdata(
    *args: str, pg_url: str, home: Path, lake_dir: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKDATA_")}
    env |= {
        "STOCKDATA_HOME": str(home),
        "STOCKDATA_DATABASE_URL": pg_url,
        "STOCKDATA_LAKE_URI": str(lake_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "stockdata", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def _tickers(settings: lake.LakeSettings, name: str) -> Counter[str]:
    table = DeltaTable(settings.table_uri(name))
    return Counter(table.to_pyarrow_table(columns=["ticker"]).column("ticker").to_pylist())


def test_restore_rolls_eod_prices_back_and_the_removed_job_loads_again(
    seeded: Engine, pg_url: str, samples: Path, tmp_path: Path
) -> None:
    lake_dir = tmp_path / "lake"
    settings = lake.LakeSettings(lake_uri=str(lake_dir))
    kw = {"pg_url": pg_url, "home": tmp_path, "lake_dir": lake_dir}
    msft = ingest("load", str(samples / "MSFT.csv"), "--ticker", "MSFT", "--exchange", "XNAS", **kw)
    assert msft.returncode == 0, msft.stderr
    version = lake.open_table(settings, lake.EOD_TABLE).version()  # type: ignore[union-attr]
    goog_args = ("load", str(samples / "GOOG.csv"), "--ticker", "GOOG", "--exchange", "XNAS")
    goog = ingest(*goog_args, **kw)
    assert goog.returncode == 0, goog.stderr
    goog_job = goog.stdout.split(":")[0].removeprefix("job ")
    both = Counter({"MSFT": 7983, "GOOG": 2148})
    assert _tickers(settings, lake.EOD_TABLE) == both

    restored = _stockdata("lake", "restore", "--version", str(version), **kw)
    assert restored.returncode == 0, restored.stderr
    assert re.fullmatch(
        rf"restored eod_prices to version {version}; now at version {version + 2}; "
        "2148 row\\(s\\) of 1 job\\(s\\) removed\n"
        f"job {goog_job}: rows removed, marked failed \\(restored-away\\)\n"
        "1 job\\(s\\) to load again: `stockdata ingest retry` \\(or `stockdata ingest load` "
        "the same file\\)\n",
        restored.stdout,
    ), restored.stdout
    assert re.fullmatch(UUID, goog_job)
    only_msft = Counter({"MSFT": 7983})
    assert _tickers(settings, lake.EOD_TABLE) == only_msft
    with catalog.session_scope(seeded) as session:
        job = catalog.get_job(session, goog_job)
        assert (job.status, job.error_code) == (catalog.JobStatus.FAILED, "restored-away")

    again = ingest(*goog_args, **kw)
    assert again.returncode == 0, again.stderr
    assert re.fullmatch(
        rf"job {goog_job}: 2148 rows written, 0 rejected, lake version \d+\n", again.stdout
    ), again.stdout
    assert _tickers(settings, lake.EOD_TABLE) == both
    with catalog.session_scope(seeded) as session:
        assert catalog.get_job(session, goog_job).status == catalog.JobStatus.SUCCEEDED
    # and a second load of the same file is a replay again
    replay = ingest(*goog_args, **kw)
    assert replay.stdout.startswith(f"job {goog_job}: already loaded (2148 rows)")
    assert _tickers(settings, lake.EOD_TABLE) == both


def test_restore_rolls_corporate_actions_back_to_the_same_moment(
    seeded: Engine, pg_url: str, samples: Path, tmp_path: Path
) -> None:
    """Actions known when the restored version was committed stay; later ones go, their jobs
    are marked restored-away, and loading the same actions file again writes them again."""
    lake_dir = tmp_path / "lake"
    settings = lake.LakeSettings(lake_uri=str(lake_dir))
    kw = {"pg_url": pg_url, "home": tmp_path, "lake_dir": lake_dir}
    early, late = tmp_path / "early.csv", tmp_path / "late.csv"
    early.write_text("ticker,ex_date,kind,ratio\nMSFT,2003-02-18,split,2\n")
    late.write_text("ticker,ex_date,kind,amount\nGOOG,2012-06-01,dividend,1.5\n")
    first = ingest("actions", "--file", str(early), "--exchange", "XNAS", **kw)
    assert first.returncode == 0, first.stderr
    msft = ingest("load", str(samples / "MSFT.csv"), "--ticker", "MSFT", "--exchange", "XNAS", **kw)
    assert msft.returncode == 0, msft.stderr
    version = lake.open_table(settings, lake.EOD_TABLE).version()  # type: ignore[union-attr]
    goog = ingest("load", str(samples / "GOOG.csv"), "--ticker", "GOOG", "--exchange", "XNAS", **kw)
    assert goog.returncode == 0, goog.stderr
    later = ingest("actions", "--file", str(late), "--exchange", "XNAS", **kw)
    assert later.returncode == 0, later.stderr
    removed_jobs = sorted(out.stdout.split(":")[0].removeprefix("job ") for out in (goog, later))
    assert _tickers(settings, lake.ACTIONS_TABLE) == Counter({"MSFT": 1, "GOOG": 1})

    restored = _stockdata("lake", "restore", "--version", str(version), **kw)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.splitlines() == [
        f"restored eod_prices to version {version}; now at version {version + 2}; "
        "2148 row(s) of 2 job(s) removed; corporate_actions rolled back with it "
        "(1 action(s) removed)",
        *(f"job {j}: rows removed, marked failed (restored-away)" for j in removed_jobs),
        "2 job(s) to load again: `stockdata ingest retry` (or `stockdata ingest load` the "
        "same file)",
    ]
    actions = lake.read_actions(settings).to_pylist()
    assert [(a["ticker"], str(a["ex_date"]), a["kind"], a["ratio"]) for a in actions] == [
        ("MSFT", "2003-02-18", "split", 2.0)
    ]

    again = ingest("actions", "--file", str(late), "--exchange", "XNAS", **kw)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split(":")[0] == later.stdout.split(":")[0]
    assert re.fullmatch(rf"job {UUID}: 1 action\(s\) written, 0 rejected, .*\n", again.stdout)
    assert _tickers(settings, lake.ACTIONS_TABLE) == Counter({"MSFT": 1, "GOOG": 1})
