"""JWT auth end to end on a real `starcite serve` process (SPEC.md §3, issue 4): what is refused.

Owns: 401/403 and their codes on every `/v1` endpoint and tail upgrade: no
token, bad and attack tokens (forged, expired, wrong issuer or audience,
alg confusion, tampering), missing scopes, session-locked service tokens,
tenancy (the injected tenant and cross-tenant fencing on every endpoint),
and a valid token on an unknown route.
Most tests share one node (`server`, leeway 0, from conftest.py) and use
their own session ids; tests that need a special configuration start their
own. Must not: reach anything but 127.0.0.1, or wait without a bound.
"""

import time

import pytest

from starcite.api.auth.tokens import PRINCIPAL_TYP, derive_principal_key
from tests.auth.conftest import TENANT, b64, claims, hs256, remember
from tests.auth.node_helpers import (OTHER, append, bearer, call, create, error_of, issue, list_ids, principal,
                                     refused_upgrade)


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



def test_unknown_route_with_a_valid_token_is_404(server, svc):
    assert error_of(call(server, "GET", "/v1/no-such-route", svc()), 404) == "not_found"
