"""JWT auth end to end on real `starcite serve` processes (SPEC.md §3, issue 4).

Owns: what a client of a jwt-mode node sees: 401/403 and their codes on every
`/v1` endpoint and tail upgrade, tenancy, principal tokens from
`/v1/auth/issue`, the 4001 close of an expired tail, start-up refusal,
JWKS rotation and outages, and `access_token` never reaching the log.
Most tests share one node (`server`, leeway 0) and use their own session
ids; tests that need a special configuration start their own.

Must not: reach anything but 127.0.0.1, or wait without a bound.
"""

import datetime
import http.client
import json
import time
import types
import urllib.parse
import uuid

import pytest
import websocket
from gunicorn.config import Config as GunicornConfig
from jose import jwt

from starcite.api.auth import PRINCIPAL_TYP, derive_principal_key
from starcite.api.server import RedactingLogger
from tests.auth.conftest import TENANT, JwksServer, b64, claims, hs256, jwt_env
from tests.server import StarciteServer
from tests.tail_client import TailClient

OTHER = "globex"
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


def bearer(token):
    return {"Authorization": f"Bearer {token}"} if token else {}


def call(server, method, path, token=None, body=None):
    return server.request(method, path, body, headers=bearer(token))


def error_of(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"} and body["message"], body
    return body["error"]


def create(server, token, session_id=None, **fields):
    body = {**fields, **({"id": session_id} if session_id else {})}
    response = call(server, "POST", "/v1/sessions", token, body)
    assert response.status_code == 201, response.text
    return response.json()


def append(server, token, session_id, producer_seq=1, producer_id="p1", **fields):
    body = {"type": "message", "payload": {"n": producer_seq}, "producer_id": producer_id,
            "producer_seq": producer_seq, **fields}
    return call(server, "POST", f"/v1/sessions/{session_id}/append", token, body)


def list_ids(server, token, query=""):
    """Every session id the token can list, walking `next_cursor` to the end."""
    ids, cursor = [], None
    for _ in range(100):
        suffix = f"&cursor={urllib.parse.quote(cursor)}" if cursor else ""
        response = call(server, "GET", f"/v1/sessions?limit=1000{query}{suffix}", token)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [record["id"] for record in page["sessions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("listing did not end")


def issue(server, service_token, principal_id="bot", kind="agent", scopes=("session:read", "session:append"),
          tenant=TENANT, **extra):
    body = {"principal": {"tenant_id": tenant, "id": principal_id, "type": kind}, "scopes": list(scopes), **extra}
    return call(server, "POST", "/v1/auth/issue", service_token, body)


def principal(server, service_token, *args, **kwargs) -> str:
    response = issue(server, service_token, *args, **kwargs)
    assert response.status_code == 201, response.text
    return remember(response.json()["token"])


def token_query(token):
    """The `&access_token=` suffix of a tail URL (how browsers authenticate WebSockets)."""
    return f"&access_token={urllib.parse.quote(token)}" if token else ""


def tail_url(server, session_id, token=None):
    return f"{server.ws_base}/v1/sessions/{session_id}/tail?cursor=0{token_query(token)}"


def refused_upgrade(server, session_id, token=None, headers=None):
    """(status, error code) of a tail upgrade the node must refuse."""
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(tail_url(server, session_id, token), timeout=5, header=headers or [])
    body = info.value.resp_body
    return info.value.status_code, json.loads(body)["error"] if body else None


# ---------------------------------------------------------------- no token

@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/metrics", "/openapi.json"])
def test_health_metrics_and_docs_need_no_token(server, path):
    assert server.request("GET", path).status_code == 200
    assert server.request("GET", path, headers=bearer("garbage")).status_code == 200


@pytest.mark.parametrize("method, path", [
    ("POST", "/v1/sessions"), ("GET", "/v1/sessions"), ("GET", "/v1/sessions/s1"),
    ("POST", "/v1/sessions/s1/append"), ("POST", "/v1/auth/issue"), ("GET", "/v1/sessions/s1/tail"),
    ("GET", "/v1/sessions/s1/events"), ("GET", "/v1/no-such-route"), ("GET", "//v1/sessions"), ("POST", "//v1//sessions"),
])
def test_every_v1_request_needs_a_token(server, method, path):
    response = server.request(method, path, {})
    assert error_of(response, 401) == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_tail_upgrade_needs_a_token(server, svc, sid):
    create(server, svc(), sid)
    assert refused_upgrade(server, sid) == (401, "unauthorized")


# ---------------------------------------------------------------- bad and attack tokens

def attack_tokens(rsa_key, rsa_key2):
    now = int(time.time())
    valid = rsa_key.sign(claims())
    head, _body, signature = valid.split(".")
    principal_claims = {"iss": "starcite", "aud": "starcite-principal", "sub": "bot", "tenant_id": TENANT,
                        "principal_type": "agent", "scopes": ["session:read"], "exp": now + 300}
    return {
        "garbage": "not-a-jwt",
        "expired": rsa_key.sign(claims(exp=now - 5)),
        "wrong_issuer": rsa_key.sign(claims(iss="https://evil.test/")),
        "wrong_audience": rsa_key.sign(claims(aud="someone-else")),
        "no_exp": rsa_key.sign(claims(exp=None)),
        "no_tenant": rsa_key.sign(claims(tenant_id=None)),
        "no_sub": rsa_key.sign(claims(sub=None)),
        "alg_none": f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': 'rsa-1'})}.{b64(claims())}.",
        "hs256_with_public_key": hs256({"alg": "HS256", "kid": "rsa-1"}, claims(), rsa_key.public_pem.encode()),
        "alg_differs_from_key": rsa_key.sign(claims(), alg="RS384"),
        "rsa_signature_on_ec_kid": rsa_key.sign(claims(), kid="ec-1"),
        "forged_kid": rsa_key2.sign(claims(), kid="forged-kid"),
        "other_key_known_kid": rsa_key2.sign(claims(), kid="rsa-1"),
        "tampered_payload": f"{head}.{b64(claims(tenant_id=OTHER))}.{signature}",
        "principal_with_wrong_secret": hs256({"alg": "HS256", "typ": PRINCIPAL_TYP}, principal_claims,
                                             derive_principal_key("not-our-secret", "principal-token-v1")),
        "service_token_posing_as_principal": rsa_key.sign(claims(), typ=PRINCIPAL_TYP),
    }


ATTACKS = ["garbage", "expired", "wrong_issuer", "wrong_audience", "no_exp", "no_tenant", "no_sub", "alg_none",
           "hs256_with_public_key", "alg_differs_from_key", "rsa_signature_on_ec_kid", "forged_kid",
           "other_key_known_kid", "tampered_payload", "principal_with_wrong_secret",
           "service_token_posing_as_principal"]


@pytest.mark.parametrize("attack", ATTACKS)
def test_invalid_and_attack_tokens_are_401_everywhere(server, svc, rsa_key, rsa_key2, sid, attack):
    create(server, svc(), sid)
    token = remember(attack_tokens(rsa_key, rsa_key2)[attack])
    expected = "token_expired" if attack == "expired" else "invalid_token"
    for method, path, body in [("GET", "/v1/sessions", None), ("GET", f"/v1/sessions/{sid}", None),
                               ("POST", "/v1/sessions", {}), ("POST", f"/v1/sessions/{sid}/append", {}),
                               ("POST", "/v1/auth/issue", {})]:
        assert error_of(call(server, method, path, token, body), 401) == expected, (method, path)
    assert refused_upgrade(server, sid, token) == (401, expected)
    assert refused_upgrade(server, sid, headers=[f"Authorization: Bearer {token}"]) == (401, expected)
    assert call(server, "GET", f"/v1/sessions/{sid}", svc()).json()["last_seq"] == 0  # nothing got through


def test_scopes_claim_as_a_list(server, svc, sid):
    token = svc(scope=None, scopes=["session:create", "session:read"])
    assert create(server, token, sid)["id"] == sid
    assert call(server, "GET", f"/v1/sessions/{sid}", token).status_code == 200


# ---------------------------------------------------------------- scopes and session locks

def test_missing_scope_is_403_forbidden_scope(server, svc, sid):
    create(server, svc(), sid)
    reader = svc(scope="session:read")
    assert error_of(call(server, "POST", "/v1/sessions", reader, {}), 403) == "forbidden_scope"
    assert error_of(append(server, reader, sid), 403) == "forbidden_scope"
    assert error_of(issue(server, reader), 403) == "forbidden_scope"
    assert call(server, "GET", f"/v1/sessions/{sid}", reader).status_code == 200
    assert sid in list_ids(server, reader)
    writer = svc(scope="session:append")
    assert append(server, writer, sid).status_code == 201
    for method, path in [("GET", f"/v1/sessions/{sid}"), ("GET", "/v1/sessions")]:
        assert error_of(call(server, method, path, writer), 403) == "forbidden_scope"
    assert refused_upgrade(server, sid, writer) == (403, "forbidden_scope")
    assert error_of(call(server, "GET", f"/v1/sessions/{sid}/events?wait_ms=5000", writer), 403) == "forbidden_scope"
    assert call(server, "GET", f"/v1/sessions/{sid}/events", reader).json()["last_seq"] == 1


def test_session_locked_service_token(server, svc, sid):
    other = create(server, svc())["id"]
    locked = svc(session_id=sid)
    no_id = call(server, "POST", "/v1/sessions", locked, {})
    assert error_of(no_id, 403) == "forbidden_session"  # a generated id would be a session it cannot use
    assert error_of(call(server, "POST", "/v1/sessions", locked, {"id": other + "x"}), 403) == "forbidden_session"
    assert create(server, locked, sid)["id"] == sid
    assert append(server, locked, sid).status_code == 201
    assert list_ids(server, locked) == [sid]
    assert error_of(call(server, "GET", f"/v1/sessions/{other}", locked), 403) == "forbidden_session"
    assert error_of(append(server, locked, other), 403) == "forbidden_session"
    assert refused_upgrade(server, other, locked) == (403, "forbidden_session")
    assert error_of(call(server, "GET", f"/v1/sessions/{other}/events", locked), 403) == "forbidden_session"
    assert call(server, "GET", f"/v1/sessions/{sid}/events", locked).json()["last_seq"] == 1
    assert error_of(issue(server, locked, session_ids=[other]), 403) == "forbidden_session"
    assert issue(server, locked, session_ids=[sid]).status_code == 201


# ---------------------------------------------------------------- tenancy

def test_create_injects_the_tenant_and_records_the_creator(server, svc, sid):
    record = create(server, svc(sub="svc-a"), sid, metadata={"team": "x"})
    assert record["metadata"] == {"team": "x", "tenant_id": TENANT}
    assert record["creator_principal"] == {"tenant_id": TENANT, "id": "svc-a", "type": "service"}
    assert call(server, "GET", f"/v1/sessions/{sid}", svc()).json()["creator_principal"] == record["creator_principal"]
    same = create(server, svc(), sid + "-same", metadata={"tenant_id": TENANT})
    assert same["metadata"] == {"tenant_id": TENANT}


def test_cross_tenant_access_is_impossible_on_every_endpoint(server, svc, sid):
    theirs = svc(tenant_id=OTHER)
    ours = svc()
    create(server, theirs, sid, metadata={"team": "x"})
    assert append(server, theirs, sid).status_code == 201
    # get, append, tail
    assert error_of(call(server, "GET", f"/v1/sessions/{sid}", ours), 403) == "forbidden_tenant"
    assert error_of(append(server, ours, sid, producer_id="intruder"), 403) == "forbidden_tenant"
    assert refused_upgrade(server, sid, ours) == (403, "forbidden_tenant")
    assert error_of(call(server, "GET", f"/v1/sessions/{sid}/events?wait_ms=5000", ours), 403) == "forbidden_tenant"
    # list: fenced whatever the filter says
    for query in ("", "&metadata.team=x", f"&metadata.tenant_id={OTHER}"):
        assert sid not in list_ids(server, ours, query)
    assert sid in list_ids(server, theirs, "&metadata.team=x")
    # create with a foreign tenant id, and issue for a foreign principal
    foreign = call(server, "POST", "/v1/sessions", ours, {"id": sid + "-mine", "metadata": {"tenant_id": OTHER}})
    assert error_of(foreign, 403) == "forbidden_tenant"
    assert call(server, "GET", f"/v1/sessions/{sid}-mine", ours).status_code == 404
    assert error_of(issue(server, ours, tenant=OTHER), 403) == "forbidden_tenant"
    assert error_of(call(server, "POST", "/v1/sessions", ours, {"id": sid}), 409) == "session_exists"  # ids are global
    # a principal of our tenant named on their session is still fenced out
    sneaky = principal(server, ours, session_ids=[sid])
    assert error_of(call(server, "GET", f"/v1/sessions/{sid}", sneaky), 403) == "forbidden_tenant"
    assert error_of(append(server, sneaky, sid, producer_id="intruder"), 403) == "forbidden_tenant"
    assert refused_upgrade(server, sid, sneaky) == (403, "forbidden_tenant")
    assert error_of(call(server, "GET", f"/v1/sessions/{sid}/events", sneaky), 403) == "forbidden_tenant"
    assert call(server, "GET", f"/v1/sessions/{sid}", theirs).json()["last_seq"] == 1
    assert [e["seq"] for e in call(server, "GET", f"/v1/sessions/{sid}/events", theirs).json()["events"]] == [1]


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
    service = svc()
    create(server, service, sid)
    assert append(server, service, sid).status_code == 201
    token = principal(server, service, scopes=["session:read"], session_ids=[sid], ttl_seconds=2)
    exp = jwt.get_unverified_claims(token)["exp"]
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


# ---------------------------------------------------------------- start-up and JWKS

def test_node_refuses_to_start_without_jwt_settings(tmp_path, module_jwks):
    missing = ["STARCITE_AUTH_JWKS_URL", "STARCITE_AUTH_JWT_ISSUER", "STARCITE_AUTH_JWT_AUDIENCE", "SECRET_KEY_BASE"]
    nodes = {name: StarciteServer(tmp_path / name, {**jwt_env(module_jwks.url), name: ""}).start(wait=False)
             for name in missing}
    config = tmp_path / "jwt.toml"
    config.write_text('[auth]\nmode = "jwt"\n')
    blank = {name: "" for name in missing + ["STARCITE_AUTH_MODE"]}
    nodes["config file"] = StarciteServer(tmp_path / "file", blank, str(config)).start(wait=False)
    try:
        for name, node in nodes.items():
            assert node.proc.wait(20) == 2, node.output()
            line = node.output().strip()
            expected = "STARCITE_AUTH_JWKS_URL" if name == "config file" else name
            assert line.startswith(f"starcite: configuration error: {expected} ("), line
            assert line.endswith("required when auth mode is jwt") and "\n" not in line, line
    finally:
        for node in nodes.values():
            node.stop()


def jwks_node(make_server, jwks, **env):
    return make_server(jwt_env(jwks.url, STARCITE_AUTH_JWKS_REFRESH_MS="300", **env))


@pytest.fixture
def own_jwks(rsa_key):
    """A JWKS (rsa-1 only) for a test's own node."""
    with JwksServer([rsa_key.jwk()]) as jwks:
        yield jwks


def can_list(node, token):
    return call(node, "GET", "/v1/sessions?limit=1", token).status_code == 200


def test_key_rotation_while_running(make_server, own_jwks, rsa_key, rsa_key2):
    node = jwks_node(make_server, own_jwks)
    old, new = remember(rsa_key.sign(claims())), remember(rsa_key2.sign(claims()))
    assert can_list(node, old)
    own_jwks.keys = [rsa_key.jwk(), rsa_key2.jwk()]  # the new kid appears
    node.wait_until(lambda: can_list(node, new), what="the new key to be trusted")
    assert can_list(node, old)
    own_jwks.keys = [rsa_key2.jwk()]  # the old key is retired
    node.wait_until(lambda: call(node, "GET", "/v1/sessions", old).status_code == 401,
                    what="the old key to be dropped")
    assert can_list(node, new)


def test_jwks_down_at_start_then_recovers(make_server, own_jwks, rsa_key):
    own_jwks.status = 503
    node = jwks_node(make_server, own_jwks)  # starts (and is ready) without keys
    token = remember(rsa_key.sign(claims()))
    refused = call(node, "GET", "/v1/sessions", token)
    assert error_of(refused, 401) == "unauthorized"
    assert "JWKS endpoint unavailable" in refused.json()["message"]
    assert "JWKS fetch from" in node.output()
    own_jwks.status = 200
    node.wait_until(lambda: can_list(node, token), what="keys after the JWKS came back")


def test_jwks_down_later_keeps_cached_keys(make_server, own_jwks, rsa_key, rsa_key2):
    node = jwks_node(make_server, own_jwks)
    token = remember(rsa_key.sign(claims()))
    assert can_list(node, token)
    own_jwks.status = 500
    hits = own_jwks.hits
    node.wait_until(lambda: own_jwks.hits >= hits + 2, what="failed refreshes")
    assert can_list(node, token)  # the cached key keeps working
    unknown = call(node, "GET", "/v1/sessions", remember(rsa_key2.sign(claims())))
    assert error_of(unknown, 401) == "invalid_token"
    assert "rsa-2" in unknown.json()["message"]
    assert "cached key(s) stay in use" in node.output()


def test_unknown_route_with_a_valid_token_is_404(server, svc):
    assert error_of(call(server, "GET", "/v1/no-such-route", svc()), 404) == "not_found"


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
    logger.error("bad request line GET /t?cursor=1&access_token=%s", "SECRET4")
    out = capsys.readouterr()
    text = out.out + out.err
    assert "SECRET" not in text
    assert text.count("access_token=[REDACTED]") == 4 and text.count("[REDACTED]") == 6
