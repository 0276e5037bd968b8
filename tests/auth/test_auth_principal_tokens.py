"""Tests of starcite.api.auth.tokens on principal tokens: issued by Starcite, signed with its derived key.

Owns: issuing (defaults, max TTL, expiry, refused bodies, the auth:issue
scope, no scope, tenant or session beyond the service token's) and
verifying (another secret, a wrong key, our key signing only principal
tokens, claims checked even when signed by us, typ confusion, tampering),
and principal tokens disabled without ``SECRET_KEY_BASE``. Must not: use the
network beyond 127.0.0.1, or wait without a bound.
"""

import logging
import re
import time

import pytest
from jose import jwt

from starcite.api.auth.tokens import PRINCIPAL_TYP, Authenticator, derive_principal_key, issue_principal_token
from tests.auth.conftest import expect


# ---------------------------------------------------------------- principal tokens

PRINCIPAL = {"tenant_id": "acme", "id": "u1", "type": "user"}


def issue_body(**overrides):
    body = {"principal": dict(PRINCIPAL), "scopes": ["session:read", "session:append"], **overrides}
    return {k: v for k, v in body.items() if v is not None}


def test_issue_and_verify_principal_token(auth, mint, rsa_key):
    service = auth.authenticate(mint(rsa_key))
    now = int(time.time())
    issued = auth.issue_principal_token(service, issue_body(session_ids=["s1", "s2"], ttl_seconds=120), now=now)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", issued["expires_at"])
    ctx = auth.authenticate(issued["token"])
    assert (ctx.kind, ctx.tenant_id, ctx.subject, ctx.principal_type) == ("principal", "acme", "u1", "user")
    assert ctx.scopes == {"session:read", "session:append"} and ctx.session_ids == {"s1", "s2"}
    assert ctx.expires_at == now + 120 and ctx.actor == "user:u1"
    assert jwt.get_unverified_header(issued["token"])["typ"] == PRINCIPAL_TYP


def test_principal_token_defaults(auth, mint, rsa_key):
    service = auth.authenticate(mint(rsa_key))
    body = issue_body(principal={**PRINCIPAL, "type": "agent", "id": "planner"})
    ctx = auth.authenticate(auth.issue_principal_token(service, body, now=time.time())["token"])
    assert ctx.session_ids is None and ctx.actor == "agent:planner"
    assert ctx.expires_at - time.time() == pytest.approx(600, abs=5)


def test_principal_token_max_ttl(auth, mint, rsa_key):
    service = auth.authenticate(mint(rsa_key))
    assert auth.authenticate(auth.issue_principal_token(service, issue_body(ttl_seconds=900))["token"])
    err = expect(400, "invalid_request", auth.issue_principal_token, service, issue_body(ttl_seconds=901))
    assert "900" in err.message


def test_principal_token_expiry(auth, mint, rsa_key):
    service = auth.authenticate(mint(rsa_key))
    old = auth.issue_principal_token(service, issue_body(ttl_seconds=60), now=time.time() - 120)
    expect(401, "token_expired", auth.authenticate, old["token"])
    within_leeway = auth.issue_principal_token(service, issue_body(ttl_seconds=60), now=time.time() - 70)
    assert auth.authenticate(within_leeway["token"]).kind == "principal"


@pytest.mark.parametrize("body", [
    None, [], "x", {}, issue_body(principal="u1"), issue_body(principal={**PRINCIPAL, "type": "admin"}),
    issue_body(principal={**PRINCIPAL, "id": ""}), issue_body(principal={**PRINCIPAL, "tenant_id": 3}),
    issue_body(principal={"id": "u1", "type": "user"}), issue_body(principal={**PRINCIPAL, "role": "x"}),
    issue_body(scopes=None), issue_body(scopes=[]), issue_body(scopes="session:read"),
    issue_body(scopes=["session:destroy"]), issue_body(scopes=["auth:issue"]), issue_body(scopes=[1]),
    issue_body(session_ids=[]), issue_body(session_ids=[""]), issue_body(session_ids="s1"),
    issue_body(session_id="s1"), issue_body(ttl_seconds=0), issue_body(ttl_seconds="60"),
    issue_body(ttl_seconds=True), issue_body(ttl_seconds=1.5),
], ids=str)
def test_issue_rejects_bad_bodies(auth, mint, rsa_key, body):
    expect(400, "invalid_request", auth.issue_principal_token, auth.authenticate(mint(rsa_key)), body)


def test_issue_requires_the_auth_issue_scope(auth, mint, rsa_key):
    service = auth.authenticate(mint(rsa_key, scope="session:read session:append"))
    expect(403, "forbidden_scope", auth.issue_principal_token, service, issue_body())


def test_issue_cannot_grant_scopes_the_service_token_lacks(auth, mint, rsa_key):
    service = auth.authenticate(mint(rsa_key, scope="auth:issue session:read"))
    assert auth.issue_principal_token(service, issue_body(scopes=["session:read"]))["token"]
    err = expect(403, "forbidden_scope", auth.issue_principal_token, service, issue_body())
    assert "session:append" in err.message


