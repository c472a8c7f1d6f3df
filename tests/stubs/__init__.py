"""Provider stub servers: real HTTP on loopback speaking each provider's documented format.

Each stub is a context manager (`with MarketstackStub(bars) as stub:`) exposing `base_url`,
the recorded `requests`, and `inject(*faults)` to queue faults consumed one per request.
"""

from tests.stubs._server import Fault, RecordedRequest, StubServer

__all__ = ["Fault", "RecordedRequest", "StubServer"]
