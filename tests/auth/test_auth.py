"""Tests of starcite.api.auth: service JWTs over a loopback JWKS, principal
tokens, the policy helpers, token extraction and log redaction.

Owns: the behaviour contract of the auth module. Must not: use the network
beyond 127.0.0.1, or wait without a bound.
"""

import logging
import pathlib
import re
import subprocess
import sys
import time

import pytest
from jose import jwt

from starcite.api.auth import (PRINCIPAL_TYP, Authenticator, derive_principal_key, extract_token, issue_principal_token,
                               redact)
from starcite.api.policy import (
    NO_AUTH, AuthContext, AuthError, creator_principal, fence_create_metadata, require_create_session, require_scope,
    require_service, require_session, require_tenant, resolve_actor,
)


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


# ---------------------------------------------------------------- service tokens

def test_valid_rs256_service_token(auth, mint, rsa_key):
    token = mint(rsa_key)
    ctx = auth.authenticate(token)
    assert ctx.kind == "service" and ctx.tenant_id == "acme" and ctx.subject == "svc-backend"
    assert ctx.principal_type is None and ctx.session_ids is None
    assert ctx.scopes == {"session:create", "session:read", "session:append", "auth:issue"}
    assert ctx.expires_at == jwt.get_unverified_claims(token)["exp"]
    assert ctx.actor == "service:svc-backend"


def test_valid_es256_service_token(auth, mint, ec_key):
    assert auth.authenticate(mint(ec_key)).tenant_id == "acme"


def test_audience_list_containing_ours_is_accepted(auth, mint, rsa_key):
    assert auth.authenticate(mint(rsa_key, aud=["other", "starcite-api"])).kind == "service"


@pytest.mark.parametrize("overrides", [
    {"iss": "https://evil.test/"}, {"aud": "another-api"},
    {"iss": None}, {"aud": None}, {"exp": None}, {"sub": None}, {"tenant_id": None},
    {"tenant_id": ""}, {"tenant_id": 7}, {"sub": 7}, {"exp": "soon"}, {"exp": [1]},
    {"nbf": int(time.time()) + 3600}, {"scope": ["session:read"]}, {"scopes": "session:read"},
    {"session_id": ""}, {"session_id": 5},
], ids=str)
def test_bad_service_claims_are_rejected(auth, mint, rsa_key, overrides):
    expect(401, "invalid_token", auth.authenticate, mint(rsa_key, **overrides))


def test_expired_token(auth, mint, rsa_key):
    err = expect(401, "token_expired", auth.authenticate, mint(rsa_key, exp=int(time.time()) - 60))
    assert "expired" in err.message


def test_expiry_leeway(make_auth, jwks_server, mint, rsa_key):
    recent = mint(rsa_key, exp=int(time.time()) - 10)
    assert make_auth(jwks_server.url).authenticate(recent).kind == "service"  # default leeway 30 s
    strict = make_auth(jwks_server.url, STARCITE_AUTH_JWT_LEEWAY_SECONDS="0")
    expect(401, "token_expired", strict.authenticate, recent)


def test_expiry_is_exact_to_the_subsecond(make_auth, jwks_server, mint, rsa_key):
    # python-jose alone would still accept exp == the current whole second
    strict = make_auth(jwks_server.url, STARCITE_AUTH_JWT_LEEWAY_SECONDS="0")
    expect(401, "token_expired", strict.authenticate, mint(rsa_key, exp=int(time.time())))
    assert strict.authenticate(mint(rsa_key, exp=int(time.time()) + 5)).expires_at > time.time()


@pytest.mark.parametrize("overrides, scopes", [
    ({"scope": "session:read  session:append"}, {"session:read", "session:append"}),
    ({"scope": None, "scopes": ["session:read", "auth:issue"]}, {"session:read", "auth:issue"}),
    ({"scope": "session:read", "scopes": ["session:append"]}, {"session:read", "session:append"}),
    ({"scope": None}, set()),
])
def test_scopes_from_string_or_array(auth, mint, rsa_key, overrides, scopes):
    assert auth.authenticate(mint(rsa_key, **overrides)).scopes == scopes


