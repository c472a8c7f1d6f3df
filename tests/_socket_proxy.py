"""A Unix-socket forwarder in front of the embedded Postgres: stop it and the catalog is down.

The real server keeps running (other tests share it); only this path to it goes away, the
way a network partition or a restarting database looks to the API.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

_PG_SOCKET = ".s.PGSQL.5432"


class SocketProxy:
    """Forwards every connection on `<dir>/.s.PGSQL.5432` to the real server's socket."""

    def __init__(self, target: Path) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="stockdata-pg-proxy-"))
        self._target = str(target)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.directory / _PG_SOCKET))
        self._listener.listen(64)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = False
        self._hanging = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._hanging:  # accepted, never answered: a partition, not a refusal
                with self._lock:
                    self._open.add(client)
                continue
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._stopped:
                    client.close()
                    upstream.close()
                    return
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def hang(self) -> None:
        """Cut the open connections; accept new ones but never answer them."""
        with self._lock:
            self._hanging = True
            sockets = list(self._open)
            self._open.clear()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def stop(self) -> None:
        """Refuse new connections and cut the open ones (idempotent)."""
        with self._lock:
            self._stopped = True
            sockets = list(self._open)
            self._open.clear()
        with contextlib.suppress(OSError):
            self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            (self.directory / _PG_SOCKET).unlink()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@contextlib.contextmanager
def proxied_postgres(pg_url: str) -> Iterator[tuple[SocketProxy, str]]:
    """A proxy in front of the Postgres at `pg_url` (a socket URL) and the URL through it."""
    url = sa.engine.make_url(pg_url)
    target = Path(str(url.query["host"])) / _PG_SOCKET
    proxy = SocketProxy(target)
    try:
        yield (
            proxy,
            url.update_query_dict({"host": str(proxy.directory)}).render_as_string(
                hide_password=False
            ),
        )
    finally:
        proxy.stop()
        with contextlib.suppress(OSError):
            proxy.directory.rmdir()
