"""`POST /api/v1/session-tokens` and identity-provider principals end to end on a real `starcite serve` (issue 21 §5).

Owns: the session-token endpoint of a jwt-mode node (the API key is a
service token with `auth:issue`; valid, expired, wrong tenant, bad bodies,
missing scopes, who may call it, never cached), the token it answers used
for appends, and an identity provider's `sub` of `agent:<id>`/`user:<id>`
appending as that principal; the unsigned token of an auth-off node; and
the newest TypeScript SDK's `session({identity})` minting and refreshing its
token there, run by Node (tests/js/sdk_session_token.mjs). Must not: reach
anything but 127.0.0.1, or wait without a bound.
"""

import json
import time

import pytest
from jose import jwt

from tests.auth.conftest import TENANT, claims, jwt_env, remember
from tests.auth.node_helpers import OTHER, append, bearer, call, create, error_of
from tests.server import wait_until
from tests.ts_sdk import NEWEST, install_sdk, run_script

PATH = "/api/v1/session-tokens"


def session_token(server, api_key, session_id, principal_id="planner", kind="agent",
                  scopes=("session:read", "session:append"), **extra):
    body = {"session_id": session_id, "principal": {"type": kind, "id": principal_id}, "scopes": list(scopes),
            **extra}
    return call(server, "POST", PATH, api_key, body)


def minted(response) -> str:
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"token", "expires_in"} and body["expires_in"] > 0
    assert response.headers["Cache-Control"] == "no-store"
    return remember(body["token"])


def actors(server, token, session_id) -> list:
    response = call(server, "GET", f"/v1/sessions/{session_id}/events", token)
    assert response.status_code == 200, response.text
    return [event["actor"] for event in response.json()["events"]]


# ---------------------------------------------------------------- jwt mode

def test_the_minted_token_appends_as_its_principal_on_its_session(server, svc, sid):
    service = svc()
    create(server, service, sid)
    other = create(server, service)["id"]
    token = minted(session_token(server, service, sid, ttl_seconds=60))
    claims_ = jwt.get_unverified_claims(token)
    assert (claims_["session_id"], claims_["tenant_id"], claims_["sub"], claims_["principal_type"]) == (
        sid, TENANT, "planner", "agent")
    assert append(server, token, sid).status_code == 201
    assert error_of(append(server, token, sid, 2, actor="agent:other"), 403) == "forbidden_actor"
    assert error_of(append(server, token, other), 403) == "forbidden_session"
    assert actors(server, token, sid) == ["agent:planner"]


def test_the_minted_token_expires(server, svc, sid):
    service = svc()
    create(server, service, sid)
    token = minted(session_token(server, service, sid, ttl_seconds=1))
    assert session_token(server, service, sid, ttl_seconds=1).json()["expires_in"] == 1
    wait_until(lambda: append(server, token, sid).status_code == 401, timeout=10, what="the token to expire")
    assert error_of(append(server, token, sid), 401) == "token_expired"  # leeway 0 on this node


def test_an_expired_or_missing_api_key_is_401(server, svc, sid):
    assert error_of(session_token(server, svc(exp=int(time.time()) - 5), sid), 401) == "token_expired"
    assert error_of(session_token(server, None, sid), 401) == "unauthorized"
    assert error_of(call(server, "POST", "//api/v1/session-tokens", None, {}), 401) == "unauthorized"


def test_the_principal_belongs_to_the_api_keys_tenant(server, svc, sid):
    create(server, svc(tenant_id=OTHER), sid)  # a session of another tenant
    ours = svc()
    token = minted(session_token(server, ours, sid))  # minting is no access: the tenant fence is on use
    assert jwt.get_unverified_claims(token)["tenant_id"] == TENANT
    assert error_of(append(server, token, sid), 403) == "forbidden_tenant"
    foreign = session_token(server, ours, sid, **{"principal": {"type": "agent", "id": "p", "tenant_id": OTHER}})
    assert error_of(foreign, 403) == "forbidden_tenant"


@pytest.mark.parametrize("change", [
    {"scopes": []}, {"scopes": ["auth:issue"]}, {"principal": {"type": "service", "id": "x"}},
    {"session_id": ""}, {"ttl_seconds": 901}, {"session_ids": ["s"]},
], ids=str)
def test_bad_bodies_are_400(server, svc, sid, change):
    body = {"session_id": sid, "principal": {"type": "user", "id": "ann"}, "scopes": ["session:read"], **change}
    assert error_of(call(server, "POST", PATH, svc(), body), 400) == "invalid_request"


def test_missing_scopes_and_broken_json_are_400(server, svc, sid):
    missing = {"session_id": sid, "principal": {"type": "user", "id": "ann"}}
    assert error_of(call(server, "POST", PATH, svc(), missing), 400) == "invalid_request"
    assert error_of(server.request("POST", PATH, raw="{nope", headers=bearer(svc())), 400) == "invalid_json"
    assert error_of(call(server, "POST", PATH, svc()), 400) == "invalid_request"  # no body at all


