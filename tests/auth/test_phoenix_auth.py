"""The Phoenix socket under JWT auth on a real node: the `token` parameter opens it (and never
reaches the log), the refusals of the upgrade (401) and of joins (scope, tenant, session lock,
the lifecycle channel's service token), and the token's expiry: ``token_expired`` then
``phx_close`` on the tail channel, later joins refused, the socket still answering heartbeats;
and the newest TypeScript SDK refreshing its token on ``token_expired`` and resuming.
The node is the auth conftest's `server` (one per module, leeway 0).

Must not: reach anything but 127.0.0.1, or wait without a bound."""

import shutil
import time
import urllib.parse

import pytest

from tests.auth.conftest import claims, jwt_env, remember
from tests.auth.node_helpers import OTHER, append, create, expiring_reader, principal
from tests.cluster_helpers import Cluster
from tests.phoenix_client import PhoenixClient, Refused
from tests.test_ts_sdk import SdkDriver
from tests.ts_sdk import NEWEST, install_sdk


def test_the_token_parameter_opens_the_socket_and_is_redacted(server, svc, sid):
    token = svc()
    create(server, token, sid)
    assert append(server, token, sid).status_code == 201
    socket = PhoenixClient.open(server.port, token=token)
    try:
        join_ref, reply = socket.join(f"tail:{sid}")
        assert reply["status"] == "ok"
        assert [e["seq"] for e in socket.events_until(f"tail:{sid}", join_ref, 1)] == [1]
    finally:
        socket.close()
    server.wait_until(lambda: "/v1/socket/websocket?vsn=2.0.0&token=[REDACTED]" in server.output(), timeout=5,
                      what="the redacted access line")
    assert urllib.parse.quote(token) not in server.output() and token not in server.output()


@pytest.mark.parametrize("make_token, code", [
    (lambda svc: None, "unauthorized"), (lambda svc: "not-a-jwt", "invalid_token"),
    (lambda svc: svc(exp=int(time.time()) - 60), "token_expired"),
])
def test_the_upgrade_is_refused_without_a_valid_token(server, svc, make_token, code):
    with pytest.raises(Refused) as info:
        PhoenixClient.open(server.port, token=make_token(svc))
    assert (info.value.status, info.value.code) == (401, code)


def test_joins_are_refused_by_scope_tenant_and_session_lock(server, svc, sid):
    owner = svc()
    create(server, owner, sid)
    create(server, owner, f"{sid}-other")
    locked = principal(server, owner, scopes=["session:read"], session_ids=[f"{sid}-other"])
    cases = [(svc(scope="session:append"), "forbidden_scope"), (svc(tenant_id=OTHER), "forbidden_tenant"),
             (locked, "forbidden_session")]
    for token, reason in cases:
        socket = PhoenixClient.open(server.port, token=token)
        try:
            _join_ref, reply = socket.join(f"tail:{sid}")
            assert (reply["status"], reply["response"]["reason"]) == ("error", reason)
        finally:
            socket.close()


def test_the_lifecycle_channel_needs_a_service_token(server, svc, sid):
    owner = svc()
    create(server, owner, sid)
    reader = principal(server, owner, scopes=["session:read"])
    for token, outcome in [(owner, ("ok", None)), (reader, ("error", "forbidden")),
                           (svc(scope="session:append"), ("error", "forbidden_scope"))]:
        socket = PhoenixClient.open(server.port, token=token)
        try:
            _join_ref, reply = socket.join("lifecycle")
            assert (reply["status"], reply["response"].get("reason")) == outcome
        finally:
            socket.close()


def test_token_expiry_pushes_token_expired_then_phx_close(server, svc, sid):
    token, exp = expiring_reader(server, svc(), sid)
    socket = PhoenixClient.open(server.port, token=token)
    try:
        join_ref, reply = socket.join(f"tail:{sid}")
        assert reply["status"] == "ok"
        assert [e["seq"] for e in socket.events_until(f"tail:{sid}", join_ref, 1)] == [1]
        expired = socket.wait_for(lambda m: m[3] == "token_expired", timeout=8)
        ended_at = time.time()
        assert expired == [join_ref, None, f"tail:{sid}", "token_expired", {"reason": "token_expired"}]
        assert socket.next()[3] == "phx_close"
        assert exp <= ended_at <= exp + 2.0
        _join_ref, again = socket.join(f"tail:{sid}")
        assert (again["status"], again["response"]["reason"]) == ("error", "token_expired")
        assert socket.heartbeat()["status"] == "ok"
    finally:
        socket.close()


@pytest.fixture(scope="module")
def newest_sdk(tmp_path_factory):
    return shutil.which("node"), str(install_sdk(NEWEST, tmp_path_factory.mktemp("ts-sdk")))


SHORT_TOKENS = {"STARCITE_AUTH_JWT_LEEWAY_SECONDS": "0", "STARCITE_AUTH_PRINCIPAL_TOKEN_DEFAULT_TTL_SECONDS": "2"}


def test_the_sdk_refreshes_its_token_on_token_expired_and_resumes(make_server, module_jwks, rsa_key, newest_sdk,
                                                                  sid):
    """The newest TypeScript SDK following a tail channel: its session token (2 s) expires, the
    channel pushes token_expired, the SDK mints a new token and rejoins from its cursor."""
    node = make_server(jwt_env(module_jwks.url, **SHORT_TOKENS))
    refreshing_follow(node, node, rsa_key, newest_sdk, sid)


def test_on_a_cluster_the_sdk_refreshes_its_token_and_resumes(tmp_path, module_jwks, rsa_key, newest_sdk, sid):
    """The same on a 3-node cluster: the SDK (its token minting, its channel) on n2, the appends
    through n3."""
    cluster = Cluster(tmp_path / "cluster", 3, env=jwt_env(module_jwks.url, **SHORT_TOKENS))
    try:
        cluster.start()
        refreshing_follow(cluster["n2"], cluster["n3"], rsa_key, newest_sdk, sid)
    finally:
        cluster.stop()


def refreshing_follow(node, writer, rsa_key, newest_sdk, sid):
    """The SDK on ``node`` follows ``sid`` across its token's refresh; appends go through ``writer``."""
    api_key = remember(rsa_key.sign(claims()))
    create(writer, api_key, sid)
    sdk = SdkDriver(newest_sdk, node.base, api_key)
    try:
        sdk.call("open_refreshing", name="a", session_id=sid)
        sdk.call("follow", name="a")
        node.wait_until(lambda: node.metric("starcite_phoenix_channels") == 1, 10, "the SDK's channel joined")
        assert append(writer, api_key, sid, 1).status_code == 201
        assert [e["seq"] for e in sdk.events("a", 1)] == [1]
        sdk.wait(lambda line: line.get("refreshed") == 2, timeout=15, what="a refreshed token")
        node.wait_until(lambda: node.metric("starcite_phoenix_channels") == 1, 10, "the SDK's channel rejoined")
        assert append(writer, api_key, sid, 2).status_code == 201
        assert [e["seq"] for e in sdk.events("a", 2)] == [1, 2]
        time.sleep(0.3)
        assert [e["seq"] for e in sdk._events("a")] == [1, 2]  # once each, across the refresh
    finally:
        sdk.close()
