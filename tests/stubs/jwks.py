"""A loopback identity provider: RSA keys, a JWKS endpoint as Auth0 serves it, token minting.

`with JwksServer() as idp:` serves `GET /.well-known/jwks.json` at `idp.jwks_url` and counts
requests; `idp.token(...)` mints RS256 tokens like Auth0's (iss, aud, sub, iat, exp, kid),
and the helpers mint the forgeries the API must refuse (`alg=none`, HS256 keyed with the
public key PEM, a key the JWKS does not publish).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://stockdata-test.eu.auth0.com/"
AUDIENCE = "https://api.stockdata.dev"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SigningKey:
    """An RSA key pair with a key id."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        data.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return data

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 publishing `keys` (default: one key, kid "test-key-1")."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys) or [SigningKey("test-key-1")]
        self.requests = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def key(self) -> SigningKey:
        return self.keys[0]

    def publish(self, *keys: SigningKey) -> None:
        with self._lock:
            self.keys = list(keys)

    def start(self) -> JwksServer:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with idp._lock:
                    idp.requests += 1
                    keys = [k.jwk for k in idp.keys]
                if self.path == "/.well-known/jwks.json":
                    status, body = 200, json.dumps({"keys": keys}).encode()
                else:
                    status, body = 404, b'{"error": "not_found"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.close_connection = True
                self.end_headers()
                self.wfile.write(body)

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

    def __enter__(self) -> JwksServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def jwks_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"

    # -- tokens ---------------------------------------------------------------------------

    @staticmethod
    def claims(
        *,
        sub: str = "auth0|alice",
        aud: str = AUDIENCE,
        iss: str = ISSUER,
        expires_in: int = 3600,
        **extra: Any,
    ) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": iss, "sub": sub, "aud": aud, "iat": now, "exp": now + expires_in, **extra}

    def token(
        self,
        *,
        key: SigningKey | None = None,
        extra: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """An RS256 token signed by `key` (default: the first published key).

        `extra` holds claims whose names are not identifiers (e.g. namespaced role claims).
        """
        signer = key or self.key
        body = {**self.claims(**claims), **(extra or {})}
        return jwt.encode(body, signer.private, algorithm="RS256", headers={"kid": signer.kid})

    def unsigned_token(self, **claims: Any) -> str:
        """`alg: none` with an empty signature."""
        header = {"alg": "none", "typ": "JWT", "kid": self.key.kid}
        body = self.claims(**claims)
        return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}."

    def hs256_with_public_key(self, **claims: Any) -> str:
        """HS256 keyed with the public key PEM (the classic algorithm-confusion forgery)."""
        header = {"alg": "HS256", "typ": "JWT", "kid": self.key.kid}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(self.claims(**claims)).encode())}"
        mac = hmac.new(self.key.public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"
