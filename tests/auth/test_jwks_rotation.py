"""Key rotation against a JWKS cache: a newly published key is trusted within seconds.

Owns: the unknown-`kid` refetch and its own rate limit
(`STARCITE_AUTH_JWKS_UNKNOWN_KID_REFETCH_MS`), apart from the periodic refresh:
in the cache with a fake clock, and end to end on a real jwt-mode node with
the default settings. Must not: reach anything but 127.0.0.1, or wait
without a bound.
"""

import time

import pytest

from starcite.api.auth.tokens import Authenticator
from starcite.api.auth.policy import AuthError
from tests.auth.conftest import JwksServer, claims, jwt_env, make_config


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def refused(auth, token) -> str:
    with pytest.raises(AuthError) as info:
        auth.authenticate(token)
    assert info.value.status == 401
    return info.value.message


def test_new_key_is_trusted_seconds_after_a_forged_kid_used_the_refetch(make_auth, mint, rsa_key, rsa_key2):
    with JwksServer([rsa_key.jwk()]) as jwks:
        clock = FakeClock()
        auth = make_auth(jwks.url, refresh_ms=60000, clock=clock, refetch_ms=3000)
        assert auth.authenticate(mint(rsa_key)).kind == "service"  # key A in use
        assert "unknown signing key id 'forged'" in refused(auth, mint(rsa_key, headers={"kid": "forged"}))
        assert jwks.hits == 2
        jwks.keys = [rsa_key.jwk(), rsa_key2.jwk()]  # key B is published
        clock.now += 1.0
        assert "rsa-2" in refused(auth, mint(rsa_key2))  # still inside the refetch interval: no fetch
        assert jwks.hits == 2
        clock.now += 2.0  # 3 s after the forged kid, 57 s before the periodic refresh
        assert auth.authenticate(mint(rsa_key2)).kind == "service"
        assert jwks.hits == 3


def test_forged_kids_cost_one_fetch_per_refetch_interval(make_auth, mint, rsa_key):
    with JwksServer([rsa_key.jwk()]) as jwks:
        clock = FakeClock()
        auth = make_auth(jwks.url, refresh_ms=60000, clock=clock, refetch_ms=3000)
        for second in range(9):
            for n in range(20):
                refused(auth, mint(rsa_key, headers={"kid": f"forged-{second}-{n}"}))
            clock.now += 1.0
        assert jwks.hits == 1 + 3  # the start, then one refetch per 3 s


def test_refetch_interval_comes_from_its_setting(rsa_key):
    with JwksServer([rsa_key.jwk()]) as jwks:
        auth = Authenticator(make_config(jwks.url, STARCITE_AUTH_JWKS_UNKNOWN_KID_REFETCH_MS="750"))
        assert auth.jwks.refetch_interval == pytest.approx(0.75)
        assert auth.jwks.interval == pytest.approx(60.0)


def test_rotation_on_a_running_node_with_default_settings(make_server, rsa_key, rsa_key2):
    """Default refresh (60 s) and refetch (3 s) intervals: B is trusted within seconds, not a minute."""
    with JwksServer([rsa_key.jwk()]) as jwks:
        node = make_server(jwt_env(jwks.url))

        def status(key, **headers):
            token = key.sign(claims(), **headers)
            return node.request("GET", "/v1/sessions?limit=1", headers={"Authorization": f"Bearer {token}"}).status_code

        assert status(rsa_key) == 200
        assert status(rsa_key, kid="forged") == 401  # uses up the unknown-kid refetch
        jwks.keys = [rsa_key.jwk(), rsa_key2.jwk()]
        published = time.monotonic()
        node.wait_until(lambda: status(rsa_key2) == 200, timeout=10.0, what="the new key to be trusted")
        assert time.monotonic() - published < 6.0
        hits = jwks.hits
        for n in range(30):  # a burst of forged kids: at most one more fetch
            assert status(rsa_key, kid=f"forged-{n}") == 401
        assert jwks.hits <= hits + 1
