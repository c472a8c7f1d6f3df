"""`stockdata demo` as a newcomer runs it: a fresh home, no settings, real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._services import free_port


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKDATA_")}
    env["STOCKDATA_HOME"] = str(home)
    return env


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="stockdata-demo-"))
    yield path
    from catalog import DatabaseSettings

    shutil.rmtree(DatabaseSettings(home=path).pgdata, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)


def _stockdata(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockdata", *args],
        capture_output=True,
        text=True,
        env=_env(home),
        timeout=300,
    )


@pytest.mark.timeout(300)
def test_demo_loads_the_samples_once_and_serves_them(home: Path) -> None:
    first = _stockdata(home, "demo", "--no-serve")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "catalog migrated to 0001"
    assert lines[1].startswith("catalog seeded: ") and lines[1].endswith(" 2 new tickers")
    assert "7983 rows written, 0 rejected" in lines[2]
    assert "2148 rows written, 0 rejected" in lines[3]
    assert lines[4].startswith("note: the MSFT sample is split- and dividend-adjusted")

    again = _stockdata(home, "demo", "--no-serve")
    assert again.returncode == 0, again.stderr
    assert "catalog seeded: 0 new exchanges, 0 new tickers" in again.stdout
    assert again.stdout.count(": already loaded (7983 rows)") == 1
    assert again.stdout.count(": already loaded (2148 rows)") == 1

    counts = _stockdata(
        home, "sql", "select ticker, count(*) n from eod group by 1 order by 1", "--format", "csv"
    )
    assert counts.stdout.splitlines() == ["ticker,n", "GOOG,2148", "MSFT,7983", "SYN0001,755"]
    actions = _stockdata(
        home,
        "sql",
        "select ex_date, kind, ratio from corporate_actions where kind = 'split'",
        "--format",
        "csv",
    )
    assert actions.stdout.splitlines() == ["ex_date,kind,ratio", "2015-12-17,split,2.0"]

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "stockdata", "demo", "--port", str(port)],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/v1/eod/MSFT?date=2008-10-10"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        rows = body["data"] if isinstance(body["data"], list) else [body["data"]]
        assert [(r["date"], r["close"]) for r in rows] == [("2008-10-10", 18.029)]

        def closes(adjust: str) -> list[float]:
            url = (
                f"http://127.0.0.1:{port}/v1/eod/SYN0001?from=2015-12-16&to=2015-12-17"
                f"&adjust={adjust}"
            )
            with urllib.request.urlopen(url, timeout=10) as response:
                return [r["close"] for r in json.load(response)["data"]]

        traded, split = closes("none"), closes("splits")
        assert split[0] == round(traded[0] / 2, 10) and split[1] == traded[1]
        assert 0.7 < traded[1] / traded[0] * 2 < 1.3  # the 2:1 split, not a 50% fall
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(30)
    assert server.returncode in (0, 130)

    # The embedded Postgres stops with its last user, even though the server's worker process
    # was killed without running its exit hooks.
    from catalog import DatabaseSettings

    postmaster = DatabaseSettings(home=home).pgdata / "postmaster.pid"
    deadline = time.monotonic() + 30
    while postmaster.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not postmaster.exists()
