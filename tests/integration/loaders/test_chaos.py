"""Chaos, bounded: two `stockdata ingest work` processes SIGKILLed five times during a backfill.

Whatever moment a kill lands on (fetching, validating, mid-commit, after the commit, renewing
the message), the end state is exact: every job succeeded, every ticker holds exactly its
sample rows, no (ticker, date) twice. Run on the Postgres queue and on Azurite's queue.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

import catalog
import lake
import loaders
from tests._services import Azurite
from tests.integration.loaders._pipeline import KEY, lake_count, open_queue, queue_name, stub
from tests.stubs._server import Fault

TICKERS = ["MSFT", "CHAOSA", "CHAOSB", "CHAOSC"]
DATE_FROM, DATE_TO = dt.date(2009, 1, 1), dt.date(2016, 12, 31)
KILLS = 5


@pytest.fixture
def lake_settings(tmp_path: Path) -> lake.LakeSettings:
    return lake.LakeSettings(lake_uri=str(tmp_path / "lake"))


def _env(
    pg_url: str,
    lake_settings: lake.LakeSettings,
    home: Path,
    base_url: str,
    name: str,
    **extra: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKDATA_")}
    env.update(
        STOCKDATA_HOME=str(home),
        STOCKDATA_DATABASE_URL=pg_url,
        STOCKDATA_LAKE_URI=str(lake_settings.lake_uri),
        STOCKDATA_MARKETSTACK_API_KEY=KEY,
        STOCKDATA_MARKETSTACK_BASE_URL=base_url,
        STOCKDATA_QUEUE_NAME=name,
        STOCKDATA_QUEUE_POLL_SECONDS="0.05",
        STOCKDATA_QUEUE_VISIBILITY_TIMEOUT_SECONDS="2",
        STOCKDATA_QUEUE_RENEW_EVERY_SECONDS="0.5",
        # Five kills could land on one job: never let chaos poison a good job.
        STOCKDATA_QUEUE_MAX_DELIVERIES="50",
        STOCKDATA_QUEUE_BACKOFF_BASE_SECONDS="0",
        STOCKDATA_QUEUE_BACKOFF_MAX_SECONDS="0",
        **extra,
    )
    return env


def _statuses(engine: Engine) -> list[str]:
    with catalog.session_scope(engine) as session:
        return [str(s) for s in session.scalars(select(catalog.IngestionJob.status)).all()]


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "stockdata", "ingest", "work"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.mark.parametrize("backend", ["postgres", pytest.param("azure", marks=pytest.mark.azure)])
def test_five_kills_of_two_workers_lose_and_duplicate_nothing(
    backend: str,
    seeded: Engine,
    pg_url: str,
    samples: Path,
    lake_settings: lake.LakeSettings,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    azurite: Azurite | None = request.getfixturevalue("azurite") if backend == "azure" else None
    name = queue_name()
    queue = open_queue(backend, engine=seeded, azurite=azurite, name=name)
    extra = (
        {
            "STOCKDATA_QUEUE_BACKEND": "azure",
            "STOCKDATA_QUEUE_AZURE_CONNECTION_STRING": azurite.connection_string,
        }
        if azurite is not None
        else {}
    )
    rng = random.Random(20261207)
    with stub(samples, {t: "MSFT" for t in TICKERS[1:]}) as server:
        # Every provider answer takes 0.2-0.6 s, so kills land inside jobs, not between them.
        server.inject(*(Fault.delay(rng.uniform(0.2, 0.6)) for _ in range(2_000)))
        loaders.enqueue_backfill(
            seeded,
            queue,
            provider="marketstack",
            exchange_mic="XNAS",
            tickers=TICKERS,
            date_from=DATE_FROM,
            date_to=DATE_TO,
        )
        jobs = len(_statuses(seeded))
        assert jobs >= 4
        env = _env(pg_url, lake_settings, tmp_path, server.base_url, name, **extra)
        log = tmp_path / "workers.log"
        workers = [_start(env, log), _start(env, log)]
        kills = 0
        try:
            deadline = time.monotonic() + 240
            while kills < KILLS and time.monotonic() < deadline:
                time.sleep(rng.uniform(0.3, 1.5))
                if "running" not in _statuses(seeded) and kills:
                    continue
                victim = rng.randrange(len(workers))
                os.killpg(workers[victim].pid, signal.SIGKILL)
                workers[victim].wait(timeout=30)
                assert workers[victim].returncode == -signal.SIGKILL
                kills += 1
                workers[victim] = _start(env, log)
            assert kills == KILLS
            while time.monotonic() < deadline and set(_statuses(seeded)) != {"succeeded"}:
                time.sleep(0.2)
            statuses = _statuses(seeded)
        finally:
            for proc in workers:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in workers:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    assert statuses == ["succeeded"] * jobs, log.read_text()[-3_000:]
    per_ticker = sum(
        1
        for line in (samples / "MSFT.csv").read_text().splitlines()[1:]
        if DATE_FROM <= dt.date.fromisoformat(line.split(",")[0]) <= DATE_TO
    )
    expected = per_ticker * len(TICKERS)
    assert lake_count(lake_settings) == (expected, expected)
    for ticker in TICKERS:
        assert lake_count(lake_settings, f"ticker = '{ticker}'") == (per_ticker, per_ticker)
    assert queue.depth() == 0