def test_session_id_claim_locks_the_token(auth, mint, rsa_key):
    assert auth.authenticate(mint(rsa_key, session_id="ses_1")).session_ids == {"ses_1"}


@pytest.mark.parametrize("token", [None, ""])
def test_missing_token(auth, token):
    expect(401, "unauthorized", auth.authenticate, token)


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "e30.e30.", "....", "\x00.\x01"])
def test_malformed_token(auth, token):
    expect(401, "invalid_token", auth.authenticate, token)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
def test_alg_none_is_rejected(auth, helpers, alg):
    token = f"{helpers.b64({'alg': alg, 'typ': 'JWT', 'kid': 'rsa-1'})}.{helpers.b64(helpers.claims())}."
    expect(401, "invalid_token", auth.authenticate, token)


@pytest.mark.parametrize("typ", ["JWT", PRINCIPAL_TYP])
def test_hs256_signed_with_the_public_key_is_rejected(auth, helpers, rsa_key, typ):
    header = {"alg": "HS256", "typ": typ, "kid": rsa_key.kid}
    for secret in (rsa_key.public_pem.encode(), rsa_key.public_pem.strip().encode()):
        expect(401, "invalid_token", auth.authenticate, helpers.hs256(header, helpers.claims(), secret))


def test_symmetric_keys_in_the_jwks_are_ignored(make_auth, jwks_server, helpers):
    secret = b"shared-secret-0123456789"
    jwks_server.keys.append({"kty": "oct", "kid": "hmac", "k": helpers.b64(secret), "alg": "HS256"})
    token = helpers.hs256({"alg": "HS256", "typ": "JWT", "kid": "hmac"}, helpers.claims(), secret)
    expect(401, "invalid_token", make_auth(jwks_server.url).authenticate, token)


def test_header_alg_must_match_the_key_alg(auth, helpers, rsa_key):
    token = rsa_key.sign(helpers.claims(), alg="RS384")
    err = expect(401, "invalid_token", auth.authenticate, token)
    assert "does not match" in err.message


def test_header_alg_must_match_the_key_type(make_auth, jwks_server, helpers, ec_key, rsa_key):
    jwks_server.keys = [rsa_key.jwk(), ec_key.jwk(alg=None)]  # without alg, kty and crv still decide
    auth = make_auth(jwks_server.url)
    expect(401, "invalid_token", auth.authenticate, ec_key.sign(helpers.claims(), kid=rsa_key.kid))
    as_p384 = jwt.encode(helpers.claims(), ec_key.signer(), algorithm="ES256",
                         headers={"kid": ec_key.kid, "alg": "ES384"})
    expect(401, "invalid_token", auth.authenticate, as_p384)
    assert auth.authenticate(ec_key.sign(helpers.claims())).kind == "service"


def test_key_without_alg_accepts_any_rsa_algorithm(make_auth, jwks_server, helpers, rsa_key):
    jwks_server.keys = [rsa_key.jwk(alg=None)]
    token = rsa_key.sign(helpers.claims(), alg="RS512")
    assert make_auth(jwks_server.url).authenticate(token).kind == "service"


def test_signature_from_another_key_with_a_known_kid(auth, mint, rsa_key, rsa_key2, helpers):
    token = rsa_key2.sign(helpers.claims(), kid=rsa_key.kid)
    expect(401, "invalid_token", auth.authenticate, token)


def test_missing_kid(make_auth, jwks_server, helpers, rsa_key):
    token = jwt.encode(helpers.claims(), rsa_key.signer(), algorithm="RS256")
    err = expect(401, "invalid_token", make_auth(jwks_server.url).authenticate, token)
    assert "kid" in err.message
    jwks_server.keys = [rsa_key.jwk()]
    assert make_auth(jwks_server.url).authenticate(token).kind == "service"


