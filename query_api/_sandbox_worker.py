"""The SQL sandbox's worker process: untrusted SQL over local Parquet files, confined by the OS.

Started by `query_api._sandbox.SqlSandbox` as `python -I -S <this file>`: isolated mode
ignores PYTHON* variables and the user's site directory, and no `site` import means no
`sitecustomize`, `usercustomize` or `.pth` file is ever executed. The parent passes the exact
`sys.path` entries it needs (the standard library, DuckDB, pyarrow, this folder).

Order of start-up, so that every thread the worker ever runs is confined:
1. read the init frame (standard library only);
2. confine the process (`_confine`: rlimits, no new privileges, Landlock: read only the
   Python install and the snapshot's files, write only a private temporary directory,
   execute nothing, no TCP; seccomp: no sockets, no exec);
3. import DuckDB and pyarrow, connect, define the views over the snapshot's Parquet files
   (no extension is loaded: DuckDB's Parquet reader is built in), then lock DuckDB down:
   external access off except those files, no extension loading, configuration locked.

Protocol: length-prefixed frames (8-byte big-endian size). The parent sends JSON; the worker
answers JSON, and for a result one more frame holding an Arrow IPC stream. Nothing is ever
pickled: the parent never deserialises anything but JSON and Arrow from this process.
Frames in: `{"op": "init", ...}` once, then `{"op": "run", "sql": ..., "max_rows": n}`.
Frames out: `{"op": "ready", "confinement": {...}}` once, then per query
`{"op": "ok", "rows": n, "truncated": b, "elapsed_ms": x}` + IPC bytes, or
`{"op": "error", "code": ..., "message": ...}`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import sys
import time
from typing import IO, Any

_HEADER = struct.Struct("!Q")
#: The largest control frame either side accepts (a query is at most a few tens of KB).
MAX_CONTROL_FRAME = 1 << 20


def write_frame(stream: IO[bytes], data: bytes) -> None:
    """Send one frame with an 8-byte length prefix."""
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def write_json(stream: IO[bytes], obj: dict[str, Any]) -> None:
    """Send one JSON control frame."""
    write_frame(stream, json.dumps(obj).encode())


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            raise EOFError("sandbox pipe closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_json(stream: IO[bytes]) -> dict[str, Any]:
    """Receive one JSON control frame; EOFError when the other side is gone."""
    (size,) = _HEADER.unpack(_read_exact(stream, _HEADER.size))
    if size > MAX_CONTROL_FRAME:
        raise EOFError(f"control frame of {size} bytes refused")
    value = json.loads(_read_exact(stream, size))
    if not isinstance(value, dict):
        raise EOFError("control frame is not an object")
    return value


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _error_code(exc: BaseException) -> str:
    import duckdb

    if isinstance(exc, duckdb.PermissionException):
        return "sql-refused"
    if isinstance(exc, duckdb.OutOfMemoryException | MemoryError):
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
    return text[0][:500] if text else type(exc).__name__


class Session:
    """The worker's locked DuckDB connection over one snapshot of the lake."""

    def __init__(self, init: dict[str, Any]) -> None:
        import duckdb

        self.max_bytes = int(init["max_bytes"])
        temp = str(init["temp_directory"])
        con = duckdb.connect(
            config={
                "threads": int(init["threads"]),
                "memory_limit": str(init["memory_limit"]),
                "temp_directory": temp,
                "max_temp_directory_size": str(init["max_temp_size"]),
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "allow_unsigned_extensions": False,
                "allow_community_extensions": False,
                "python_enable_replacements": False,
            }
        )
        con.execute("SET GLOBAL parquet_metadata_cache = true")
        for stmt in init["views"]:
            con.execute(stmt)
        files = ", ".join(_literal(p) for p in init["allowed_paths"])
        con.execute(f"SET allowed_paths = [{files}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        self.con = con

    def run(self, sql: str, max_rows: int) -> tuple[bytes, int, bool]:
        """Run one query; the Arrow IPC stream of at most `max_rows` rows and `max_bytes`."""
        import pyarrow as pa

        cursor = self.con.cursor()
        try:
            reader = cursor.execute(sql).to_arrow_reader(min(max_rows + 1, 8_192))
            sink = pa.BufferOutputStream()
            rows = 0
            size = 0
            truncated = False
            with pa.ipc.new_stream(sink, reader.schema) as writer:
                for batch in reader:
                    if rows + batch.num_rows > max_rows:
                        batch = batch.slice(0, max_rows - rows)
                        truncated = True
                    if size + batch.nbytes > self.max_bytes:
                        per_row = max(1, batch.nbytes // max(1, batch.num_rows))
                        batch = batch.slice(0, max(0, (self.max_bytes - size) // per_row))
                        truncated = True
                    if batch.num_rows:
                        writer.write_batch(batch)
                    rows += batch.num_rows
                    size += batch.nbytes
                    if truncated:
                        break
            return sink.getvalue().to_pybytes(), rows, truncated
        finally:
            cursor.close()


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """Confine this process, then answer queries from `inp` on `out` until the pipe closes."""
    init = read_json(inp)
    if init.get("op") != "init":
        raise RuntimeError("the sandbox worker expects an init frame first")
    from _confine import confine  # the parent puts this folder on sys.path

    status = confine(
        read=init["read"],
        write=[init["temp_directory"]],
        list_only=init.get("list_only", []),
        address_space=init.get("address_space"),
        file_size=init.get("file_size"),
        require_landlock=bool(init.get("require_landlock")),
    )
    try:
        session = Session(init)
    except Exception as exc:  # the snapshot went away or is unreadable: say so, then exit
        write_json(out, {"op": "failed", "message": _one_line(exc)})
        return
    write_json(out, {"op": "ready", "confinement": status, "version": init.get("version")})
    while True:
        try:
            message = read_json(inp)
        except EOFError:
            return
        started = time.perf_counter()
        try:
            ipc, rows, truncated = session.run(str(message["sql"]), int(message["max_rows"]))
        except Exception as exc:
            write_json(out, {"op": "error", "code": _error_code(exc), "message": _one_line(exc)})
            continue
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        header = {"op": "ok", "rows": rows, "truncated": truncated, "elapsed_ms": elapsed_ms}
        write_json(out, {**header, "bytes": len(ipc)})
        write_frame(out, ipc)


def main() -> None:
    """Entry point: argv[1:] is the worker's sys.path; move the protocol off fd 1, then serve."""
    sys.path[:] = [p for p in sys.argv[1:] if p]
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    inp = os.fdopen(0, "rb", buffering=0)
    out = os.fdopen(protocol_fd, "wb")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this worker ends
    with contextlib.suppress(EOFError, BrokenPipeError):
        serve(inp, out)


if __name__ == "__main__":
    main()
