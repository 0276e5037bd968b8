"""SSE tails under JWT auth on a real node (issue 10): the token from a bearer header or
`access_token` (browsers' EventSource cannot set headers), the refusals before the stream
starts (401, 403), `event: error` with `token_expired` when the token expires (then the end
of the stream), and the token never reaching the log. The node is the auth conftest's
`server` (one per module, leeway 0).

Must not: reach anything but 127.0.0.1, or wait without a bound."""

import time
import urllib.parse

from tests.auth.node_helpers import OTHER, append, create, expiring_reader, token_query
from tests.sse_client import SseTail


def test_bearer_header_and_access_token_both_open_the_stream(server, svc, sid):
    token = svc()
    create(server, token, sid)
    assert append(server, token, sid).status_code == 201
    by_header = SseTail(server, sid, cursor=0, headers={"Authorization": f"Bearer {token}"})
    by_query = SseTail(server, sid, cursor=0, query=token_query(token))
    try:
        assert by_header.read_until(1)[0]["seq"] == 1 and by_query.read_until(1)[0]["seq"] == 1
    finally:
        by_header.close()
        by_query.close()
    quoted = urllib.parse.quote(token)
    server.wait_until(lambda: "/tail?cursor=0&access_token=[REDACTED]" in server.output(), timeout=5,
                      what="the redacted access line")
    assert quoted not in server.output() and token not in server.output()


def test_refusals_come_before_the_stream(server, svc, sid):
    owner = svc()
    create(server, owner, sid)
    cases = [(None, 401, "unauthorized"), ("not-a-jwt", 401, "invalid_token"),
             (svc(scope="session:append"), 403, "forbidden_scope"),
             (svc(tenant_id=OTHER), 403, "forbidden_tenant"),
             (svc(exp=int(time.time()) - 60), 401, "token_expired")]
    for token, status, code in cases:
        tail = SseTail(server, sid, cursor=0, query=token_query(token))
        assert (tail.status, tail.error["error"]) == (status, code), token
        tail.close()


def test_expired_token_sends_event_error_then_ends(server, svc, sid):
    token, exp = expiring_reader(server, svc(), sid)
    tail = SseTail(server, sid, cursor=0, query=token_query(token))
    try:
        assert tail.read_until(1)[0]["seq"] == 1
        tail.wait_end(timeout=8)
        ended_at = time.time()
    finally:
        tail.close()
    assert tail.ended and [error["error"] for error in tail.errors()] == ["token_expired"]
    assert tail.errors()[0]["message"]
    assert exp <= ended_at <= exp + 2.0
    again = SseTail(server, sid, cursor=1, query=token_query(token))
    assert (again.status, again.error["error"]) == (401, "token_expired")
    again.close()