@pytest.mark.parametrize("kid", [["rsa-1"], {"k": 1}, 7])
def test_non_string_kid(auth, mint, rsa_key, kid):
    expect(401, "invalid_token", auth.authenticate, mint(rsa_key, headers={"kid": kid}))


def test_unknown_kid_refetches_at_most_once_per_refetch_interval(make_auth, jwks_server, mint, rsa_key):
    clock = FakeClock()
    auth = make_auth(jwks_server.url, refresh_ms=60000, clock=clock, refetch_ms=3000)
    assert jwks_server.hits == 1
    for forged in ("forged-1", "forged-2", "forged-3"):
        err = expect(401, "invalid_token", auth.authenticate, mint(rsa_key, headers={"kid": forged}))
        assert "unknown signing key" in err.message
    assert jwks_server.hits == 2
    clock.now += 2.9
    expect(401, "invalid_token", auth.authenticate, mint(rsa_key, headers={"kid": "forged-4"}))
    assert jwks_server.hits == 2
    clock.now += 0.2
    expect(401, "invalid_token", auth.authenticate, mint(rsa_key, headers={"kid": "forged-5"}))
    assert jwks_server.hits == 3
    assert auth.authenticate(mint(rsa_key)).kind == "service"  # known kid: no fetch
    assert jwks_server.hits == 3


def test_key_rotation_is_picked_up_on_unknown_kid(auth, jwks_server, mint, rsa_key, rsa_key2):
    assert auth.authenticate(mint(rsa_key)).kind == "service"
    jwks_server.keys = [rsa_key2.jwk()]
    assert auth.authenticate(mint(rsa_key2)).kind == "service"
    assert jwks_server.hits == 2
    expect(401, "invalid_token", auth.authenticate, mint(rsa_key))  # the retired key is gone


def test_periodic_refresh_runs_off_the_request_path(make_auth, jwks_server, mint, rsa_key2):
    auth = make_auth(jwks_server.url, refresh_ms=50, clock=lambda: 0.0)  # on-demand refetch: never again
    jwks_server.keys.append(rsa_key2.jwk())
    wait_until(lambda: "rsa-2" in auth.jwks.key_ids)
    assert auth.authenticate(mint(rsa_key2)).kind == "service"
    auth.stop()
    hits = jwks_server.hits
    time.sleep(0.2)
    assert jwks_server.hits == hits


@pytest.mark.parametrize("down", ["refused", "http_500"])
def test_jwks_down_at_start(make_auth, jwks_server, dead_url, mint, rsa_key, caplog, down):
    url = dead_url if down == "refused" else jwks_server.url
    jwks_server.status = 500
    with caplog.at_level(logging.WARNING, logger="starcite.auth"):
        auth = make_auth(url)  # starting must not raise
    assert "JWKS fetch" in caplog.text
    err = expect(401, "unauthorized", auth.authenticate, mint(rsa_key))
    assert "no signing keys available (JWKS endpoint unavailable)" in err.message


def test_jwks_recovers_after_being_down_at_start(make_auth, jwks_server, mint, rsa_key):
    jwks_server.status = 500
    auth = make_auth(jwks_server.url, clock=FakeClock())
    jwks_server.status = 200
    assert auth.jwks.refresh() is True
    assert auth.authenticate(mint(rsa_key)).kind == "service"


@pytest.mark.parametrize("down", ["stopped", "http_500", "not_json", "no_keys_list"])
def test_jwks_down_later_keeps_cached_keys(auth, jwks_server, mint, rsa_key, down):
    if down == "stopped":
        jwks_server.stop()
    elif down == "http_500":
        jwks_server.status = 500
    else:
        jwks_server.keys = None if down == "no_keys_list" else float("nan")
    assert auth.jwks.refresh() is False
    assert auth.authenticate(mint(rsa_key)).kind == "service"
    expect(401, "invalid_token", auth.authenticate, mint(rsa_key, headers={"kid": "new"}))


