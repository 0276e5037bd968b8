"""Tests of the request-side helpers of starcite.api.auth.policy and starcite.api.auth.tokens.

Owns: the policy helpers (scope, session, create, tenant and service checks,
failing closed without a context, fencing create metadata, resolving the
actor, the creator principal), token extraction from the header or
``access_token``, and `redact` of access tokens in log text. Must not: fetch
keys, use the network, or wait.
"""

import pytest

from starcite.api.auth.tokens import extract_token
from starcite.telemetry.redact import redact
from starcite.api.auth.policy import (
    NO_AUTH, AuthContext, creator_principal, fence_create_metadata, require_create_session, require_scope,
    require_service, require_session, require_tenant, resolve_actor,
)
from tests.auth.conftest import expect


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
    ("/v1/socket/websocket?token=eyJ.a.b&vsn=2.0.0", "/v1/socket/websocket?token=[REDACTED]&vsn=2.0.0"),
    ("/v1/socket/websocket?vsn=2.0.0&TOKEN=x", "/v1/socket/websocket?vsn=2.0.0&TOKEN=[REDACTED]"),
    ("/t?refresh_token=x&tokens=y&%74oken=z", "/t?refresh_token=x&tokens=y&%74oken=[REDACTED]"),
    ("", ""),
])
def test_redact(text, expected):
    assert redact(text) == expected
