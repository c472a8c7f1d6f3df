"""The SQL sandbox behind `POST /v1/sql`: one read-only query over the lake's views.

Four layers, each tested on its own (ADR 0005):
1. the statement check (`query_api._sql_check`): an allow-list over DuckDB's parse tree,
   scope by scope: known query shapes, the three views or CTEs in scope, known-safe functions;
2. the data: the worker loads no extension; it reads a pinned snapshot's Parquet files
   (`lake.local_snapshot`, copied to local disk for a lake on ADLS) with DuckDB's built-in
   reader, external access off except those files, the configuration locked;
3. the OS (`query_api._confine`): Landlock (read only the Python install and the snapshot,
   write only a private temporary directory, execute nothing, no TCP), seccomp (no
   sockets, no exec), no new privileges, an address-space limit for the whole worker;
4. the process: `python -I -S` with a minimal environment (no secrets), its own session (a
   terminal's Ctrl-C does not reach it), killed (SIGKILL) and replaced past the time limit;
   answers travel as JSON and Arrow IPC, never pickle.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from pydantic import ByteSize, Field

import lake
from lake import LakeSettings
from query_api._sandbox_worker import MAX_CONTROL_FRAME, write_frame
from query_api._sql_check import VIEWS, StatementChecker, refuse
from stockdata.config import StockdataSettings
from stockdata.errors import (
    InvalidInputError,
    NotFoundError,
    ResourceLimitError,
    StockDataError,
    TransientError,
)
from stockdata.logs import get_logger

log = get_logger(__name__)

__all__ = ["VIEWS", "SqlResult", "SqlSandbox", "SqlSettings", "StatementChecker"]


class SqlSettings(StockdataSettings):
    """Limits of the SQL sandbox."""

    sql_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A query running longer is killed with its worker."
    )
    sql_max_rows: int = Field(
        default=100_000, ge=1, description="Rows returned at most; more are cut off (truncated)."
    )
    sql_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Arrow bytes returned at most; more are cut off (truncated).",
    )
    sql_max_length: int = Field(
        default=20_000, ge=16, description="Longest SQL text accepted, in characters."
    )
    sql_memory_limit: str = Field(
        default="384MB", description="DuckDB memory_limit of each worker."
    )
    sql_worker_address_space: ByteSize = Field(
        default=ByteSize(768 * 1024**2),
        description="Address-space limit (RLIMIT_AS) of each whole worker process: DuckDB, "
        "Python, pyarrow and the result together can never map more.",
    )
    sql_threads: int = Field(default=1, ge=1, description="DuckDB threads of each worker.")
    sql_max_temp_size: str = Field(
        default="1GB", description="Disk a worker may spill to (its own temporary directory)."
    )
    sql_workers: int = Field(
        default=1, ge=1, le=32, description="Worker processes (queries run in parallel)."
    )
    sql_start_timeout_seconds: float = Field(
        default=60.0, gt=0, description="How long a new worker may take to become ready."
    )
    sql_snapshot_poll_seconds: float = Field(
        default=5.0,
        ge=0,
        description="The sandbox checks the lake for a new table version at most this often.",
    )
    sql_mirror_dir: Path | None = Field(
        default=None,
        description="Local directory the Parquet files of a lake on ADLS are copied into for "
        "the workers (default: a directory under the system temp dir).",
    )
    sql_require_landlock: bool = Field(
        default=False,
        description="Refuse to run SQL on a kernel without Landlock (the worker stays "
        "confined by seccomp, rlimits and DuckDB's own settings otherwise).",
    )


@dataclass(frozen=True)
class SqlResult:
    """What a query returned: the rows, whether caps cut them off, and its run time."""

    table: pa.Table
    truncated: bool
    elapsed_ms: float


def _stdlib_path() -> list[str]:
    """The standard library's entries of this interpreter's sys.path (zip, lib, lib-dynload)."""
    base = os.path.realpath(sys.base_prefix)
    return [
        p
        for p in sys.path
        if p and os.path.realpath(p).startswith(base + os.sep) and "site-packages" not in p
    ]


def _package_dirs() -> list[str]:
    """Where DuckDB and pyarrow are installed: the only packages the worker imports."""
    dirs = []
    for name in ("duckdb", "_duckdb", "pyarrow", "numpy"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin).resolve()
        dirs.append(str(origin.parent if spec.submodule_search_locations else origin))
    return dirs


def _import_path() -> list[str]:
    """The worker's whole sys.path: this folder, the standard library, DuckDB's site-packages."""
    here = str(Path(__file__).resolve().parent)
    spec = importlib.util.find_spec("duckdb")
    site = [str(Path(spec.origin).resolve().parent.parent)] if spec and spec.origin else []
    return list(dict.fromkeys([here, *_stdlib_path(), *site]))


def _worker_reads() -> list[str]:
    """What the worker may read besides the snapshot: the Python it runs, nothing else."""
    here = str(Path(__file__).resolve().parent)
    return [*_SYSTEM_READ, here, *_stdlib_path(), *_package_dirs()]


#: System paths every dynamically linked Python needs to read (shared libraries, its own
#: cgroup limits, which DuckDB reads to size its memory).
_SYSTEM_READ = (
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/etc/ld.so.cache",
    "/proc/self",
    "/sys/fs/cgroup",
    "/dev/null",
    "/dev/urandom",
)
#: The worker's whole environment: nothing of the server's (no secrets, no PYTHON*).
_WORKER_ENV = {
    "LC_ALL": "C.UTF-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "ARROW_DEFAULT_MEMORY_POOL": "system",
}


class _Worker:
    """One confined worker process bound to one snapshot of the lake, and its pipes."""

    def __init__(self, snapshot: lake.Snapshot, settings: SqlSettings) -> None:
        self.version = snapshot.version
        self.key = snapshot.key
        self.temp_directory = tempfile.mkdtemp(prefix="stockdata-sql-")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                str(Path(__file__).with_name("_sandbox_worker.py")),
                *_import_path(),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=dict(_WORKER_ENV),
            close_fds=True,
            start_new_session=True,
            cwd=self.temp_directory,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin
        self._out_fd = self.proc.stdout.fileno()
        self.ready = False
        self.confinement: dict[str, object] = {}
        files = snapshot.paths
        init = {
            "op": "init",
            "version": snapshot.version,
            "views": lake.snapshot_views_sql(snapshot),
            "allowed_paths": files,
            "read": [*_worker_reads(), *snapshot.roots],
            "list_only": _import_path(),
            "temp_directory": self.temp_directory,
            "threads": settings.sql_threads,
            "memory_limit": settings.sql_memory_limit,
            "max_temp_size": settings.sql_max_temp_size,
            "max_bytes": settings.sql_max_bytes,
            "address_space": int(settings.sql_worker_address_space),
            "require_landlock": settings.sql_require_landlock,
        }
        self._max_reply = 2 * settings.sql_max_bytes + (1 << 20)
        write_frame(self._in, json.dumps(init).encode())

    def _read_exact(self, size: int, deadline: float) -> bytes:
        chunks = []
        while size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            readable, _, _ = select.select([self._out_fd], [], [], remaining)
            if not readable:
                raise TimeoutError
            chunk = os.read(self._out_fd, min(size, 1 << 20))
            if not chunk:
                raise EOFError("sandbox worker exited")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _frame(self, deadline: float, limit: int) -> bytes:
        size = int.from_bytes(self._read_exact(8, deadline), "big")
        if size > limit:
            raise EOFError(f"the worker sent a frame of {size} bytes (at most {limit})")
        return self._read_exact(size, deadline)

    def receive(self, timeout: float) -> dict[str, object]:
        """The next JSON control frame (anything else is a broken worker: EOFError)."""
        deadline = time.monotonic() + timeout
        try:
            message = json.loads(self._frame(deadline, MAX_CONTROL_FRAME))
        except (ValueError, RecursionError) as exc:
            raise EOFError("the worker sent a malformed frame") from exc
        if not isinstance(message, dict):
            raise EOFError("the worker sent a malformed frame")
        return message

    def receive_table(self, timeout: float) -> pa.Table:
        """The Arrow IPC frame that follows an `ok` reply, parsed and fully validated."""
        data = self._frame(time.monotonic() + timeout, self._max_reply)
        try:
            table = pa.ipc.open_stream(pa.BufferReader(data)).read_all()
            table.validate(full=True)
        except (pa.ArrowException, ValueError) as exc:
            raise EOFError("the worker sent a malformed Arrow stream") from exc
        return table

    def wait_ready(self, timeout: float) -> None:
        if self.ready:
            return
        message = self.receive(timeout)
        if message.get("op") == "failed":
            raise EOFError(f"sandbox worker failed to start: {message.get('message')}")
        if message.get("op") != "ready":
            raise EOFError("sandbox worker failed to start")
        confinement = message.get("confinement")
        self.confinement = dict(confinement) if isinstance(confinement, dict) else {}
        self.ready = True
        log.info("sql_worker_ready", pid=self.proc.pid, version=self.version, **self.confinement)

    def send(self, obj: dict[str, object]) -> None:
        write_frame(self._in, json.dumps(obj).encode())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        shutil.rmtree(self.temp_directory, ignore_errors=True)

    def stop(self) -> None:
        """Close the pipe (the worker exits on EOF); kill it if it lingers."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.kill()


