"""The loopback HTTP server every provider stub builds on: routing, recording, faults."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

FaultKind = Literal["status", "delay", "truncate", "reset", "error", "raw", "trickle"]


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour, consumed by the next request the stub receives.

    - `Fault.status(429, retry_after=1)`: the provider's error body for that status
      (its documented code, e.g. Marketstack `rate_limit_reached`) with `Retry-After`.
    - `Fault.delay(seconds)`: sleep before answering normally (client timeouts).
    - `Fault.truncate()`: send only the first half of the body (invalid JSON).
    - `Fault.reset()`: declare the full Content-Length, send half, close the connection.
    - `Fault.error(code, status)`: the provider's error body with `code` under `status`.
    - `Fault.error_200(code)`: the same under HTTP 200, which some providers do.
    - `Fault.raw(status, body)`: any status and body, verbatim.
    - `Fault.trickle(pieces, gap)`: the normal answer in `pieces` writes `gap` seconds apart.
    """

    kind: FaultKind
    http_status: int = 200
    retry_after: float | None = None
    seconds: float = 0.0
    code: str | None = None
    message: str | None = None
    body: bytes | None = None
    content_type: str = "application/json"
    pieces: int = 1

    @classmethod
    def trickle(cls, pieces: int, gap: float) -> Fault:
        return cls("trickle", pieces=pieces, seconds=gap)

    @classmethod
    def status(cls, http_status: int, *, retry_after: float | None = None) -> Fault:
        return cls("status", http_status=http_status, retry_after=retry_after)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        return cls("delay", seconds=seconds)

    @classmethod
    def truncate(cls) -> Fault:
        return cls("truncate")

    @classmethod
    def reset(cls) -> Fault:
        return cls("reset")

    @classmethod
    def error(
        cls,
        code: str,
        http_status: int,
        *,
        message: str | None = None,
        retry_after: float | None = None,
    ) -> Fault:
        return cls(
            "error", http_status=http_status, code=code, message=message, retry_after=retry_after
        )

    @classmethod
    def error_200(cls, code: str, *, message: str | None = None) -> Fault:
        return cls("error", http_status=200, code=code, message=message)

    @classmethod
    def raw(
        cls, http_status: int, body: bytes | str, *, content_type: str = "application/json"
    ) -> Fault:
        data = body.encode() if isinstance(body, str) else body
        return cls("raw", http_status=http_status, body=data, content_type=content_type)


@dataclass(frozen=True)
class RecordedRequest:
    """What the stub received: path, query parameters (keys included), selected headers."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.params}"


@dataclass
class Response:
    """What a route returns: status, JSON-able body (or bytes), extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


Route = Callable[[RecordedRequest, list[str]], Response]


class StubServer:
    """A `ThreadingHTTPServer` on a free 127.0.0.1 port, run in a daemon thread.

    Subclasses implement `route(request)` and `error_response(code, status, message)`
    (the provider's documented error shape) and `default_code(status)`.
    """

    #: Path prefix of `base_url` (e.g. "/v2").
    base_path: str = ""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> StubServer:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle + delayed ACK
                # add ~40 ms to every keep-alive response
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                stub._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "stub not started"
        return int(self._server.server_address[1])

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}{self.base_path}"

    # -- faults and recording -------------------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each request consumes the next one until the queue is empty."""
        with self._lock:
            self._faults.extend(faults)

    def clear(self) -> None:
        """Forget recorded requests and pending faults."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    # -- to implement ---------------------------------------------------------------------

    def route(self, request: RecordedRequest) -> Response:
        raise NotImplementedError

    def error_response(self, code: str, status: int, message: str | None = None) -> Response:
        raise NotImplementedError

    def default_code(self, status: int) -> str:
        return {429: "rate_limit_reached", 401: "unauthorized", 404: "not_found"}.get(
            status, "internal_error"
        )

    # -- plumbing -------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        request = RecordedRequest(
            method=handler.command,
            path=parts.path,
            params=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={
                k: v for k, v in handler.headers.items() if k.lower() in {"authorization", "accept"}
            },
        )
        with self._lock:
            self.requests.append(request)
            fault = self._faults.popleft() if self._faults else None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._respond(handler, request, fault)

    def _respond(
        self, handler: BaseHTTPRequestHandler, request: RecordedRequest, fault: Fault | None
    ) -> None:
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
            fault = None
        response: Response
        if fault is None or fault.kind in {"truncate", "reset", "trickle"}:
            try:
                response = self.route(request)
            except Exception as exc:  # a stub bug must show up as a 500, not a hang
                response = self.error_response("internal_error", 500, f"stub error: {exc!r}")
        elif fault.kind == "status":
            response = self.error_response(self.default_code(fault.http_status), fault.http_status)
        elif fault.kind == "error":
            assert fault.code is not None
            response = self.error_response(fault.code, fault.http_status, fault.message)
        else:
            assert fault.body is not None
            response = Response(fault.http_status, fault.body, content_type=fault.content_type)
        if fault is not None and fault.retry_after is not None:
            response.headers["Retry-After"] = f"{fault.retry_after:g}"
        body = response.encoded()
        declared = len(body)
        if fault is not None and fault.kind == "truncate":
            body = body[: max(1, len(body) // 2)]
            declared = len(body)
        elif fault is not None and fault.kind == "reset":
            body = body[: max(1, len(body) // 2)]
        handler.send_response(response.status)
        handler.send_header("Content-Type", response.content_type)
        handler.send_header("Content-Length", str(declared))
        for name, value in response.headers.items():
            handler.send_header(name, value)
        if fault is not None and fault.kind == "reset":
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        if fault is not None and fault.kind == "trickle":
            size = -(-len(body) // fault.pieces)
            with contextlib.suppress(OSError):  # the client may give up half-way
                for start in range(0, len(body), size):
                    handler.wfile.write(body[start : start + size])
                    handler.wfile.flush()
                    time.sleep(fault.seconds)
            return
        handler.wfile.write(body)
        handler.wfile.flush()
        if fault is not None and fault.kind == "reset":
            with contextlib.suppress(OSError):
                handler.connection.shutdown(2)


# -- helpers shared by the stubs ----------------------------------------------------------


def parse_date(value: str | dt.date) -> dt.date:
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value[:10])


def read_csv_rows(path: str | Path) -> Iterator[dict[str, str]]:
    """Rows of a Date/Open/High/Low/Close/Volume CSV (the bundled samples' format)."""
    with Path(path).open(newline="") as f:
        yield from csv.DictReader(f)


def csv_bars(path: str | Path) -> list[dict[str, Any]]:
    """Bars (date, open, high, low, close, volume[, adj_close]) from a sample-style CSV."""
    out = []
    for row in read_csv_rows(path):
        bar: dict[str, Any] = {
            "date": row["Date"],
            "open": float(row["Open"]),
            "high": float(row["High"]),
            "low": float(row["Low"]),
            "close": float(row["Close"]),
            "volume": float(row["Volume"]),
        }
        if row.get("Adj Close"):
            bar["adj_close"] = float(row["Adj Close"])
        out.append(bar)
    return out


def page(
    items: Sequence[Any], params: Mapping[str, str], *, default_limit: int = 100
) -> tuple[list[Any], dict[str, int]]:
    limit = int(params.get("limit") or default_limit)
    offset = int(params.get("offset") or 0)
    chunk = list(items[offset : offset + limit])
    return chunk, {"limit": limit, "offset": offset, "count": len(chunk), "total": len(items)}
