"""Content negotiation, encodings (JSON, CSV, Arrow IPC), ETags and the version-keyed cache."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import msgspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
from litestar import Request, Response
from litestar.response.base import ASGIResponse
from litestar.types import Message, Receive, Scope, Send

from query_api._metrics import ApiMetrics
from stockdata.errors import InvalidInputError

Format = Literal["json", "csv", "arrow"]

JSON = "application/json"
CSV = "text/csv"
ARROW = "application/vnd.apache.arrow.stream"
_MEDIA = {"json": JSON, "csv": CSV, "arrow": ARROW}
#: Accept values answered with JSON without parsing (what clients and load tools send).
_JSON_ACCEPTS = frozenset({"*/*", "application/json"})
_ACCEPT = {
    "application/json": "json",
    "text/csv": "csv",
    "application/vnd.apache.arrow.stream": "arrow",
}


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of request header `name` (lower case), read from the raw scope.

    One or two headers per request do not pay for a parsed `Headers` multidict."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def negotiate(request: Request[Any, Any, Any], allowed: tuple[Format, ...]) -> Format:
    """`format=` wins over `Accept`; JSON when neither names something we serve."""
    raw_query: bytes = request.scope.get("query_string", b"")
    explicit = request.query_params.get("format") if b"format" in raw_query else None
    if explicit is not None:
        if explicit not in allowed:
            raise InvalidInputError(
                f"format={explicit!r} is not served here; choose one of {', '.join(allowed)}",
                code="unsupported-format",
            )
        return cast(Format, explicit)
    accept = header(request.scope, b"accept")
    if not accept or accept in _JSON_ACCEPTS:
        return "json"
    best: tuple[float, Format] | None = None
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        fmt = _ACCEPT.get(media.strip().lower())
        if fmt is None or fmt not in allowed:
            continue
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if q > 0 and (best is None or q > best[0]):
            best = (q, fmt)
    return best[1] if best else "json"


def encode_csv(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


def encode_arrow(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


@dataclass(frozen=True, slots=True)
class Payload:
    """What a route computed: the JSON body and, for tabular routes, the rows as Arrow."""

    body: msgspec.Struct
    table: pa.Table | Callable[[], pa.Table] | None = None

    def arrow(self) -> pa.Table | None:
        return self.table() if callable(self.table) else self.table


@dataclass(frozen=True, slots=True)
class Encoded:
    content: bytes
    media_type: str
    created: float


class ResponseCache:
    """An LRU of encoded responses keyed by (lake version, request); entries expire by age.

    Answers that cost about as much to compute as to fetch (a point lookup in the hot index)
    are admitted on their second request only (`seen_before`, a doorkeeper as in TinyLFU):
    random one-off lookups then neither pay for an insert and an eviction nor push out the
    working set, and a key asked for twice is cached from then on.
    """

    def __init__(self, *, entries: int, max_age: float) -> None:
        self._entries = entries
        self._max_age = max_age
        self._data: OrderedDict[tuple[int | None, str], Encoded] = OrderedDict()
        self._lock = threading.Lock()
        self._seen: set[tuple[int | None, str]] = set()

    def seen_before(self, version: int | None, key: str) -> bool:
        """True if (version, key) was asked for since the doorkeeper last started over;
        records it otherwise. It holds at most as many keys as the cache, then starts over."""
        item = (version, key)
        if item in self._seen:
            return True
        if len(self._seen) >= self._entries:
            self._seen.clear()
        self._seen.add(item)
        return False

    def get(self, version: int | None, key: str) -> Encoded | None:
        with self._lock:
            hit = self._data.get((version, key))
            if hit is None:
                return None
            if time.monotonic() - hit.created > self._max_age:
                del self._data[(version, key)]
                return None
            self._data.move_to_end((version, key))
            return hit

    def put(self, version: int | None, key: str, value: Encoded) -> None:
        if self._entries == 0:
            return
        with self._lock:
            self._data[(version, key)] = value
            self._data.move_to_end((version, key))
            while len(self._data) > self._entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._seen.clear()

    def __len__(self) -> int:
        return len(self._data)


def request_key(request: Request[Any, Any, Any], fmt: Format) -> str:
    raw = request.scope.get("query_string", b"").decode("latin-1")
    query = "&".join(sorted(raw.split("&"))) if "&" in raw else raw
    return f"{request.scope['method']} {request.scope['path']}?{query}#{fmt}"


def etag_for(version: int | None, key: str) -> str:
    digest = hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
    return f'"v{version}-{digest}"'


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags


class _RawAsgi:
    """The two ASGI messages of an encoded response, built once (no header re-parsing)."""

    __slots__ = ("_body", "_start")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self._start: Message = {"type": "http.response.start", "status": status, "headers": headers}
        self._body: Message = {"type": "http.response.body", "body": body, "more_body": False}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(self._start)
        await send(self._body)


class RawResponse(Response[bytes]):
    """A data response of encoded bytes and lower-case raw headers, sent as two messages.

    Litestar's generic path turns a `Response` into an `ASGIResponse` through a mutable
    header map (one parse per header); the responder already has every header as bytes.
    Anything the generic path would add (route-level headers or cookies, background tasks,
    HEAD) makes it fall back to that path, so behaviour never differs.
    """

    __slots__ = ("raw_headers",)

    def __init__(
        self,
        content: bytes,
        *,
        status_code: int,
        raw_headers: list[tuple[bytes, bytes]],
        media_type: str | None = None,
    ) -> None:
        # Response.__init__'s attributes, set directly: no cookie list or header dict to build.
        self.content = content
        self.background = None
        self.cookies = []
        self.encoding = "utf-8"
        self.headers = {}
        self.media_type = media_type
        self.status_code = status_code
        self.response_type_encoders = {}
        self.raw_headers = raw_headers

    def to_asgi_response(
        self,
        app: Any,
        request: Request[Any, Any, Any],
        *,
        background: Any = None,
        cookies: Any = None,
        encoded_headers: Any = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: Any = None,
        status_code: int | None = None,
        type_encoders: Any = None,
    ) -> ASGIResponse:
        if (
            app is not None
            or background is not None
            or self.background is not None
            or cookies
            or self.cookies
            or encoded_headers
            or headers
            or is_head_response
            or request.scope["method"] == "HEAD"
        ):
            self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.raw_headers}
            return super().to_asgi_response(
                app,
                request,
                background=background,
                cookies=cookies,
                encoded_headers=encoded_headers,
                headers=headers,
                is_head_response=is_head_response,
                media_type=media_type,
                status_code=status_code,
                type_encoders=type_encoders,
            )
        status = self.status_code or 200
        return cast(ASGIResponse, _RawAsgi(status, self.raw_headers, self.content))


def _raw(name: str, value: str) -> tuple[bytes, bytes]:
    return name.lower().encode("latin-1"), value.encode("latin-1")


_VARY = _raw("Vary", "Accept, Authorization, X-API-Key")
_CONTENT_TYPE = {
    JSON: _raw("Content-Type", JSON),
    CSV: _raw("Content-Type", CSV + "; charset=utf-8"),
    ARROW: _raw("Content-Type", ARROW),
}


class Responder:
    """Serves one data request: 304 on a matching ETag, cache hit, or compute and encode."""

    def __init__(self, cache: ResponseCache, metrics: ApiMetrics, *, max_age: float) -> None:
        self.cache = cache
        self.metrics = metrics
        self.max_age = max_age
        self._cache_control: dict[int, bytes] = {}

    def respond(
        self,
        request: Request[Any, Any, Any],
        *,
        version: int | None,
        allowed: tuple[Format, ...],
        compute: Callable[[], Payload],
        max_age: float | None = None,
        admit: Literal["always", "repeat"] = "always",
    ) -> Response[Any]:
        """The answer to `request`: 304, cached bytes, or `compute()` encoded and cached.

        `admit="repeat"` is for answers as cheap to compute as to fetch: they enter the cache
        on their second request (see `ResponseCache`)."""
        fmt = negotiate(request, allowed)
        key = request_key(request, fmt)
        etag = etag_for(version, key)
        age = int(min(self.max_age, self.max_age if max_age is None else max_age))
        headers = [
            (b"etag", etag.encode("latin-1")),
            (b"cache-control", self._cache_control.get(age) or self._control(age)),
            _VARY,
        ]
        if _matches(header(request.scope, b"if-none-match"), etag):
            self.metrics.cache_result("not_modified")
            return RawResponse(b"", status_code=304, raw_headers=headers)
        hit = self.cache.get(version, key)
        if hit is not None:
            self.metrics.cache_result("hit")
            return self._ok(hit.content, hit.media_type, headers)
        self.metrics.cache_result("miss")
        payload = compute()
        table = None if fmt == "json" else payload.arrow()
        if table is None:
            content = msgspec.json.encode(payload.body)
            media = JSON
        elif fmt == "csv":
            content, media = encode_csv(table), CSV
        else:
            content, media = encode_arrow(table), ARROW
        if admit == "always" or self.cache.seen_before(version, key):
            self.cache.put(version, key, Encoded(content, media, time.monotonic()))
        return self._ok(content, media, headers)

    def _control(self, age: int) -> bytes:
        value = f"public, max-age={age}".encode()
        self._cache_control[age] = value
        return value

    @staticmethod
    def _ok(content: bytes, media: str, headers: list[tuple[bytes, bytes]]) -> RawResponse:
        headers.append(_CONTENT_TYPE.get(media) or _raw("Content-Type", media))
        headers.append((b"content-length", str(len(content)).encode()))
        return RawResponse(content, status_code=200, raw_headers=headers, media_type=media)


def media_type_of(fmt: Format) -> str:
    return _MEDIA[fmt]