class SqlSandbox:
    """A pool of confined worker processes answering one query each at a time.

    Workers are bound to the snapshot they started with; when the lake gains a version, the
    next checkout replaces an idle worker of the old one (the old keeps answering until
    then, so a query never sees half of a new version).
    """

    def __init__(self, lake_settings: LakeSettings, settings: SqlSettings) -> None:
        self._lake = lake_settings
        self._settings = settings
        self._checker = StatementChecker(max_length=settings.sql_max_length)
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._snapshot_lock = threading.Lock()
        self._snapshot: lake.Snapshot | None = None
        self._checked = -float("inf")
        self._closed = False
        self._mirror: Path | None = None
        if lake_settings.is_azure:
            self._mirror = settings.sql_mirror_dir or Path(tempfile.gettempdir()) / (
                "stockdata-sql-mirror"
            )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker processes (they become ready in the background); no lake: later."""
        try:
            snapshot = self.snapshot()
        except NotFoundError:
            return
        self._fill(snapshot)

    def close(self) -> None:
        """Stop every worker."""
        with self._lock:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.stop()
        self._checker.close()

    def __enter__(self) -> SqlSandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def snapshot(self) -> lake.Snapshot:
        """The lake's current snapshot, re-read at most every `sql_snapshot_poll_seconds`."""
        with self._snapshot_lock:
            now = time.monotonic()
            if (
                self._snapshot is None
                or now - self._checked >= self._settings.sql_snapshot_poll_seconds
            ):
                latest = lake.open_table(self._lake, lake.EOD_TABLE)
                if latest is None:
                    self._checked = now
                    self._snapshot = None
                    raise NotFoundError(
                        f"no eod_prices table at {self._lake.table_uri(lake.EOD_TABLE)}: load "
                        "data first (`stockdata ingest load` or `stockdata demo --no-serve`)"
                    )
                actions = lake.open_table(self._lake, lake.ACTIONS_TABLE)
                key = (int(latest.version()), None if actions is None else int(actions.version()))
                if self._snapshot is None or key != self._snapshot.key:
                    self._snapshot = lake.local_snapshot(self._lake, mirror=self._mirror)
                self._checked = now
            return self._snapshot

    def _fill(self, snapshot: lake.Snapshot) -> None:
        while True:
            with self._lock:
                if self._closed or len(self._all) >= self._settings.sql_workers:
                    return
                worker = _Worker(snapshot, self._settings)
                self._all.add(worker)
            self._idle.put(worker)

    def _discard(self, worker: _Worker) -> None:
        """Kill a worker and start its replacement at once (it warms up while idle)."""
        with self._lock:
            self._all.discard(worker)
        worker.kill()
        if self._snapshot is not None:
            self._fill(self._snapshot)

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for operations and tests)."""
        with self._lock:
            return sorted(w.proc.pid for w in self._all)

    @property
    def confinement(self) -> dict[str, object]:
        """What the OS confinement of the last ready worker applied (for health and tests)."""
        with self._lock:
            for worker in self._all:
                if worker.ready:
                    return dict(worker.confinement)
        return {}

    # -- queries --------------------------------------------------------------------------

    def check(self, sql: str) -> str:
        """Refuse anything but one plain read (see `StatementChecker.check`)."""
        return self._checker.check(sql)

    def _checkout(self, snapshot: lake.Snapshot, deadline: float) -> _Worker:
        while True:
            self._fill(snapshot)
            try:
                worker = self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TransientError(
                    "every SQL worker is busy; retry shortly", code="sql-busy", retry_after=1.0
                ) from None
            if worker.proc.poll() is not None:
                log.warning(
                    "sql_worker_gone", pid=worker.proc.pid, returncode=worker.proc.returncode
                )
            elif worker.key != snapshot.key:
                log.info("sql_worker_retired", pid=worker.proc.pid, version=worker.version)
            else:
                return worker
            self._discard(worker)

    def run(self, sql: str, *, limit: int | None = None) -> SqlResult:
        """Run one checked query in a worker; rows beyond `limit`/caps are cut off.

        Blocking: call it from a worker thread in async code. Raises InvalidInputError
        (`sql-refused`, `sql-invalid`, `sql-error`), ResourceLimitError (`sql-timeout`,
        `sql-memory`, `sql-aborted`), TransientError (`sql-busy`) or NotFoundError.
        """
        if self._closed:
            raise TransientError("the SQL sandbox is shut down", code="sql-busy")
        text = self.check(sql)
        if limit is not None and limit < 1:
            raise InvalidInputError("limit must be at least 1", code="sql-invalid")
        max_rows = min(limit or self._settings.sql_max_rows, self._settings.sql_max_rows)
        timeout = self._settings.sql_timeout_seconds
        snapshot = self.snapshot()
        worker = self._checkout(snapshot, time.monotonic() + timeout)
        try:
            worker.wait_ready(self._settings.sql_start_timeout_seconds)
        except (TimeoutError, EOFError, OSError) as exc:
            log.warning("sql_worker_start_failed", pid=worker.proc.pid, error=str(exc))
            self._discard(worker)
            raise TransientError(
                "the SQL worker did not start; retry shortly", code="sql-busy", retry_after=1.0
            ) from None
        try:
            worker.send({"op": "run", "sql": text, "max_rows": max_rows})
            reply = worker.receive(timeout)
            table = worker.receive_table(timeout) if reply.get("op") == "ok" else None
        except TimeoutError:
            log.warning("sql_timeout", timeout_seconds=timeout, pid=worker.proc.pid)
            self._discard(worker)
            raise ResourceLimitError(
                f"the query ran longer than {timeout:g} s and was stopped; narrow it down",
                code="sql-timeout",
            ) from None
        except (EOFError, OSError) as exc:
            log.warning(
                "sql_worker_died",
                pid=worker.proc.pid,
                returncode=worker.proc.poll(),
                error=str(exc),
            )
            self._discard(worker)
            raise ResourceLimitError(
                "the query was aborted (the worker ran out of resources); narrow it down",
                code="sql-aborted",
            ) from None
        self._idle.put(worker)
        if table is None:
            raise _error(str(reply.get("code", "sql-error")), str(reply.get("message", "")))
        return SqlResult(
            table=table,
            truncated=bool(reply.get("truncated")),
            elapsed_ms=float(reply.get("elapsed_ms", 0.0)),  # type: ignore[arg-type]
        )


def _error(code: str, message: str) -> StockDataError:
    if code == "sql-refused":
        return refuse(message)
    if code in {"sql-memory", "sql-timeout"}:
        return ResourceLimitError(f"the query hit a resource limit: {message}", code=code)
    if code == "not-found":
        return NotFoundError(message)
    # Anything else the worker met came from the query itself (a cast, an Arrow conversion).
    return InvalidInputError(
        f"SQL failed: {message}", code=code if code == "sql-invalid" else "sql-error"
    )
