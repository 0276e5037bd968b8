"""JWT auth end to end on real `starcite serve` processes (SPEC.md §3, issue 4): start-up and the JWKS.

Owns: a jwt-mode node refusing to start without its settings (one line, exit
2), keys rotated while it runs, a JWKS down at start (the node starts and
refuses until it is back) and down later (cached keys stay in use). Each
test starts its own node (and JWKS); none shares the module's `server`.

Must not: reach anything but 127.0.0.1, or wait without a bound.
"""

import pytest

from tests.auth.conftest import JwksServer, claims, jwt_env, remember
from tests.auth.node_helpers import call, error_of
from tests.server import StarciteServer


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
