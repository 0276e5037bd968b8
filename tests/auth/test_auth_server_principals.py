"""JWT auth end to end on a real `starcite serve` process (SPEC.md §3, issue 4): principal tokens.

Owns: `/v1/auth/issue` (the short-lived token, what it refuses, who may
issue), principals appending as themselves and staying inside their scopes,
sessions and tenant, the 4001 close of a tail whose token expires (at exp,
or exp + leeway), and ``access_token`` never reaching the log (the node's
and `RedactingLogger` on its own).
Most tests share one node (`server`, leeway 0, from conftest.py) and use
their own session ids; tests that need a special configuration start their
own. Must not: reach anything but 127.0.0.1, or wait without a bound.
"""

import datetime
import http.client
import logging
import time
import types
import urllib.parse
import uuid

import pytest
from gunicorn.config import Config as GunicornConfig
from jose import jwt

from starcite.api.server.access_log import ACCESS_BATCH_LINES, RedactingLogger
from tests.auth.conftest import TENANT, claims, jwt_env, remember
from tests.auth.node_helpers import (OTHER, append, bearer, call, create, error_of, expiring_reader, issue,
                                     list_ids, principal, refused_upgrade, token_query)
from tests.tail_client import TailClient


# ---------------------------------------------------------------- /v1/auth/issue and principal tokens

