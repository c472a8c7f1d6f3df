"""Content negotiation, encodings (JSON, CSV, Arrow IPC, Parquet), ETags, compression, the
version-keyed cache, and streamed downloads."""

from __future__ import annotations

import hashlib
import io
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, cast

import msgspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from litestar import Request, Response
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.response import Stream
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from query_api import _models as m
from query_api._metrics import ApiMetrics
from stockdata.errors import InvalidInputError

Format = Literal["json", "csv", "arrow", "parquet"]

JSON = "application/json"
CSV = "text/csv"
ARROW = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
_MEDIA = {"json": JSON, "csv": CSV, "arrow": ARROW, "parquet": PARQUET}
_EXTENSION = {"json": "json", "csv": "csv", "arrow": "arrows", "parquet": "parquet"}
#: Answers smaller than this are sent as they are: gzip would cost more than it saves.
COMPRESS_MIN_BYTES = 1400
#: Accept values answered with JSON without parsing (what clients and load tools send).
_JSON_ACCEPTS = frozenset({"*/*", "application/json"})
_ACCEPT = {
    "application/json": "json",
    "text/csv": "csv",
    "application/vnd.apache.arrow.stream": "arrow",
    "application/vnd.apache.parquet": "parquet",
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


def encode_parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def encode_table(table: pa.Table, fmt: Format) -> bytes:
    if fmt == "csv":
        return encode_csv(table)
    if fmt == "parquet":
        return encode_parquet(table)
    return encode_arrow(table)


class _Chunks(io.RawIOBase):
    """A write-only file that hands over what was written since the last `take()`."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._pos += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def encode_batches(
    fmt: Format, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
) -> Iterator[bytes]:
    """CSV, Arrow IPC stream or Parquet bytes, one chunk per record batch (a Parquet row group
    each): memory holds one batch, whatever the number of rows."""
    sink = _Chunks()
    writer: Any
    if fmt == "csv":
        writer = pacsv.CSVWriter(sink, schema)
    elif fmt == "arrow":
        writer = ipc.new_stream(sink, schema)
    elif fmt == "parquet":
        writer = pq.ParquetWriter(sink, schema)
    else:
        raise ValueError(f"not a streamed format: {fmt}")
    try:
        for batch in batches:
            writer.write_batch(batch)
            chunk = sink.take()
            if chunk:
                yield chunk
    finally:
        writer.close()
    tail = sink.take()
    if tail:
        yield tail


def gzip_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """`chunks` as one gzip member, compressed as they come."""
    gz = zlib.compressobj(6, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = gz.compress(chunk)
        if out:
            yield out
    yield gz.flush()


def accepts_gzip(scope: Scope) -> bool:
    """True when `Accept-Encoding` allows gzip (`gzip` or `*`, q above zero)."""
    value = header(scope, b"accept-encoding")
    if not value:
        return False
    for part in value.lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            q = params.strip()
            return not (q.startswith("q=") and _qvalue(q[2:]) <= 0.0)
    return False


def _qvalue(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


@dataclass(frozen=True, slots=True)
class Payload:
    """What a route computed: the JSON body and, for tabular routes, the rows as Arrow."""

    body: msgspec.Struct
    table: pa.Table | Callable[[], pa.Table] | None = None
    #: A page of a longer answer: sent as `X-Total-Count` and `Link` (RFC 8288) in every format.
    pagination: m.Pagination | None = None

    def arrow(self) -> pa.Table | None:
        return self.table() if callable(self.table) else self.table


@dataclass(slots=True)
class Encoded:
    content: bytes
    media_type: str
    created: float
    headers: tuple[tuple[bytes, bytes], ...] = ()
    gzipped: bytes | None = None

    def gzip(self) -> bytes:
        """The content gzipped, compressed on first use and kept with the entry."""
        if self.gzipped is None:
            gz = zlib.compressobj(6, zlib.DEFLATED, 31)
            self.gzipped = gz.compress(self.content) + gz.flush()
        return self.gzipped


class ResponseCache:
    """An LRU of encoded responses keyed by (lake version, request); entries expire by age.

    Answers that cost about as much to compute as to fetch (a point lookup in the hot index)
    are admitted on their second request only (`seen_before`, a doorkeeper as in TinyLFU):
    random one-off lookups then neither pay for an insert and an eviction nor push out the
    working set, and a key asked for twice is cached from then on.
    """

    def __init__(self, *, entries: int, max_age: float, max_bytes: int = 64 << 20) -> None:
        self._entries = entries
        self._max_age = max_age
        #: The bodies' bytes held at most: the count alone let 20,000 one-date answers of
        #: ~1 MB each hold 1.3 GB per worker. An answer above an eighth of it is not kept.
        self._max_bytes = max_bytes
        self._bytes = 0
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
                self._bytes -= len(hit.content)
                return None
            self._data.move_to_end((version, key))
            return hit

    def put(self, version: int | None, key: str, value: Encoded) -> None:
        size = len(value.content)
        if self._entries == 0 or size * 8 > self._max_bytes:
            return
        with self._lock:
            old = self._data.pop((version, key), None)
            if old is not None:
                self._bytes -= len(old.content)
            self._data[(version, key)] = value
            self._bytes += size
            while len(self._data) > self._entries or self._bytes > self._max_bytes:
                _, evicted = self._data.popitem(last=False)
                self._bytes -= len(evicted.content)

    @property
    def nbytes(self) -> int:
        """The bodies' bytes held now (gzip copies made on demand come on top: ~1/8 for JSON)."""
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._seen.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._data)