def test_jwks_fetch_is_bounded_by_the_timeout(make_auth, jwks_server):
    auth = make_auth(jwks_server.url)
    jwks_server.delay = 1.5
    started = time.monotonic()
    assert auth.jwks.refresh() is False  # fetch_timeout is 1.0 s in the fixture
    assert time.monotonic() - started < 1.4


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
    issue_body(scopes=["session:delete"]), issue_body(scopes=["auth:issue"]), issue_body(scopes=[1]),
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


# ---------------------------------------------------------------- policy helpers

def context(kind="principal", scopes=("session:read",), session_ids=None, principal_type="agent"):
    return AuthContext(kind, "acme", "bot", principal_type if kind == "principal" else None,
                       frozenset(scopes), None if session_ids is None else frozenset(session_ids), 2**31)


def test_require_scope():
    require_scope(context(), "session:read")
    expect(403, "forbidden_scope", require_scope, context(), "session:append")
    require_scope(NO_AUTH, "session:append")


def test_require_session():
    require_session(context(), "any")
    require_session(context(session_ids=["s1"]), "s1")
    expect(403, "forbidden_session", require_session, context(session_ids=["s1"]), "s2")
    expect(403, "forbidden_session", require_session, context(kind="service", session_ids=["s1"]), "s2")
    require_session(NO_AUTH, "s2")


def test_require_create_session():
    for ctx in (context(), NO_AUTH):
        require_create_session(ctx, None)
        require_create_session(ctx, "s9")
    locked = context(kind="service", session_ids=["s1"])
    require_create_session(locked, "s1")
    expect(403, "forbidden_session", require_create_session, locked, "s2")
    assert "by id" in expect(403, "forbidden_session", require_create_session, locked, None).message


def test_require_tenant():
    require_tenant(context(), "acme")
    for other in ("globex", None, ""):
        expect(403, "forbidden_tenant", require_tenant, context(kind="service"), other)
    require_tenant(NO_AUTH, "globex")


def test_require_service():
    require_service(context(kind="service"))
    require_service(NO_AUTH)
    expect(403, "forbidden", require_service, context())


@pytest.mark.parametrize("helper, args", [
    (require_scope, ("session:read",)), (require_session, ("s1",)), (require_tenant, ("acme",)),
    (require_service, ()), (fence_create_metadata, ({},)), (resolve_actor, (None,)), (creator_principal, ()),
    (require_create_session, ("s1",)),
])
def test_helpers_fail_closed_without_a_context(helper, args):
    expect(401, "unauthorized", helper, None, *args)


def test_fence_create_metadata():
    original = {"topic": "x"}
    assert fence_create_metadata(context(), original) == {"topic": "x", "tenant_id": "acme"}
    assert original == {"topic": "x"}
    assert fence_create_metadata(context(), None) == {"tenant_id": "acme"}
    assert fence_create_metadata(context(), {"tenant_id": "acme"}) == {"tenant_id": "acme"}
    expect(403, "forbidden_tenant", fence_create_metadata, context(kind="service"), {"tenant_id": "globex"})
    assert fence_create_metadata(NO_AUTH, {"tenant_id": "globex"}) == {"tenant_id": "globex"}
    assert fence_create_metadata(NO_AUTH, None) == {}


def test_resolve_actor():
    agent = context(principal_type="agent")
    assert resolve_actor(agent, None) == "agent:bot"
    assert resolve_actor(agent, "") == "agent:bot"
    assert resolve_actor(agent, "agent:bot") == "agent:bot"
    for forged in ("user:bot", "agent:other", "service:bot"):
        expect(403, "forbidden_actor", resolve_actor, agent, forged)
    assert resolve_actor(context(principal_type="user"), None) == "user:bot"
    assert resolve_actor(context(kind="service"), "agent:anyone") == "agent:anyone"
    assert resolve_actor(context(kind="service"), None) == "service:bot"
    assert resolve_actor(context(kind="service"), "") == "service:bot"
    assert resolve_actor(NO_AUTH, "human") == "human"


