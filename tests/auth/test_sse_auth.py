"""SSE tails under JWT auth on a real node (issue 10): the token from a bearer header or
`access_token` (browsers' EventSource cannot set headers), the refusals before the stream
starts (401, 403), `event: error` with `token_expired` when the token expires (then the end
of the stream), and the token never reaching the log.

Must not: reach anything but 127.0.0.1, or wait without a bound."""

import time
import urllib.parse

import pytest
from jose import jwt

from tests.auth.conftest import claims, jwt_env
from tests.auth.node_helpers import OTHER, append, create, principal, token_query
from tests.server import StarciteServer
from tests.sse_client import SseTail


@pytest.fixture(scope="module")
def node(module_jwks, tmp_path_factory):
    server = StarciteServer(tmp_path_factory.mktemp("sse-jwt"),
                            jwt_env(module_jwks.url, STARCITE_AUTH_JWT_LEEWAY_SECONDS="0"))
    server.start()
    yield server
    server.stop()
    assert "eyJ" not in server.output(), "a JWT reached the server log"


@pytest.fixture
def service(rsa_key):
    return lambda **overrides: rsa_key.sign(claims(**overrides))


def test_bearer_header_and_access_token_both_open_the_stream(node, service, sid):
    token = service()
    create(node, token, sid)
    assert append(node, token, sid).status_code == 201
    by_header = SseTail(node, sid, cursor=0, headers={"Authorization": f"Bearer {token}"})
    by_query = SseTail(node, sid, cursor=0, query=token_query(token))
    try:
        assert by_header.read_until(1)[0]["seq"] == 1 and by_query.read_until(1)[0]["seq"] == 1
    finally:
        by_header.close()
        by_query.close()
    quoted = urllib.parse.quote(token)
    node.wait_until(lambda: "/tail?cursor=0&access_token=[REDACTED]" in node.output(), timeout=5,
                    what="the redacted access line")
    assert quoted not in node.output() and token not in node.output()


def test_refusals_come_before_the_stream(node, service, sid):
    owner = service()
    create(node, owner, sid)
    cases = [(None, 401, "unauthorized"), ("not-a-jwt", 401, "invalid_token"),
             (service(scope="session:append"), 403, "forbidden_scope"),
             (service(tenant_id=OTHER), 403, "forbidden_tenant"),
             (service(exp=int(time.time()) - 60), 401, "token_expired")]
    for token, status, code in cases:
        tail = SseTail(node, sid, cursor=0, query=token_query(token))
        assert (tail.status, tail.error["error"]) == (status, code), token
        tail.close()


def test_expired_token_sends_event_error_then_ends(node, service, sid):
    owner = service()
    create(node, owner, sid)
    assert append(node, owner, sid).status_code == 201
    token = principal(node, owner, scopes=["session:read"], session_ids=[sid], ttl_seconds=2)
    exp = jwt.get_unverified_claims(token)["exp"]
    tail = SseTail(node, sid, cursor=0, query=token_query(token))
    try:
        assert tail.read_until(1)[0]["seq"] == 1
        tail.wait_end(timeout=8)
        ended_at = time.time()
    finally:
        tail.close()
    assert tail.ended and [error["error"] for error in tail.errors()] == ["token_expired"]
    assert tail.errors()[0]["message"]
    assert exp <= ended_at <= exp + 2.0
    again = SseTail(node, sid, cursor=1, query=token_query(token))
    assert (again.status, again.error["error"]) == (401, "token_expired")
    again.close()