def request_key(request: Request[Any, Any, Any], fmt: Format) -> str:
    raw = request.scope.get("query_string", b"").decode("latin-1")
    query = "&".join(sorted(raw.split("&"))) if "&" in raw else raw
    return f"GET {request.scope['path']}?{query}#{fmt}"  # HEAD describes the GET


def etag_for(version: int | None, key: str) -> str:
    digest = hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
    return f'"v{version}-{digest}"'


def _matches(header: str | None, etag: str) -> bool:
    """If-None-Match against `etag`, or its gzip variant (weak comparison, RFC 9110)."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags or gzip_etag(etag) in tags


def gzip_etag(etag: str) -> str:
    """The strong validator of the gzip-coded representation (another representation)."""
    return etag[:-1] + '-gz"'


def link_header(request: Request[Any, Any, Any], page: m.Pagination) -> str | None:
    """RFC 8288 `Link` with rel=next and rel=prev, relative to the request's own path."""
    raw = request.scope.get("query_string", b"").decode("latin-1")
    kept = [p for p in raw.split("&") if p and p.partition("=")[0] not in ("offset", "limit")]
    path = request.scope.get("root_path", "") + request.scope["path"]

    def target(offset: int) -> str:
        query = "&".join([*kept, f"limit={page.limit}", f"offset={offset}"])
        return f"<{path}?{query}>"

    links = []
    if page.next_offset is not None:
        links.append(f'{target(page.next_offset)}; rel="next"')
    if page.offset > 0:
        links.append(f'{target(max(0, page.offset - page.limit))}; rel="prev"')
    return ", ".join(links) or None


def page_headers(
    request: Request[Any, Any, Any], page: m.Pagination | None
) -> tuple[tuple[bytes, bytes], ...]:
    if page is None:
        return ()
    out = [(b"x-total-count", str(page.total).encode())]
    link = link_header(request, page)
    if link is not None:
        out.append((b"link", link.encode("latin-1")))
    return tuple(out)


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
        # HEAD: the GET's headers (Content-Length included), no body.
        body = b"" if request.scope["method"] == "HEAD" else self.content
        return cast(ASGIResponse, _RawAsgi(status, self.raw_headers, body))


def _raw(name: str, value: str) -> tuple[bytes, bytes]:
    return name.lower().encode("latin-1"), value.encode("latin-1")


_VARY = _raw("Vary", "Accept, Accept-Encoding, Authorization, X-API-Key")
_GZIP = _raw("Content-Encoding", "gzip")
_CONTENT_TYPE = {
    JSON: _raw("Content-Type", JSON),
    CSV: _raw("Content-Type", CSV + "; charset=utf-8"),
    ARROW: _raw("Content-Type", ARROW),
    PARQUET: _raw("Content-Type", PARQUET),
}