def test_creator_principal():
    assert creator_principal(context(principal_type="user")) == {"tenant_id": "acme", "id": "bot", "type": "user"}
    assert creator_principal(context(kind="service")) == {"tenant_id": "acme", "id": "bot", "type": "service"}
    assert creator_principal(NO_AUTH) is None


# ---------------------------------------------------------------- extraction and redaction

def headers(**values):
    lowered = {k.lower(): v for k, v in values.items()}
    return lambda name: lowered.get(name.lower())


@pytest.mark.parametrize("header, query, token", [
    ("Bearer abc", {}, "abc"),
    ("bearer abc", {}, "abc"),
    ("BEARER   abc  ", {}, "abc"),
    ("Bearer abc", {"access_token": "q"}, "abc"),
    (None, {"access_token": "q"}, "q"),
    (None, {"access_token": ["q1", "q2"]}, "q1"),
    ("Basic dXNlcjpwYXNz", {"access_token": "q"}, "q"),
    ("Basic dXNlcjpwYXNz", {}, None),
    ("Bearer", {}, None),
    ("Bearer ", {}, None),
    (None, {"access_token": ""}, None),
    (None, {"access_token": []}, None),
    (None, {}, None),
])
def test_extract_token(header, query, token):
    assert extract_token(headers(Authorization=header), query) == token


@pytest.mark.parametrize("text, expected", [
    ("/v1/sessions/s1/tail?access_token=eyJ.abc.def&cursor=3",
     "/v1/sessions/s1/tail?access_token=[REDACTED]&cursor=3"),
    ("GET /tail?cursor=1&access_token=eyJ.x.y HTTP/1.1", "GET /tail?cursor=1&access_token=[REDACTED] HTTP/1.1"),
    ("?ACCESS_TOKEN=x#frag", "?ACCESS_TOKEN=[REDACTED]#frag"),
    ("a?access_token=1&b=2&access_token=3", "a?access_token=[REDACTED]&b=2&access_token=[REDACTED]"),
    ("/v1/sessions?cursor=abc", "/v1/sessions?cursor=abc"),
    ("access_token=x&c=1", "access_token=[REDACTED]&c=1"),  # a bare query string
    ("c=1&access%5Ftoken=x&%61ccess_token=y", "c=1&access%5Ftoken=[REDACTED]&%61ccess_token=[REDACTED]"),
    ('1.2.3.4 "GET /t?access_token=eyJ.a.b HTTP/1.1" 101', '1.2.3.4 "GET /t?access_token=[REDACTED] HTTP/1.1" 101'),
    ("/t?my_access_token=x&access_tokens=y", "/t?my_access_token=x&access_tokens=y"),
    ("GET /v1/sessions/a=b/tail?access_token=x HTTP/1.1", "GET /v1/sessions/a=b/tail?access_token=[REDACTED] HTTP/1.1"),
    ("x=a=b&access_token=q=r&ACCESS%5ftoken=w", "x=a=b&access_token=[REDACTED]&ACCESS%5ftoken=[REDACTED]"),
    ("", ""),
])
def test_redact(text, expected):
    assert redact(text) == expected


def test_refresh_thread_under_gevent_monkey_patching(jwks_server):
    pytest.importorskip("gevent")
    script = (
        "from gevent import monkey; monkey.patch_all()\n"
        "import sys, time\n"
        "from starcite.api.jwks import JwksCache\n"
        "cache = JwksCache(sys.argv[1], 20, fetch_timeout=1.0)\n"
        "cache.start()\n"
        "deadline = time.monotonic() + 5\n"
        "while time.monotonic() < deadline and not cache.get_key('rsa-1'):\n"
        "    time.sleep(0.02)\n"
        "time.sleep(0.2)\n"
        "cache.stop()\n"
        "print(','.join(cache.key_ids))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, jwks_server.url], capture_output=True, text=True,
                            timeout=30, cwd=pathlib.Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ec-1,rsa-1"
    assert jwks_server.hits >= 3  # the periodic refresh ran as a greenlet
