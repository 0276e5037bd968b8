"""Tests of what the newest TypeScript SDK needs from our tokens, in process (issue 21 §5).

Owns: the `session_id` claim of principal tokens locked to one session (and
older tokens with `session_ids` alone still read), the identity provider's
`sub` of `user:<id>`/`agent:<id>`/`service:<id>` read as that principal, and
`starcite.api.auth.session_tokens.SessionTokens` (`POST /api/v1/session-tokens`):
valid, expiring, fenced to the API key's tenant, bad bodies, scopes, who may
mint, and the unsigned token with auth off. End to end on a node:
`test_session_tokens_server.py`. Must not: use the network beyond 127.0.0.1,
or wait without a bound.
"""

import time

import pytest
from jose import jwt

from starcite.api.auth.policy import NO_AUTH
from starcite.api.auth.session_tokens import AUTH_OFF_TENANT, SessionTokens
from starcite.api.auth.tokens import PRINCIPAL_TYP, derive_principal_key
from starcite.config.settings import load_config
from tests.auth.conftest import expect

PRINCIPAL = {"tenant_id": "acme", "id": "u1", "type": "user"}


@pytest.fixture
def tokens(auth, jwks_server, helpers):
    return SessionTokens(helpers.make_config(jwks_server.url), auth)


def body(**overrides):
    value = {"session_id": "s1", "principal": {"type": "agent", "id": "planner"},
             "scopes": ["session:read", "session:append"], **overrides}
    return {k: v for k, v in value.items() if v is not None}


# ---------------------------------------------------------------- session_id on principal tokens

def test_a_token_locked_to_one_session_carries_session_id(auth, mint, rsa_key):
    service = auth.authenticate(mint(rsa_key))
    one = auth.issue_principal_token(service, {"principal": PRINCIPAL, "scopes": ["session:read"],
                                               "session_ids": ["s1"]})["token"]
    assert jwt.get_unverified_claims(one)["session_id"] == "s1"
    assert jwt.get_unverified_claims(one)["session_ids"] == ["s1"]  # nodes before session_id still see the lock
    assert auth.authenticate(one).session_ids == {"s1"}
    two = auth.issue_principal_token(service, {"principal": PRINCIPAL, "scopes": ["session:read"],
                                               "session_ids": ["s1", "s2"]})["token"]
    assert "session_id" not in jwt.get_unverified_claims(two)
    unlocked = auth.issue_principal_token(service, {"principal": PRINCIPAL, "scopes": ["session:read"]})["token"]
    assert not {"session_id", "session_ids"} & set(jwt.get_unverified_claims(unlocked))


def _signed_by_us(helpers, **claims):
    key = derive_principal_key("s" * 64, "principal-token-v1")
    body = {"iss": "starcite", "aud": "starcite-principal", "sub": "u1", "tenant_id": "acme",
            "principal_type": "user", "scopes": ["session:append"], "exp": int(time.time()) + 60, **claims}
    return helpers.hs256({"alg": "HS256", "typ": PRINCIPAL_TYP}, body, key)


@pytest.mark.parametrize("claims, locked", [
    ({"session_ids": ["s1", "s2"]}, {"s1", "s2"}),  # a token minted before session_id
    ({"session_id": "s1"}, {"s1"}),
    ({"session_id": "s1", "session_ids": ["s1"]}, {"s1"}),
    ({}, None),
], ids=["session_ids", "session_id", "both", "neither"])
def test_principal_tokens_old_and_new_are_read(auth, helpers, claims, locked):
    assert auth.authenticate(_signed_by_us(helpers, **claims)).session_ids == locked


@pytest.mark.parametrize("claims", [
    {"session_id": "s1", "session_ids": ["s2"]}, {"session_id": "s1", "session_ids": ["s1", "s2"]},
    {"session_id": ""}, {"session_id": ["s1"]},
], ids=str)
def test_session_claims_that_disagree_or_are_malformed_are_refused(auth, helpers, claims):
    expect(401, "invalid_token", auth.authenticate, _signed_by_us(helpers, **claims))


# ---------------------------------------------------------------- JWKS sub: user:/agent:/service:

@pytest.mark.parametrize("sub, kind, subject, principal_type, actor", [
    ("user:alice", "principal", "alice", "user", "user:alice"),
    ("agent:planner", "principal", "planner", "agent", "agent:planner"),
    ("agent:a:b", "principal", "a:b", "agent", "agent:a:b"),
    ("service:backend", "service", "backend", None, "service:backend"),
    ("svc-backend", "service", "svc-backend", None, "service:svc-backend"),  # older service subs
    ("robot:r2", "service", "robot:r2", None, "service:robot:r2"),
])
def test_jwks_sub_names_the_principal(auth, mint, rsa_key, sub, kind, subject, principal_type, actor):
    ctx = auth.authenticate(mint(rsa_key, sub=sub, session_id="s1"))
    assert (ctx.kind, ctx.subject, ctx.principal_type, ctx.actor) == (kind, subject, principal_type, actor)
    assert ctx.tenant_id == "acme" and ctx.session_ids == {"s1"}


@pytest.mark.parametrize("sub", ["user:", "agent:", "service:"])
def test_jwks_sub_prefix_without_an_id_is_refused(auth, mint, rsa_key, sub):
    expect(401, "invalid_token", auth.authenticate, mint(rsa_key, sub=sub))