class Responder:
    """Serves one data request: 304 on a matching ETag, cache hit, or compute and encode."""

    def __init__(
        self,
        cache: ResponseCache,
        metrics: ApiMetrics,
        *,
        max_age: float,
        revision: Callable[[], str] = lambda: "",
    ) -> None:
        """`revision()` names what answers depend on besides the lake version (the
        corporate actions version): it is part of every cache key and ETag."""
        self.cache = cache
        self.metrics = metrics
        self.max_age = max_age
        self._revision = revision
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
        fmt: Format | None = None,
    ) -> Response[Any]:
        """The answer to `request`: 304, cached bytes, or `compute()` encoded and cached.

        `admit="repeat"` is for answers as cheap to compute as to fetch: they enter the cache
        on their second request (see `ResponseCache`). Bodies of at least
        `COMPRESS_MIN_BYTES` are gzipped when the client accepts it (once per cache entry)."""
        fmt = fmt or negotiate(request, allowed)
        key = request_key(request, fmt) + self._revision()
        etag = etag_for(version, key)
        headers = self._validators(etag, max_age)
        if _matches(header(request.scope, b"if-none-match"), etag):
            self.metrics.cache_result("not_modified")
            return RawResponse(b"", status_code=304, raw_headers=headers)
        hit = self.cache.get(version, key)
        if hit is not None:
            self.metrics.cache_result("hit")
            return self._ok(request, hit, headers)
        self.metrics.cache_result("miss")
        payload = compute()
        table = None if fmt == "json" else payload.arrow()
        if table is None:
            content = msgspec.json.encode(payload.body)
            media = JSON
        else:
            content, media = encode_table(table, fmt), _MEDIA[fmt]
        entry = Encoded(content, media, time.monotonic(), page_headers(request, payload.pagination))
        if admit == "always" or self.cache.seen_before(version, key):
            self.cache.put(version, key, entry)
        return self._ok(request, entry, headers)

    def respond_stream(
        self,
        request: Request[Any, Any, Any],
        *,
        version: int | None,
        fmt: Format,
        filename: str,
        total: int,
        schema: pa.Schema,
        batches: Callable[[], Iterable[pa.RecordBatch]],
    ) -> Response[Any]:
        """A whole answer streamed as it is read (`batches()` runs on the first chunk), with
        `Content-Disposition: attachment` and `X-Total-Count`; never cached in memory."""
        key = request_key(request, fmt) + self._revision()
        etag = etag_for(version, key)
        raw = self._validators(etag, None)
        if _matches(header(request.scope, b"if-none-match"), etag):
            self.metrics.cache_result("not_modified")
            return RawResponse(b"", status_code=304, raw_headers=raw)
        gz = fmt != "parquet" and accepts_gzip(request.scope)  # Parquet compresses its pages
        if gz:
            raw[0] = (b"etag", gzip_etag(etag).encode("latin-1"))
            raw.append(_GZIP)
        raw.append((b"content-disposition", f'attachment; filename="{filename}"'.encode()))
        raw.append((b"x-total-count", str(total).encode()))
        out = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw}
        media = _MEDIA[fmt]  # Litestar adds `; charset=utf-8` to text types
        if request.scope["method"] == "HEAD":
            return Stream(iter(()), media_type=media, headers=out)

        def body() -> Iterator[bytes]:
            chunks = encode_batches(fmt, schema, batches())
            yield from gzip_chunks(chunks) if gz else chunks

        return Stream(body(), media_type=media, headers=out)

    def _validators(self, etag: str, max_age: float | None) -> list[tuple[bytes, bytes]]:
        age = int(min(self.max_age, self.max_age if max_age is None else max_age))
        return [
            (b"etag", etag.encode("latin-1")),
            (b"cache-control", self._cache_control.get(age) or self._control(age)),
            _VARY,
        ]

    def _control(self, age: int) -> bytes:
        value = f"public, max-age={age}".encode()
        self._cache_control[age] = value
        return value

    @staticmethod
    def _ok(
        request: Request[Any, Any, Any], entry: Encoded, headers: list[tuple[bytes, bytes]]
    ) -> RawResponse:
        content = entry.content
        if len(content) >= COMPRESS_MIN_BYTES and accepts_gzip(request.scope):
            content = entry.gzip()
            headers[0] = (b"etag", gzip_etag(headers[0][1].decode("latin-1")).encode("latin-1"))
            headers.append(_GZIP)
        headers.append(
            _CONTENT_TYPE.get(entry.media_type) or _raw("Content-Type", entry.media_type)
        )
        headers.append((b"content-length", str(len(content)).encode()))
        headers.extend(entry.headers)
        return RawResponse(
            content, status_code=200, raw_headers=headers, media_type=entry.media_type
        )


class HeadMiddleware(ASGIMiddleware):
    """HEAD on a GET route: the GET's status and headers, the body dropped on the way out."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope.get("method") != "HEAD":
            await next_app(scope, receive, send)
            return

        async def drop_body(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}  # type: ignore[typeddict-item]
            await send(message)

        await next_app(scope, receive, drop_body)


def allow_head(handlers: Iterable[Any]) -> None:
    """Let every GET route handler answer HEAD too (with `HeadMiddleware`, body dropped).

    Called before the handlers are registered: a route's methods are fixed then."""
    for handler in handlers:
        methods = getattr(handler, "http_methods", None)
        if methods is not None and "GET" in methods:
            handler.http_methods = {*methods, "HEAD"}
        allow_head(getattr(handler, "route_handlers", ()))


def attachment_name(stem: str, fmt: Format) -> str:
    """A safe download file name: `stem` reduced to [A-Za-z0-9._-], plus the format's suffix."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in stem)
    return f"{safe}.{_EXTENSION[fmt]}"


def media_type_of(fmt: Format) -> str:
    return _MEDIA[fmt]
