"""A broken worker never consumes work: it refuses to start, or gives the job back and stops;
a good worker then completes every job. Real processes, the real catalog, queues and stub."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

import catalog
import lake
import loaders
from tests._services import Azurite
from tests.integration.loaders._pipeline import (
    KEY,
    csv_closes,
    lake_count,
    open_queue,
    queue_name,
    stub,
)

YEARS = (2014, 2015, 2016, 2017)


def _env(
    pg_url: str, home: Path, lake_dir: Path, queue_env: dict[str, str], **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKDATA_")}
    env.update(
        STOCKDATA_HOME=str(home),
        STOCKDATA_DATABASE_URL=pg_url,
        STOCKDATA_LAKE_URI=str(lake_dir),
        STOCKDATA_QUEUE_POLL_SECONDS="0.05",
        STOCKDATA_QUEUE_BACKOFF_BASE_SECONDS="0",
        STOCKDATA_PROVIDER_BACKOFF_BASE_SECONDS="0.01",
        **queue_env,
        **extra,
    )
    return env


def _work(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockdata", "ingest", "work", "--until-empty"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def _jobs(db: Engine) -> list[tuple[catalog.JobStatus, int, int | None]]:
    with catalog.session_scope(db) as session:
        return [
            (j.status, j.attempts, j.rows_written)
            for j in session.scalars(sa.select(catalog.IngestionJob).order_by("date_from"))
        ]


@pytest.mark.parametrize("backend", ["postgres", "azure"])
def test_a_misconfigured_worker_leaves_every_job_for_a_good_one(
    backend: str,
    seeded: Engine,
    pg_url: str,
    samples: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    azurite: Azurite | None = request.getfixturevalue("azurite") if backend == "azure" else None
    name = queue_name()
    queue_env = {"STOCKDATA_QUEUE_NAME": name}
    if azurite is not None:
        queue_env |= {
            "STOCKDATA_QUEUE_BACKEND": "azure",
            "STOCKDATA_QUEUE_AZURE_CONNECTION_STRING": azurite.connection_string,
        }
    queue = open_queue(backend, engine=seeded, azurite=azurite, name=name)
    lake_dir = tmp_path / "lake"
    lake_settings = lake.LakeSettings(lake_uri=str(lake_dir))
    queued = [(catalog.JobStatus.QUEUED, 0, None)] * len(YEARS)
    with stub(samples) as server:
        loaders.enqueue_backfill(
            seeded,
            queue,
            provider="marketstack",
            exchange_mic="XNAS",
            tickers=["MSFT"],
            date_from=dt.date(YEARS[0], 1, 1),
            date_to=dt.date(YEARS[-1], 12, 31),
        )
        base = {"STOCKDATA_MARKETSTACK_BASE_URL": server.base_url}

        # no key at all: refused before receiving anything
        no_key = _work(_env(pg_url, tmp_path, lake_dir, queue_env, **base))
        assert no_key.returncode == 1, no_key.stderr
        assert no_key.stdout == ""
        assert no_key.stderr == (
            "error: STOCKDATA_MARKETSTACK_API_KEY is not set: get a key from marketstack "
            "and export it\n"
        )
        assert server.requests == []

        # a lake it cannot write: refused too
        blocked = tmp_path / "file"
        blocked.write_text("not a folder")
        no_lake = _work(
            _env(
                pg_url,
                tmp_path,
                blocked / "lake",
                queue_env,
                STOCKDATA_MARKETSTACK_API_KEY=KEY,
                **base,
            )
        )
        assert no_lake.returncode == 1, no_lake.stderr
        assert no_lake.stderr == (
            f"error: cannot write the lake at {blocked / 'lake'}: {blocked} is not a writable "
            "folder (check STOCKDATA_LAKE_URI)\n"
        )
        assert server.requests == []

        # a key the provider refuses: the first job goes back and the worker stops
        wrong = "sk-WRONG-9191"
        refused = _work(
            _env(pg_url, tmp_path, lake_dir, queue_env, STOCKDATA_MARKETSTACK_API_KEY=wrong, **base)
        )
        assert refused.returncode == 1, refused.stderr
        assert refused.stdout == "jobs: 1 (released=1); rows written: 0\n"
        assert refused.stderr.splitlines()[-1] == (
            "error: worker stopped, its job released for another worker: marketstack: "
            "invalid_access_key: You have not supplied a valid API Access Key."
        )
        assert wrong not in refused.stderr
        assert len(server.requests) == 1
        assert _jobs(seeded) == queued
        assert queue.depth() == len(YEARS)
        assert lake.open_table(lake_settings, lake.EOD_TABLE) is None

        # a good worker completes them all
        good = _work(
            _env(pg_url, tmp_path, lake_dir, queue_env, STOCKDATA_MARKETSTACK_API_KEY=KEY, **base)
        )
    expected = {d: c for d, c in csv_closes(samples / "MSFT.csv").items() if d.year in YEARS}
    assert good.returncode == 0, good.stderr
    assert good.stdout == f"jobs: 4 (succeeded=4); rows written: {len(expected)}\n"
    assert [(status, attempts) for status, attempts, _ in _jobs(seeded)] == [
        (catalog.JobStatus.SUCCEEDED, 1)
    ] * len(YEARS)
    assert sum(rows or 0 for _, _, rows in _jobs(seeded)) == len(expected)
    assert lake_count(lake_settings) == (len(expected), len(expected))
    assert queue.depth() == 0
