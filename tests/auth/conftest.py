"""Fixtures for the auth tests: signing keys, a loopback JWKS server, tokens.

Owns: test-only key generation (RSA/EC via `cryptography`), a JWKS served by
`http.server` on 127.0.0.1 whose answer the test can switch, token minting
with python-jose, in-process `Authenticator`s (`make_auth`, `auth`) with what
their tests assert (`expect` an `AuthError`, `wait_until`, a `FakeClock`),
the environment of a jwt-mode node (`jwt_env`), and the
node the end-to-end modules share: `server` (module-scoped, one per module
that asks for it, leeway 0) with `svc` service tokens, every token handed to
it remembered (`remember`) so its log can be checked for them at teardown.
Must not: reach anything but loopback, or leave a server or thread running
after its test (or its module, for `server`).
"""

import base64
import hashlib
import hmac
import http.server
import json
import socket
import sys
import threading
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jwt

from starcite.api.auth.tokens import Authenticator
from starcite.api.auth.jwks import JwksCache
from starcite.api.auth.policy import AuthError
from starcite.config.settings import load_config
from tests.server import StarciteServer

ISSUER = "https://idp.test/"
AUDIENCE = "starcite-api"
TENANT = "acme"


class SigningKey:
    """A private key with its algorithm, kid and public JWK."""

    def __init__(self, private_key, alg, kid):
        self.alg, self.kid, self._private = alg, kid, private_key
        self.public_pem = private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        self._public_jwk = {**self.signer().public_key().to_dict(), "kid": kid}

    def signer(self, alg=None):
        """A python-jose key that signs with `alg` (default: the key's own)."""
        return jwk.construct(self._private, alg or self.alg)

    def jwk(self, **overrides):
        """Public JWK (with `alg` and `kid`); an override of None drops the field."""
        entry = {**self._public_jwk, **overrides}
        return {k: v for k, v in entry.items() if v is not None}

    def sign(self, claims, alg=None, **headers):
        """A token over `claims`, header `kid` = this key's unless overridden."""
        return jwt.encode(claims, self.signer(alg), algorithm=alg or self.alg, headers={"kid": self.kid, **headers})


def make_rsa_key(kid, alg="RS256"):
    return SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), alg, kid)


@pytest.fixture(scope="session")
def rsa_key():
    return make_rsa_key("rsa-1")


@pytest.fixture(scope="session")
def rsa_key2():
    return make_rsa_key("rsa-2")


@pytest.fixture(scope="session")
def ec_key():
    return SigningKey(ec.generate_private_key(ec.SECP256R1()), "ES256", "ec-1")


def b64(data) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**overrides):
    """Valid service-token claims; an override of None drops the claim."""
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-backend", "tenant_id": TENANT,
            "scope": "session:create session:read session:append auth:issue", "exp": int(time.time()) + 300}
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


@pytest.fixture
def helpers():
    """This module: `claims`, `hs256`, `b64`, `make_config` and the constants."""
    return sys.modules[__name__]


@pytest.fixture
def mint():
    """mint(key, **claim_overrides, headers=None) -> service token."""
    def _mint(key, headers=None, **overrides):
        return key.sign(claims(**overrides), **(headers or {}))
    return _mint


def hs256(header: dict, body: dict, secret: bytes) -> str:
    """An HS256 token signed by hand (python-jose refuses PEM secrets)."""
    signing_input = f"{b64(header)}.{b64(body)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


class JwksServer:
    """Serves `{"keys": self.keys}` (or `self.status` when not 200); counts hits."""

    def __init__(self, keys=()):
        self.keys, self.status, self.delay, self.hits = list(keys), 200, 0.0, 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                owner.hits += 1
                time.sleep(owner.delay)
                body = json.dumps({"keys": owner.keys}).encode() if owner.status == 200 else b"boom"
                try:
                    self.send_response(owner.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (fetch timeout test)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)


@pytest.fixture
def jwks_server(rsa_key, ec_key):
    with JwksServer([rsa_key.jwk(), ec_key.jwk()]) as server:
        yield server


@pytest.fixture(scope="module")
def module_jwks(rsa_key, ec_key):
    """A JWKS server (rsa-1, ec-1) shared by a module's tests: restore whatever you change."""
    with JwksServer([rsa_key.jwk(), ec_key.jwk()]) as server:
        yield server


@pytest.fixture
def dead_url():
    """A loopback URL nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/jwks.json"


def jwt_env(jwks_url, **env):
    """The environment of a jwt-mode node trusting `jwks_url` (overrides in `env`)."""
    return {"STARCITE_AUTH_MODE": "jwt", "STARCITE_AUTH_JWKS_URL": jwks_url, "STARCITE_AUTH_JWT_ISSUER": ISSUER,
            "STARCITE_AUTH_JWT_AUDIENCE": AUDIENCE, "SECRET_KEY_BASE": "s" * 64, **env}


def make_config(jwks_url, **env):
    return load_config(environ=jwt_env(jwks_url, **env))


@pytest.fixture
def make_auth():
    """make_auth(url, refresh_ms=60000, clock=None, refetch_ms=3000, **env) -> started Authenticator."""
    started = []

    def _make(url, refresh_ms=60000, clock=time.monotonic, refetch_ms=3000, **env):
        cache = JwksCache(url, refresh_ms, fetch_timeout=1.0, clock=clock, refetch_ms=refetch_ms)
        auth = Authenticator(make_config(url, **env), cache)
        auth.start()
        started.append(auth)
        return auth

    yield _make
    for auth in started:
        auth.stop()


@pytest.fixture
def auth(make_auth, jwks_server):
    return make_auth(jwks_server.url)


def expect(status, code, fn, *args, **kwargs) -> AuthError:
    with pytest.raises(AuthError) as info:
        fn(*args, **kwargs)
    assert (info.value.status, info.value.code) == (status, code), info.value.message
    return info.value


def wait_until(predicate, seconds=3.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


MINTED = []  # every token this module hands to a server: none may show up in its log


def remember(token: str) -> str:
    MINTED.append(token)
    return token


@pytest.fixture(scope="module")
def server(module_jwks, tmp_path_factory):
    """The module's jwt node: leeway 0 so a 2 s token really expires after 2 s."""
    node = StarciteServer(tmp_path_factory.mktemp("jwt"),
                          jwt_env(module_jwks.url, STARCITE_AUTH_JWT_LEEWAY_SECONDS="0"))
    node.start()
    yield node
    node.stop()
    output = node.output()
    assert "eyJ" not in output, "a JWT reached the server log"
    assert not [token for token in MINTED if token in output]


@pytest.fixture
def svc(rsa_key):
    """svc(**claim_overrides) -> a service token signed by the JWKS key rsa-1 (tenant acme, all scopes)."""
    return lambda **overrides: remember(rsa_key.sign(claims(**overrides)))
