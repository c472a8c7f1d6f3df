"""A loopback Flagsmith: serves the SDK's environment-document endpoint for local evaluation.

`GET /api/v1/environment-document/` with header `X-Environment-Key: ser....` answers the
current document (as Flagsmith's API does); a wrong or missing key gets 401 with Flagsmith's
`{"detail": ...}` body. `set_flags()` changes the document; `requests` counts every request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from query_api._flags import environment_document

DOCUMENT_PATH = "/api/v1/environment-document/"


class FlagsmithStub:
    """`with FlagsmithStub({"ticker_api_enabled": True}, key="ser.x") as stub: stub.api_url`."""

    def __init__(self, flags: Mapping[str, bool], *, key: str = "ser.test-environment") -> None:
        self.key = key
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._document = environment_document(flags, api_key="test-environment", name="test")
        self._server: ThreadingHTTPServer | None = None

    def set_flags(self, flags: Mapping[str, bool]) -> None:
        with self._lock:
            self._document = environment_document(flags, api_key="test-environment", name="test")

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def start(self) -> FlagsmithStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                stub._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FlagsmithStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "stub not started"
        return int(self._server.server_address[1])

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/"

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        key = handler.headers.get("X-Environment-Key", "")
        with self._lock:
            self.requests.append((handler.path, key))
            document = self._document
        if handler.path.split("?", 1)[0] != DOCUMENT_PATH:
            status, body = 404, {"detail": "Not found."}
        elif key != self.key:
            status, body = 401, {"detail": "Invalid or missing Environment Key"}
        else:
            status, body = 200, document
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Connection", "close")
        handler.close_connection = True
        handler.end_headers()
        handler.wfile.write(data)
