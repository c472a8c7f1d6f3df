"""The SQL sandbox behind `POST /v1/sql`: one read-only query over the lake's views.

Two layers. In this process, the statement is parsed by DuckDB itself and refused unless it
is exactly one SELECT/WITH whose relations are the views `eod`, `eod_deltas`, `eod_rejects`
(or its own CTEs) and whose table functions are pure generators (`range`, `unnest`...).
In a worker process (`query_api._sandbox_worker`), DuckDB runs it with external access off
except the lake's directory, extension install/load off, Python replacement scans off, the
configuration locked, and memory and thread limits set. A query past its time limit gets
its worker killed (SIGKILL) and replaced: the sandbox keeps serving.
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from pydantic import Field

from lake import LakeSettings
from query_api._sandbox_worker import write_frame
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

#: Relations a query may name (besides its own CTEs).
VIEWS = frozenset({"eod", "eod_deltas", "eod_rejects"})
#: Table functions that read nothing outside the query itself.
PURE_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
#: Leading keywords of a statement that only reads.
_READ_KEYWORDS = frozenset({"select", "with", "from", "values", "("})


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
        default="512MB", description="DuckDB memory_limit of each worker."
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
        description="A worker checks the lake for a new table version at most this often.",
    )


@dataclass(frozen=True)
class SqlResult:
    """What a query returned: the rows, whether caps cut them off, and its run time."""

    table: pa.Table
    truncated: bool
    elapsed_ms: float


def _refuse(reason: str) -> InvalidInputError:
    return InvalidInputError(f"SQL refused: {reason}", code="sql-refused")


def _strip_leading_comments(sql: str) -> str:
    text = sql.lstrip()
    while True:
        if text.startswith("--"):
            text = text.split("\n", 1)[1].lstrip() if "\n" in text else ""
        elif text.startswith("/*"):
            end = text.find("*/")
            text = text[end + 2 :].lstrip() if end >= 0 else ""
        else:
            return text


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


class StatementChecker:
    """Parses SQL with DuckDB (in memory, nothing attached) and refuses all but plain reads."""

    def __init__(self, *, max_length: int) -> None:
        self._max_length = max_length
        self._lock = threading.Lock()
        self._con = duckdb.connect(
            config={
                "enable_external_access": False,
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "python_enable_replacements": False,
            }
        )

    def check(self, sql: str) -> str:
        """The one statement in `sql`, or InvalidInputError(code="sql-refused") saying why not."""
        if not sql.strip():
            raise _refuse("the query is empty")
        if len(sql) > self._max_length:
            raise _refuse(f"the query is longer than {self._max_length} characters")
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise InvalidInputError(
                f"SQL does not parse: {str(exc).strip().splitlines()[0]}", code="sql-invalid"
            ) from exc
        if len(statements) != 1:
            raise _refuse(f"exactly one statement is allowed, got {len(statements)}")
        statement = statements[0]
        if statement.type != duckdb.StatementType.SELECT:
            raise _refuse(f"only SELECT or WITH queries are allowed, not {statement.type.name}")
        text = statement.query
        head = _strip_leading_comments(text)
        first = head[:1] if head.startswith("(") else head.split(None, 1)[0].lower()
        if first not in _READ_KEYWORDS:
            raise _refuse(f"only SELECT or WITH queries are allowed, not {first.upper()}")
        with self._lock:
            row = self._con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()
        tree = json.loads(row[0]) if row else {"error": True}
        if tree.get("error"):
            raise _refuse(f"only SELECT or WITH queries are allowed ({tree.get('error_message')})")
        ctes: set[str] = set()
        for node in _walk(tree):
            cte_map = node.get("cte_map")
            if isinstance(cte_map, dict):
                ctes.update(str(e.get("key", "")).lower() for e in cte_map.get("map", []))
        for node in _walk(tree):
            kind = node.get("type")
            if kind == "TABLE_FUNCTION":
                name = str(node.get("function", {}).get("function_name", "")).lower()
                if name not in PURE_TABLE_FUNCTIONS:
                    raise _refuse(
                        f"table function {name}() is not allowed; query the views "
                        "eod, eod_deltas, eod_rejects"
                    )
            elif kind == "BASE_TABLE":
                name = str(node.get("table_name", "")).lower()
                schema = str(node.get("schema_name", "")).lower()
                catalog = str(node.get("catalog_name", "")).lower()
                if (catalog or schema not in {"", "main"}) or (
                    name not in VIEWS and not (name in ctes and not schema)
                ):
                    shown = ".".join(p for p in (catalog, schema, name) if p)
                    raise _refuse(
                        f"relation {shown!r} is not allowed; query the views "
                        "eod, eod_deltas, eod_rejects"
                    )
        return text

    def close(self) -> None:
        self._con.close()


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, lake_settings: LakeSettings, settings: SqlSettings) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("_sandbox_worker.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin
        self._out_fd = self.proc.stdout.fileno()
        self.ready = False
        self.temp_directory = tempfile.mkdtemp(prefix="stockdata-sql-")
        limits = {
            name: getattr(settings, name)
            for name in (
                "sql_threads",
                "sql_memory_limit",
                "sql_max_bytes",
                "sql_snapshot_poll_seconds",
                "sql_max_temp_size",
            )
        }
        limits["temp_directory"] = self.temp_directory
        write_frame(self._in, ("init", lake_settings, limits))

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

    def receive(self, timeout: float) -> Any:
        import pickle

        deadline = time.monotonic() + timeout
        size = int.from_bytes(self._read_exact(8, deadline), "big")
        return pickle.loads(self._read_exact(size, deadline))  # noqa: S301 - our own child

    def wait_ready(self, timeout: float) -> None:
        if self.ready:
            return
        message = self.receive(timeout)
        if message[0] != "ready":
            raise EOFError(f"sandbox worker failed to start: {message!r}")
        self.ready = True

    def send(self, obj: object) -> None:
        write_frame(self._in, obj)

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
            self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.kill()


class SqlSandbox:
    """A pool of locked-down DuckDB worker processes answering one query each at a time."""

    def __init__(self, lake_settings: LakeSettings, settings: SqlSettings) -> None:
        self._lake = lake_settings
        self._settings = settings
        self._checker = StatementChecker(max_length=settings.sql_max_length)
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker processes (they become ready in the background)."""
        for _ in range(self._settings.sql_workers):
            self._spawn()

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

    def _spawn(self) -> None:
        with self._lock:
            if self._closed:
                return
            worker = _Worker(self._lake, self._settings)
            self._all.add(worker)
        self._idle.put(worker)

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._all.discard(worker)
        worker.kill()
        self._spawn()

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for operations and tests)."""
        with self._lock:
            return sorted(w.proc.pid for w in self._all)

    # -- queries --------------------------------------------------------------------------

    def check(self, sql: str) -> str:
        """Refuse anything but one plain read (see `StatementChecker.check`)."""
        return self._checker.check(sql)

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
        deadline = time.monotonic() + timeout
        while True:
            try:
                worker = self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TransientError(
                    "every SQL worker is busy; retry shortly", code="sql-busy", retry_after=1.0
                ) from None
            if worker.proc.poll() is None:
                break
            log.warning("sql_worker_gone", pid=worker.proc.pid, returncode=worker.proc.returncode)
            self._discard(worker)
        try:
            worker.wait_ready(self._settings.sql_start_timeout_seconds)
        except (TimeoutError, EOFError, OSError):
            self._discard(worker)
            raise TransientError(
                "the SQL worker did not start; retry shortly", code="sql-busy", retry_after=1.0
            ) from None
        try:
            worker.send(("run", text, max_rows))
            reply = worker.receive(timeout)
        except TimeoutError:
            log.warning("sql_timeout", timeout_seconds=timeout, pid=worker.proc.pid)
            self._discard(worker)
            raise ResourceLimitError(
                f"the query ran longer than {timeout:g} s and was stopped; narrow it down",
                code="sql-timeout",
            ) from None
        except (EOFError, OSError, BrokenPipeError):
            log.warning("sql_worker_died", pid=worker.proc.pid, returncode=worker.proc.poll())
            self._discard(worker)
            raise ResourceLimitError(
                "the query was aborted (the worker ran out of resources); narrow it down",
                code="sql-aborted",
            ) from None
        self._idle.put(worker)
        if reply[0] == "error":
            raise _error(reply[1], reply[2])
        _, ipc, truncated, elapsed_ms = reply
        table = pa.ipc.open_stream(ipc).read_all()
        return SqlResult(table=table, truncated=bool(truncated), elapsed_ms=float(elapsed_ms))


def _error(code: str, message: str) -> StockDataError:
    if code == "sql-refused":
        return _refuse(message)
    if code in {"sql-memory", "sql-timeout"}:
        return ResourceLimitError(f"the query hit a resource limit: {message}", code=code)
    if code == "not-found":
        return NotFoundError(message)
    if code in {"sql-invalid", "sql-error"}:
        return InvalidInputError(f"SQL failed: {message}", code=code)
    return StockDataError(f"SQL failed: {message}", code=code)
