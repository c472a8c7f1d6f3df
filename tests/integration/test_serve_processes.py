"""`stockdata serve` stops cleanly: the embedded Postgres it started stops with it on SIGINT
and SIGTERM, a busy port or a bad setting is one line before listening, logs are one format."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog import DatabaseSettings
from tests._services import free_port, wait_for_port


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="stockdata-serve-"))
    yield path
    shutil.rmtree(DatabaseSettings(home=path).pgdata, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKDATA_")}
    env.update({"STOCKDATA_HOME": str(home), "STOCKDATA_SQL_WORKERS": "1", **extra})
    return env


def _serve(home: Path, port: int, server: str) -> list[str]:
    return [sys.executable, "-m", "stockdata", "--log-json", "serve", "--port", str(port),
            "--server", server]  # fmt: skip


@pytest.mark.timeout(240)
@pytest.mark.parametrize("server", ["granian", "uvicorn"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_stops_its_embedded_postgres_and_refuses_a_busy_port(
    home: Path, server: str, signum: int
) -> None:
    port = free_port()
    stderr = home / "stderr.log"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            _serve(home, port, server),
            env=_env(home),
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    postmaster = DatabaseSettings(home=home).pgdata / "postmaster.pid"
    try:
        wait_for_port(port, timeout=120, proc=proc)  # type: ignore[arg-type]
        assert postmaster.exists()
        busy = subprocess.run(
            _serve(home, port, server), env=_env(home), capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert (busy.returncode, busy.stderr) == (
            1,
            f"error: port {port} on 127.0.0.1 is already in use (another `stockdata "
            "serve`?): stop it or choose --port\n",
        )
        os.kill(proc.pid, signum)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # one worker per core by default; a single uvicorn process re-raises SIGTERM once shut
    # down (the conventional 128 + 15), its multi-process supervisor exits 0
    workers = len(os.sched_getaffinity(0))
    assert code == (143 if (server, signum, workers) == ("uvicorn", signal.SIGTERM, 1) else 0)
    deadline = time.monotonic() + 60
    while postmaster.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not postmaster.exists()
    text = stderr.read_text()
    assert "Traceback" not in text
    events = [json.loads(line) for line in text.splitlines()]  # every line is a JSON event
    [serving] = [e for e in events if e["event"] == "serving"]
    assert (serving["url"], serving["server"], serving["workers"]) == (
        f"http://127.0.0.1:{port}",
        server,
        workers,
    )
    assert {"flags_offline", "request"} - {e["event"] for e in events} == {"request"}
    assert any(e.get("logger") in {"_granian", "uvicorn.error"} for e in events)


def test_a_missing_flags_file_or_a_bad_setting_is_one_line_before_listening(
    home: Path,
) -> None:
    port = free_port()
    missing = home / "nope" / "flags.json"
    out = subprocess.run(
        _serve(home, port, "granian"),
        env=_env(home, STOCKDATA_FLAGS_FILE=str(missing)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (out.returncode, out.stderr) == (
        1,
        f"error: STOCKDATA_FLAGS_FILE {missing} does not exist: fix the path or unset it\n",
    )
    bad = subprocess.run(
        _serve(home, port, "granian"),
        env=_env(home, STOCKDATA_SQL_WORKERS="many"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: invalid setting STOCKDATA_SQL_WORKERS: ")
    assert bad.stderr.count("\n") == 1
    assert not DatabaseSettings(home=home).pgdata.exists()  # nothing was started