def test_issue_returns_a_short_lived_principal_token(server, svc):
    before = time.time()
    response = issue(server, svc())
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"token", "expires_at"}
    remember(body["token"])
    claims_ = jwt.get_unverified_claims(body["token"])
    assert claims_["sub"] == "bot" and claims_["tenant_id"] == TENANT and claims_["principal_type"] == "agent"
    assert before + 600 - 2 <= claims_["exp"] <= time.time() + 600  # default TTL
    assert body["expires_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims_["exp"]))


@pytest.mark.parametrize("change, status, code", [
    ({"ttl_seconds": 901}, 400, "invalid_request"),  # above STARCITE_AUTH_PRINCIPAL_TOKEN_MAX_TTL_SECONDS
    ({"ttl_seconds": 0}, 400, "invalid_request"),
    ({"scopes": ["auth:issue"]}, 400, "invalid_request"),
    ({"kind": "robot"}, 400, "invalid_request"),
    ({"tenant": OTHER}, 403, "forbidden_tenant"),
])
def test_issue_rejects(server, svc, change, status, code):
    assert error_of(issue(server, svc(), **change), status) == code


def test_issue_needs_a_service_token_with_auth_issue(server, svc):
    assert error_of(issue(server, svc(scope="session:read session:append")), 403) == "forbidden_scope"
    limited = svc(scope="session:read auth:issue")
    assert error_of(issue(server, limited, scopes=["session:append"]), 403) == "forbidden_scope"
    token = principal(server, svc())
    assert error_of(issue(server, token), 403) == "forbidden"
    garbage = server.request("POST", "/v1/auth/issue", raw="{nope", headers=bearer(token))
    assert error_of(garbage, 403) == "forbidden"  # refused before the body is read


@pytest.mark.parametrize("kind", ["agent", "user"])
def test_principal_appends_as_itself(server, svc, sid, kind):
    service = svc()
    create(server, service, sid)
    token = principal(server, service, principal_id="ann", kind=kind, session_ids=[sid])
    assert append(server, token, sid, 1).status_code == 201
    assert append(server, token, sid, 2, actor=f"{kind}:ann").status_code == 201
    for forged in ("user:mallory", "agent:mallory", f"{kind}:ann2", "service:svc-backend"):
        assert error_of(append(server, token, sid, 3, actor=forged), 403) == "forbidden_actor"
    assert append(server, service, sid, 3, actor="user:alice").status_code == 201  # services act for others
    tail = TailClient(server, sid, query=token_query(token))
    try:
        assert [event["actor"] for event in tail.read_until(3)] == [f"{kind}:ann", f"{kind}:ann", "user:alice"]
    finally:
        tail.close()


def test_principal_stays_inside_its_scopes_and_sessions(server, svc, sid):
    service = svc()
    create(server, service, sid)
    other = create(server, service)["id"]
    token = principal(server, service, session_ids=[sid])
    assert error_of(append(server, token, other), 403) == "forbidden_session"
    assert error_of(call(server, "GET", f"/v1/sessions/{other}", token), 403) == "forbidden_session"
    assert refused_upgrade(server, other, token) == (403, "forbidden_session")
    assert list_ids(server, token) == [sid]
    assert error_of(call(server, "POST", "/v1/sessions", token, {"id": sid + "-new"}), 403) == "forbidden_scope"
    reader = principal(server, service, scopes=["session:read"], session_ids=[sid])
    assert error_of(append(server, reader, sid), 403) == "forbidden_scope"
    tail = TailClient(server, sid, headers=[f"Authorization: Bearer {reader}"])
    try:
        assert append(server, token, sid).status_code == 201
        assert tail.read_until(1)[0]["actor"] == "agent:bot"
    finally:
        tail.close()


def test_principal_with_create_scope_creates_and_lists_within_its_tenant(server, svc, sid):
    token = principal(server, svc(), principal_id="ann", kind="user",
                      scopes=["session:create", "session:read", "session:append"])
    record = create(server, token, sid, metadata={"topic": "t"})
    assert record["metadata"] == {"topic": "t", "tenant_id": TENANT}
    assert record["creator_principal"] == {"tenant_id": TENANT, "id": "ann", "type": "user"}
    create(server, svc(tenant_id=OTHER), sid + "-theirs")
    listed = list_ids(server, token)
    assert sid in listed and sid + "-theirs" not in listed
    foreign = call(server, "POST", "/v1/sessions", token, {"metadata": {"tenant_id": OTHER}})
    assert error_of(foreign, 403) == "forbidden_tenant"


# ---------------------------------------------------------------- token expiry on open tails

def test_tail_closes_with_4001_when_its_principal_token_expires(server, svc, sid):
    token, exp = expiring_reader(server, svc(), sid)
    tail = TailClient(server, sid, query=token_query(token))
    try:
        assert tail.read_until(1)[0]["seq"] == 1
        assert tail.wait_close(timeout=6) == 4001
        closed_at = time.time()
    finally:
        tail.close()
    assert tail.close_reason == "token_expired"
    assert exp <= closed_at <= exp + 2.0  # leeway 0: at exp (same wall clock as the node)
    assert refused_upgrade(server, sid, token) == (401, "token_expired")
    assert error_of(call(server, "GET", f"/v1/sessions/{sid}", token), 401) == "token_expired"


def test_tail_closes_at_exp_plus_leeway(make_server, module_jwks, rsa_key):
    """The close comes when the token would first be refused (exp + leeway), not at bare exp."""
    node = make_server(jwt_env(module_jwks.url, STARCITE_AUTH_JWT_LEEWAY_SECONDS="2"))
    service = remember(rsa_key.sign(claims()))
    sid = create(node, service)["id"]
    short = remember(rsa_key.sign(claims(exp=int(time.time()) + 1)))
    exp = jwt.get_unverified_claims(short)["exp"]
    tail = TailClient(node, sid, headers=[f"Authorization: Bearer {short}"])
    try:
        time.sleep(max(0.0, exp + 0.3 - time.time()))
        late = TailClient(node, sid, query=token_query(short))  # still inside leeway
        late.close()
        assert tail.wait_close(timeout=6) == 4001 and tail.close_reason == "token_expired"
        closed_at = time.time()
    finally:
        tail.close()
    assert exp + 2 <= closed_at <= exp + 4
    assert refused_upgrade(node, sid, short) == (401, "token_expired")


# ---------------------------------------------------------------- logs

def test_access_token_never_reaches_the_log(server, svc, sid):
    sid += "=x"  # an `=` in the path must not hide the query's access_token from redaction
    token = svc(sub=f"redact-{uuid.uuid4().hex}")
    create(server, token, sid)
    assert append(server, token, sid).status_code == 201
    quoted = urllib.parse.quote(token)
    tail = TailClient(server, sid, query=token_query(token))
    tail.read_until(1)
    tail.close()
    denied = svc(scope="session:append")
    assert refused_upgrade(server, sid, denied) == (403, "forbidden_scope")
    bad = remember(token[:-6] + "AAAAAA")
    assert refused_upgrade(server, sid, bad) == (401, "invalid_token")
    assert server.request("GET", f"/v1/sessions/{sid}?access_token={quoted}").status_code == 200
    raw = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)  # requests would normalise %5F
    raw.request("GET", f"/v1/sessions?access%5Ftoken={quoted}&limit=1")
    assert raw.getresponse().status == 200
    raw.close()
    assert server.request("GET", f"/health/live?access_token={quoted}").status_code == 200
    # an access log line is written after its response: wait for all of them (3 tails, session, health, list)
    expected = [f"/v1/sessions/{sid}/tail?cursor=0&batch_size=1&access_token=[REDACTED] ",
                f"/v1/sessions/{sid}/tail?cursor=0&access_token=[REDACTED] ",
                f"/v1/sessions/{sid}?access_token=[REDACTED] ", "/health/live?access_token=[REDACTED] ",
                "/v1/sessions?access%5Ftoken=[REDACTED]&limit=1 "]
    server.wait_until(lambda: all(line in server.output() for line in expected),
                      what="the redacted access log lines")
    output = server.output()
    assert output.count(f"/v1/sessions/{sid}/tail?cursor=0&access_token=[REDACTED] ") == 2  # 403 and 401
    metrics = server.request("GET", "/metrics").text
    for secret in (token, quoted, denied, bad, token.split(".")[2]):
        assert secret not in output and secret not in metrics



