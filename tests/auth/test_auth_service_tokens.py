"""Tests of starcite.api.auth.tokens on service JWTs, verified against a loopback JWKS.

Owns: RS256/ES256 service tokens and the claims they must carry (issuer,
audience, exp to the subsecond with leeway, tenant, scopes, session lock),
refused tokens (missing, malformed, alg none or confused, wrong key or kid),
and the JWKS cache behind them: unknown-kid refetches, rotation, the
periodic refresh (also as a greenlet under gevent), outages and the fetch
timeout. Must not: use the network beyond 127.0.0.1, or wait without a bound.
"""

import logging
import pathlib
import subprocess
import sys
import time

import pytest
from jose import jwt

from starcite.api.auth.tokens import PRINCIPAL_TYP
from tests.auth.conftest import FakeClock, expect, wait_until


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



def test_refresh_thread_under_gevent_monkey_patching(jwks_server):
    pytest.importorskip("gevent")
    script = (
        "from gevent import monkey; monkey.patch_all()\n"
        "import sys, time\n"
        "from starcite.api.auth.jwks import JwksCache\n"
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
