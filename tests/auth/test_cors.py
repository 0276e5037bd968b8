"""CORS on a real node: browsers (the TypeScript SDK, its React hooks) may call the API.

Owns: the preflight (204 before authentication, the methods and headers the SDK sends), the
allow-origin header on answers (errors included), the default per auth mode (``*`` with auth
none, nothing with JWT) and an explicit origin list (`STARCITE_CORS_ORIGINS`), and the refusal
of a malformed origin at start. Must not: test authentication itself (tests/auth does).
"""

import subprocess

import pytest

from tests.auth.conftest import jwt_env
from tests.server import STARCITE

APP = "https://app.example"
PREFLIGHT = {"Origin": APP, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization,content-type"}


def preflight(server, path="/v1/sessions/s1/append", **headers):
    return server.request("OPTIONS", path, headers={**PREFLIGHT, **headers})


def test_by_default_any_origin_may_call_a_node_without_auth(make_server):
    server = make_server()
    answer = preflight(server)
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert set(answer.headers["Access-Control-Allow-Methods"].split(", ")) >= {"GET", "POST", "PATCH", "DELETE"}
    assert set(answer.headers["Access-Control-Allow-Headers"].split(", ")) >= {
        "Authorization", "Content-Type", "Last-Event-ID"}
    created = server.request("POST", "/v1/sessions", body={"id": "c1"}, headers={"Origin": APP})
    assert created.status_code == 201 and created.headers["Access-Control-Allow-Origin"] == "*"
    missing = server.request("GET", "/v1/sessions/nope", headers={"Origin": APP})
    assert missing.status_code == 404 and missing.headers["Access-Control-Allow-Origin"] == "*"
    assert "Retry-After" in missing.headers["Access-Control-Expose-Headers"]


def test_only_the_listed_origins_are_allowed(make_server):
    server = make_server(env={"STARCITE_CORS_ORIGINS": f"{APP},http://localhost:5173"})
    answer = preflight(server)
    assert answer.status_code == 204 and answer.headers["Access-Control-Allow-Origin"] == APP
    assert "Origin" in answer.headers["Vary"]
    other = preflight(server, Origin="https://evil.example")
    assert "Access-Control-Allow-Origin" not in other.headers
    plain = server.request("GET", "/health/live", headers={"Origin": "https://evil.example"})
    assert plain.status_code == 200 and "Access-Control-Allow-Origin" not in plain.headers


def test_with_jwt_no_origin_is_allowed_unless_named_and_a_preflight_needs_no_token(make_server, jwks_server):
    closed = make_server(env=jwt_env(jwks_server.url))
    assert "Access-Control-Allow-Origin" not in preflight(closed).headers
    named = make_server(env=jwt_env(jwks_server.url, STARCITE_CORS_ORIGINS=APP))
    answer = preflight(named)
    assert answer.status_code == 204 and answer.headers["Access-Control-Allow-Origin"] == APP
    refused = named.request("GET", "/v1/sessions/s1", headers={"Origin": APP})
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == APP


@pytest.mark.parametrize("value", ["app.example", "https://app.example/path", "*.example"])
def test_a_malformed_origin_is_refused_at_start_with_one_line(tmp_path, value):
    result = subprocess.run([STARCITE, "serve"], capture_output=True, text=True, timeout=30,
                            env={"STARCITE_CORS_ORIGINS": value, "STARCITE_DATA_DIR": str(tmp_path), "PORT": "1",
                                 "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "STARCITE_CORS_ORIGINS (http.cors_origins): each must be * or scheme://host[:port]" in result.stderr