def test_redacting_logger_masks_every_atom_and_error_line(capsys):
    cfg = GunicornConfig()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", '"%(r)s" %(q)s %(f)s %({authorization}i)s %({http_authorization}e)s')
    logger = RedactingLogger(cfg)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/t?access_token=SECRET1", "SERVER_PROTOCOL": "HTTP/1.1",
               "QUERY_STRING": "access_token=SECRET1", "HTTP_REFERER": "http://x/?a=1&access_token=SECRET2",
               "HTTP_AUTHORIZATION": "Bearer SECRET3"}
    resp = types.SimpleNamespace(status="200 OK", headers=[], sent=0)
    req = types.SimpleNamespace(headers=[("AUTHORIZATION", "Bearer SECRET3")])
    logger.access(resp, req, environ, datetime.timedelta(seconds=0))
    assert "access_token" not in capsys.readouterr().out  # kept until the worker's next flush
    logger.flush_access()
    logger.error("bad request line GET /t?cursor=1&access_token=%s", "SECRET4")
    out = capsys.readouterr()
    text = out.out + out.err
    assert "SECRET" not in text
    assert text.count("access_token=[REDACTED]") == 4 and text.count("[REDACTED]") == 6


def test_access_lines_are_kept_then_written_in_order(capsys):
    cfg = GunicornConfig()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", "%(U)s")
    logging.getLogger("gunicorn.access").handlers.clear()  # pytest's capture handlers: not a plain stream
    logger = RedactingLogger(cfg)
    resp = types.SimpleNamespace(status="200 OK", headers=[], sent=0)
    for n in range(ACCESS_BATCH_LINES + 3):  # a full batch is written at once, the rest at the flush
        environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"/p{n}", "PATH_INFO": f"/p{n}", "SERVER_PROTOCOL": "HTTP/1.1"}
        logger.access(resp, types.SimpleNamespace(headers=[]), environ, datetime.timedelta(seconds=0))
    assert len(logger.access_lines) == 3
    assert capsys.readouterr().out.split() == [f"/p{n}" for n in range(ACCESS_BATCH_LINES)]
    logger.flush_access()
    logger.flush_access()  # nothing kept: writes nothing
    assert capsys.readouterr().out.split() == [f"/p{n}" for n in range(ACCESS_BATCH_LINES, ACCESS_BATCH_LINES + 3)]


@pytest.mark.parametrize("fmt", [None, '%(h)s "%(r)s" %(s)s %(b)s %({X-Request-Id}i)s %({Content-Type}o)s %({REMOTE_ADDR}e)s %(L)s'])
def test_an_access_line_is_the_one_gunicorn_would_write(capsys, fmt):
    """The kept line is gunicorn's own (`access_log_format` % SafeAtoms), for tokenless requests."""
    from gunicorn.glogging import Logger, SafeAtoms
    cfg = GunicornConfig()
    cfg.set("accesslog", "-")
    if fmt:
        cfg.set("access_log_format", fmt)
    logging.getLogger("gunicorn.access").handlers.clear()
    logger = RedactingLogger(cfg)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/v1/sessions/a/tail?cursor=3", "SERVER_PROTOCOL": "HTTP/1.1",
               "PATH_INFO": "/v1/sessions/a/tail", "QUERY_STRING": "cursor=3", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_USER_AGENT": 'agent "quoted"'}
    resp = types.SimpleNamespace(status="101 Switching Protocols", headers=[("Content-Type", "x/y")], sent=129)
    req = types.SimpleNamespace(headers=[("X-REQUEST-ID", "r-1"), ("USER-AGENT", 'agent "quoted"')])
    elapsed = datetime.timedelta(microseconds=1234)
    logger.access(resp, req, environ, elapsed)
    logger.flush_access()
    expected = cfg.access_log_format % SafeAtoms(Logger.atoms(logger, resp, req, environ, elapsed))
    out = capsys.readouterr().out.rstrip("\n")
    assert out.split("]", 1)[-1] == expected.split("]", 1)[-1]  # the same, past the time atom
