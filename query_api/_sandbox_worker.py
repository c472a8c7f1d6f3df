"""The SQL sandbox's worker process: one locked-down DuckDB connection over the lake.

Started by `query_api._sandbox.SqlSandbox` as a script (`python .../_sandbox_worker.py`), so
the child imports only `lake`, DuckDB and pyarrow, not the app package. It
speaks length-prefixed pickle frames on its stdin/stdout (stdout is moved to a private fd
and fd 1 points at stderr, so nothing a library prints can corrupt the protocol). The parent
kills the whole process when a query runs past its time limit: DuckDB's interrupt does not
stop every operator, a SIGKILL does.

Frames in: `("init", LakeSettings, limits)` once (limits: a dict of the `SqlSettings` fields
`sql_threads`, `sql_memory_limit`, `sql_max_bytes`, `sql_snapshot_poll_seconds`,
`sql_max_temp_size`, plus the private `temp_directory`), then `("run", sql, max_rows)`.
Frames out: `("ready",)` once, then per query `("ok", ipc_bytes, truncated, elapsed_ms)` or
`("error", code, message)`.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import time
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from lake import LakeSettings

_HEADER = struct.Struct("!Q")


def write_frame(stream: IO[bytes], obj: object) -> None:
    """Send one pickled object with an 8-byte length prefix."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            raise EOFError("sandbox pipe closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes]) -> Any:
    """Receive one object written by `write_frame`; EOFError when the other side is gone."""
    (size,) = _HEADER.unpack(_read_exact(stream, _HEADER.size))
    return pickle.loads(_read_exact(stream, size))  # noqa: S301 - only our own parent writes


def allowed_directories(lake_settings: LakeSettings) -> list[str]:
    """The only places the locked connection may read: the lake's root (local or az://)."""
    root = lake_settings.root.rstrip("/") + "/"
    return [root]


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def lock_down(
    con: duckdb.DuckDBPyConnection,
    lake_settings: LakeSettings,
    *,
    temp_directory: str | None = None,
    max_temp_size: str | None = None,
) -> None:
    """Switch external access off (except the lake) and freeze the configuration.

    Runs AFTER the lake's tables are attached and the extensions loaded: the Delta
    extension keeps reading the lake's files because its root is in `allowed_directories`.
    DuckDB also allows its own spill directory, so that is set to a private one first.
    """
    if temp_directory is not None:
        con.execute(f"SET temp_directory = {_literal(temp_directory)}")
    if max_temp_size is not None:
        con.execute(f"SET max_temp_directory_size = {_literal(max_temp_size)}")
    dirs = ", ".join(_literal(d) for d in allowed_directories(lake_settings))
    con.execute(f"SET allowed_directories = [{dirs}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET python_enable_replacements = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")


def locked_connection(
    lake_settings: LakeSettings,
    *,
    threads: int,
    memory_limit: str,
    temp_directory: str | None = None,
    max_temp_size: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake's views, locked down as the sandbox runs it."""
    import lake

    con = lake.connect(lake_settings, threads=threads, memory_limit=memory_limit)
    lock_down(con, lake_settings, temp_directory=temp_directory, max_temp_size=max_temp_size)
    return con


class _Session:
    """The worker's connection, rebuilt when the lake's table gains a new version."""

    def __init__(self, lake_settings: LakeSettings, limits: dict[str, Any]) -> None:
        self.lake_settings = lake_settings
        self.threads = int(limits["sql_threads"])
        self.memory_limit = str(limits["sql_memory_limit"])
        self.max_bytes = int(limits["sql_max_bytes"])
        self.poll_seconds = float(limits["sql_snapshot_poll_seconds"])
        self.temp_directory = limits.get("temp_directory")
        self.max_temp_size = limits.get("sql_max_temp_size")
        self.con: duckdb.DuckDBPyConnection | None = None
        self.version: int | None = None
        self.checked = 0.0

    def _latest_version(self) -> int | None:
        import lake

        table = lake.open_table(self.lake_settings, lake.EOD_TABLE)
        return None if table is None else int(table.version())

    def connection(self) -> duckdb.DuckDBPyConnection:
        now = time.monotonic()
        if self.con is not None and now - self.checked < self.poll_seconds:
            return self.con
        latest = self._latest_version()
        self.checked = now
        if self.con is None or latest != self.version:
            fresh = locked_connection(
                self.lake_settings,
                threads=self.threads,
                memory_limit=self.memory_limit,
                temp_directory=self.temp_directory,
                max_temp_size=self.max_temp_size,
            )
            if self.con is not None:
                self.con.close()
            self.con, self.version = fresh, latest
        return self.con

    def run(self, sql: str, max_rows: int) -> tuple[pa.Table, bool]:
        import pyarrow as pa

        con = self.connection().cursor()
        try:
            result = con.execute(sql)
            reader = result.to_arrow_reader(min(max_rows + 1, 8_192))
            batches: list[pa.RecordBatch] = []
            rows = 0
            size = 0
            truncated = False
            max_bytes = self.max_bytes
            for batch in reader:
                if rows + batch.num_rows > max_rows:
                    batch = batch.slice(0, max_rows - rows)
                    truncated = True
                if size + batch.nbytes > max_bytes:
                    per_row = max(1, batch.nbytes // max(1, batch.num_rows))
                    batch = batch.slice(0, max(0, (max_bytes - size) // per_row))
                    truncated = True
                batches.append(batch)
                rows += batch.num_rows
                size += batch.nbytes
                if truncated:
                    break
            return pa.Table.from_batches(batches, schema=reader.schema), truncated
        finally:
            con.close()


def _error_code(exc: BaseException) -> str:
    import duckdb

    if isinstance(exc, duckdb.PermissionException):
        return "sql-refused"
    if isinstance(exc, duckdb.OutOfMemoryException):
        return "sql-memory"
    if isinstance(exc, duckdb.InterruptException):
        return "sql-timeout"
    if isinstance(exc, duckdb.ParserException | duckdb.BinderException | duckdb.CatalogException):
        return "sql-invalid"
    if isinstance(exc, duckdb.Error):
        return "sql-error"
    return "sql-internal"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """Answer queries from `inp` on `out` until the parent closes the pipe."""
    import pyarrow as pa

    message = read_frame(inp)
    if message[0] != "init":
        raise RuntimeError("the sandbox worker expects an init frame first")
    session = _Session(message[1], message[2])
    try:
        session.connection()
    except Exception:  # no lake yet: each query reports why, the worker stays up
        session.con = None
    write_frame(out, ("ready",))
    while True:
        try:
            message = read_frame(inp)
        except EOFError:
            return
        _, sql, max_rows = message
        started = time.perf_counter()
        try:
            table, truncated = session.run(sql, int(max_rows))
        except Exception as exc:
            from stockdata.errors import StockDataError

            if isinstance(exc, StockDataError):
                write_frame(out, ("error", exc.code, _one_line(exc)))
            else:
                write_frame(out, ("error", _error_code(exc), _one_line(exc)))
            continue
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        write_frame(out, ("ok", sink.getvalue().to_pybytes(), truncated, elapsed_ms))


def main() -> None:
    """Entry point: move the protocol off fd 1, then serve."""
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    inp = os.fdopen(0, "rb", buffering=0)
    out = os.fdopen(protocol_fd, "wb")
    serve(inp, out)


if __name__ == "__main__":
    # Run as a script: drop this file's folder from the path so nothing in it shadows a package.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    main()