def test_issue_is_fenced_to_the_service_tenant(auth, mint, rsa_key):
    service = auth.authenticate(mint(rsa_key))
    body = issue_body(principal={**PRINCIPAL, "tenant_id": "globex"})
    expect(403, "forbidden_tenant", auth.issue_principal_token, service, body)


def test_issue_respects_the_service_session_lock(auth, mint, rsa_key):
    service = auth.authenticate(mint(rsa_key, session_id="s1"))
    assert auth.issue_principal_token(service, issue_body(session_ids=["s1"]))["token"]
    for session_ids in (None, ["s2"], ["s1", "s2"]):
        expect(403, "forbidden_session", auth.issue_principal_token, service, issue_body(session_ids=session_ids))


def test_principal_token_cannot_issue(auth, mint, rsa_key):
    service = auth.authenticate(mint(rsa_key))
    principal = auth.authenticate(issue_principal_token(service, issue_body(), auth)["token"])
    expect(403, "forbidden", issue_principal_token, principal, issue_body(), auth)


def test_principal_token_from_another_secret_is_rejected(auth, make_auth, jwks_server, mint, rsa_key):
    other = make_auth(jwks_server.url, SECRET_KEY_BASE="t" * 64)
    token = other.issue_principal_token(other.authenticate(mint(rsa_key)), issue_body())["token"]
    expect(401, "invalid_token", auth.authenticate, token)
    salted = make_auth(jwks_server.url, STARCITE_AUTH_PRINCIPAL_TOKEN_SALT="other-salt")
    expect(401, "invalid_token", salted.authenticate, token)


def _principal_claims(**overrides):
    return {"iss": "starcite", "aud": "starcite-principal", "sub": "u1", "tenant_id": "acme",
            "principal_type": "user", "scopes": ["session:append"], "exp": int(time.time()) + 60, **overrides}


@pytest.mark.parametrize("typ", [PRINCIPAL_TYP, "JWT"])
def test_hs256_token_with_a_wrong_key_is_rejected(auth, helpers, typ):
    token = helpers.hs256({"alg": "HS256", "typ": typ}, _principal_claims(), b"not-our-key")
    expect(401, "invalid_token", auth.authenticate, token)


def test_our_key_only_signs_principal_tokens(auth, helpers):
    key = derive_principal_key("s" * 64, "principal-token-v1")
    assert auth.authenticate(helpers.hs256({"alg": "HS256", "typ": PRINCIPAL_TYP}, _principal_claims(), key))
    service_shaped = helpers.hs256({"alg": "HS256", "typ": "JWT"}, helpers.claims(), key)
    expect(401, "invalid_token", auth.authenticate, service_shaped)


@pytest.mark.parametrize("overrides", [
    {"iss": "https://idp.test/"}, {"aud": "starcite-api"}, {"principal_type": "service"},
    {"scopes": ["auth:issue"]}, {"scopes": []}, {"session_ids": "s1"}, {"tenant_id": None},
], ids=str)
def test_principal_claims_are_checked_even_when_signed_by_us(auth, helpers, overrides):
    key = derive_principal_key("s" * 64, "principal-token-v1")
    token = helpers.hs256({"alg": "HS256", "typ": PRINCIPAL_TYP}, _principal_claims(**overrides), key)
    expect(401, "invalid_token", auth.authenticate, token)


def test_service_token_with_principal_typ_is_rejected(auth, mint, rsa_key):
    expect(401, "invalid_token", auth.authenticate, mint(rsa_key, headers={"typ": PRINCIPAL_TYP}))


def test_tampered_principal_token_is_rejected(auth, mint, rsa_key, helpers):
    token = auth.issue_principal_token(auth.authenticate(mint(rsa_key)), issue_body())["token"]
    header, _claims, signature = token.split(".")
    forged = f"{header}.{helpers.b64(_principal_claims(tenant_id='globex'))}.{signature}"
    expect(401, "invalid_token", auth.authenticate, forged)


def test_without_secret_key_base_principal_tokens_are_disabled(jwks_server, mint, rsa_key, helpers, caplog):
    # load_config refuses jwt mode without SECRET_KEY_BASE; the Authenticator still fails closed if given such a config.
    config = helpers.make_config(jwks_server.url).replace(secret_key_base=None)
    with caplog.at_level(logging.WARNING, logger="starcite.auth"):
        auth = Authenticator(config)
    assert "SECRET_KEY_BASE" in caplog.text
    auth.jwks.refresh()
    expect(503, "auth_unavailable", auth.issue_principal_token, auth.authenticate(mint(rsa_key)), issue_body())
    key = derive_principal_key("", "principal-token-v1")
    token = helpers.hs256({"alg": "HS256", "typ": PRINCIPAL_TYP}, _principal_claims(), key)
    expect(401, "invalid_token", auth.authenticate, token)


def test_authenticator_builds_its_own_jwks_cache(jwks_server, helpers):
    auth = Authenticator(helpers.make_config(jwks_server.url, STARCITE_AUTH_JWKS_REFRESH_MS="1234"))
    assert auth.jwks.url == jwks_server.url and auth.jwks.interval == pytest.approx(1.234)
    assert auth.jwks.refetch_interval == pytest.approx(3.0)  # the default of its own setting
    assert jwks_server.hits == 0  # nothing is fetched before start()