def test_only_a_service_token_with_auth_issue_and_the_scopes_mints(server, svc, sid):
    assert error_of(session_token(server, svc(scope="session:create session:read"), sid), 403) == "forbidden_scope"
    reader = svc(scope="session:read auth:issue")
    assert minted(session_token(server, reader, sid, scopes=["session:read"]))
    assert error_of(session_token(server, reader, sid), 403) == "forbidden_scope"  # cannot grant session:append
    assert error_of(session_token(server, svc(session_id="elsewhere"), sid), 403) == "forbidden_session"
    token = minted(session_token(server, svc(), sid))
    refused = server.request("POST", PATH, raw="{nope", headers=bearer(token))
    assert error_of(refused, 403) == "forbidden"  # principals never mint, refused before the body is read
    agent = svc(sub="agent:planner")  # an identity provider's agent holding auth:issue is still an agent
    assert error_of(session_token(server, agent, sid), 403) == "forbidden"


def test_identity_provider_principals_append_as_themselves(server, svc, sid):
    service = svc()
    create(server, service, sid)
    agent, user = svc(sub="agent:planner", session_id=sid), svc(sub="user:ann")
    assert append(server, agent, sid, 1).status_code == 201
    assert append(server, user, sid, 2, actor="user:ann").status_code == 201
    assert error_of(append(server, user, sid, 3, actor="agent:planner"), 403) == "forbidden_actor"
    assert append(server, svc(sub="service:backend"), sid, 3).status_code == 201
    assert actors(server, service, sid) == ["agent:planner", "user:ann", "service:backend"]
    record = create(server, svc(sub="user:ann", session_id=sid + "-own"), sid + "-own")
    assert record["creator_principal"] == {"tenant_id": TENANT, "id": "ann", "type": "user"}


# ---------------------------------------------------------------- auth off

def test_auth_off_answers_an_unsigned_token(shared_server, sid, rsa_key):
    api_key = rsa_key.sign(claims(tenant_id="initech"))  # not verified: nothing is with auth off
    token = minted(session_token(shared_server, api_key, sid))
    assert jwt.get_unverified_header(token)["alg"] == "none"
    assert jwt.get_unverified_claims(token)["tenant_id"] == "initech"
    assert error_of(session_token(shared_server, None, sid, scopes=[]), 400) == "invalid_request"


def test_a_browser_may_ask_for_a_session_token(shared_server):
    """The SDK's token request carries `cache-control: no-store`: its preflight must allow that header."""
    answer = shared_server.request("OPTIONS", PATH, headers={
        "Origin": "http://app.test", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,cache-control,content-type"})
    assert answer.status_code == 204
    allowed = {name.lower() for name in answer.headers["Access-Control-Allow-Headers"].split(", ")}
    assert {"authorization", "cache-control", "content-type"} <= allowed


# ---------------------------------------------------------------- the newest TypeScript SDK

@pytest.fixture(scope="module")
def newest_sdk(tmp_path_factory):
    return install_sdk(NEWEST, tmp_path_factory.mktemp("ts-sdk"))


def create_takes_creator_principal(node) -> bool:
    """Whether the node's create accepts the SDK's `creator_principal` (issue 21 §5, another change)."""
    schema = node.request("GET", "/openapi.json").json()["paths"]["/v1/sessions"]["post"]["requestBody"]
    return "creator_principal" in schema["content"]["application/json"]["schema"].get("properties", {})


def run_sdk(newest_sdk, node, api_key, session_id, wait_ms):
    option = [] if create_takes_creator_principal(node) else ["strip-creator"]
    result = run_script("sdk_session_token.mjs", newest_sdk, node.base, api_key, session_id, wait_ms, *option)
    assert result.returncode == 0, result.stderr[-3000:]
    return {line["step"]: line for line in map(json.loads, result.stdout.splitlines())}


def test_sdk_session_with_identity_mints_and_refreshes_its_token(make_server, module_jwks, rsa_key, newest_sdk,
                                                                 sid):
    node = make_server(jwt_env(module_jwks.url, STARCITE_AUTH_JWT_LEEWAY_SECONDS="0",
                               STARCITE_AUTH_PRINCIPAL_TOKEN_DEFAULT_TTL_SECONDS="2"))
    api_key = rsa_key.sign(claims())
    steps = run_sdk(newest_sdk, node, api_key, sid, 3000)  # the first token has expired by the second append
    assert steps["session"]["request"] == {"session_id": sid, "principal": {"id": "planner", "type": "agent"},
                                           "scopes": ["session:read", "session:append"]}
    assert steps["session"]["identity"] == {"tenantId": TENANT, "id": "planner", "type": "agent"}
    assert (steps["append"]["seq"], steps["refreshed"]["seq"], steps["refreshed"]["mints"]) == (1, 2, 2)
    assert steps["refreshed"]["token"] != steps["session"]["token"]
    assert actors(node, api_key, sid) == ["agent:planner", "agent:planner"]


def test_sdk_session_with_identity_with_auth_off(shared_server, rsa_key, newest_sdk, sid):
    steps = run_sdk(newest_sdk, shared_server, rsa_key.sign(claims()), sid, 0)
    assert steps["session"]["id"] == sid and steps["session"]["identity"]["tenantId"] == TENANT
    assert (steps["append"]["seq"], steps["refreshed"]["seq"], steps["refreshed"]["mints"]) == (1, 2, 1)