def test_a_jwks_principal_cannot_issue(auth, mint, rsa_key, tokens):
    agent = auth.authenticate(mint(rsa_key, sub="agent:planner"))  # holds auth:issue, still a principal
    expect(403, "forbidden", auth.issue_principal_token, agent, {"principal": PRINCIPAL, "scopes": ["session:read"]})
    expect(403, "forbidden", tokens.check_issuer, agent)


# ---------------------------------------------------------------- SessionTokens (jwt mode)

def test_session_token_is_a_principal_token_on_one_session(auth, mint, rsa_key, tokens):
    now = int(time.time())
    issued = tokens.issue(auth.authenticate(mint(rsa_key)), body(ttl_seconds=120), None, now=now)
    assert set(issued) == {"token", "expires_in"} and issued["expires_in"] == 120
    claims = jwt.get_unverified_claims(issued["token"])
    # What the SDK reads: session_id, tenant_id, sub (the id) and principal_type.
    assert (claims["session_id"], claims["tenant_id"], claims["sub"], claims["principal_type"]) == (
        "s1", "acme", "planner", "agent")
    ctx = auth.authenticate(issued["token"])
    assert (ctx.kind, ctx.actor, ctx.session_ids, ctx.expires_at) == ("principal", "agent:planner", {"s1"}, now + 120)
    assert ctx.scopes == {"session:read", "session:append"}


def test_session_token_default_ttl_and_expiry(auth, mint, rsa_key, tokens):
    service = auth.authenticate(mint(rsa_key))
    assert tokens.issue(service, body(), None)["expires_in"] == 600
    old = tokens.issue(service, body(ttl_seconds=60), None, now=time.time() - 120)
    expect(401, "token_expired", auth.authenticate, old["token"])


def test_session_token_tenant_is_the_api_keys(auth, mint, rsa_key, tokens):
    service = auth.authenticate(mint(rsa_key, tenant_id="globex"))
    assert jwt.get_unverified_claims(tokens.issue(service, body(), None)["token"])["tenant_id"] == "globex"
    same = body(principal={"type": "user", "id": "u1", "tenant_id": "globex"})
    assert tokens.issue(service, same, None)["token"]
    other = body(principal={"type": "user", "id": "u1", "tenant_id": "acme"})
    expect(403, "forbidden_tenant", tokens.issue, service, other, None)


@pytest.mark.parametrize("value", [
    None, [], "x", {}, body(session_id=None), body(session_id=""), body(session_id="a/b"), body(session_id=7),
    body(principal=None), body(principal="planner"), body(principal={"type": "service", "id": "x"}),
    body(principal={"type": "agent"}), body(principal={"type": "agent", "id": ""}),
    body(principal={"type": "agent", "id": "x", "role": "admin"}),
    body(scopes=None), body(scopes=[]), body(scopes="session:read"), body(scopes=["auth:issue"]),
    body(scopes=["session:destroy"]), body(ttl_seconds=0), body(ttl_seconds=901), body(ttl_seconds="60"),
    body(ttl_seconds=True), body(session_ids=["s1"]),
], ids=str)
def test_bad_bodies_are_400(auth, mint, rsa_key, tokens, value):
    expect(400, "invalid_request", tokens.issue, auth.authenticate(mint(rsa_key)), value, None)


def test_who_may_mint(auth, mint, rsa_key, tokens):
    expect(403, "forbidden_scope", tokens.check_issuer, auth.authenticate(mint(rsa_key, scope="session:create")))
    limited = auth.authenticate(mint(rsa_key, scope="auth:issue session:read"))
    assert tokens.issue(limited, body(scopes=["session:read"]), None)["token"]
    err = expect(403, "forbidden_scope", tokens.issue, limited, body(), None)  # cannot grant session:append
    assert "session:append" in err.message
    locked = auth.authenticate(mint(rsa_key, session_id="s1"))
    assert tokens.issue(locked, body(), None)["token"]
    expect(403, "forbidden_session", tokens.issue, locked, body(session_id="s2"), None)
    principal = auth.authenticate(tokens.issue(auth.authenticate(mint(rsa_key)), body(), None)["token"])
    expect(403, "forbidden", tokens.check_issuer, principal)


# ---------------------------------------------------------------- SessionTokens (auth off)

def test_auth_off_answers_an_unsigned_token_with_the_same_claims(auth, helpers, mint, rsa_key):
    tokens = SessionTokens(load_config(environ={}))
    tokens.check_issuer(NO_AUTH)  # nobody is refused
    api_key = mint(rsa_key, tenant_id="initech")
    issued = tokens.issue(NO_AUTH, body(ttl_seconds=30), api_key)
    assert jwt.get_unverified_header(issued["token"])["alg"] == "none" and issued["expires_in"] == 30
    claims = jwt.get_unverified_claims(issued["token"])
    assert (claims["session_id"], claims["tenant_id"], claims["sub"], claims["principal_type"]) == (
        "s1", "initech", "planner", "agent")
    for key in (None, "not-a-jwt", mint(rsa_key, tenant_id=None)):
        claims = jwt.get_unverified_claims(tokens.issue(NO_AUTH, body(), key)["token"])
        assert claims["tenant_id"] == AUTH_OFF_TENANT
    expect(400, "invalid_request", tokens.issue, NO_AUTH, body(scopes=[]), None)
    expect(401, "invalid_token", auth.authenticate, issued["token"])  # never a token for a jwt-mode node
