"""Helpers for the end-to-end auth tests: what a client of a jwt-mode node sends and checks.

Owns: requests with a bearer token, the error body of a refusal, creating,
appending, listing every page, issuing principal tokens (each one
`remember`-ed for the log check), a session with a short-lived reader, tail
URLs with ``access_token`` and refused tail upgrades, and `OTHER`, the
foreign tenant. Must not: hold
fixtures (those are in conftest.py), start nodes, reach anything but
127.0.0.1, or wait without a bound.
"""

import json
import urllib.parse

import pytest
import websocket
from jose import jwt

from tests.auth.conftest import TENANT, remember

OTHER = "globex"


def bearer(token):
    return {"Authorization": f"Bearer {token}"} if token else {}


def call(server, method, path, token=None, body=None):
    return server.request(method, path, body, headers=bearer(token))


def error_of(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"} and body["message"], body
    return body["error"]


def create(server, token, session_id=None, **fields):
    body = {**fields, **({"id": session_id} if session_id else {})}
    response = call(server, "POST", "/v1/sessions", token, body)
    assert response.status_code == 201, response.text
    return response.json()


def append(server, token, session_id, producer_seq=1, producer_id="p1", **fields):
    body = {"type": "message", "payload": {"n": producer_seq}, "producer_id": producer_id,
            "producer_seq": producer_seq, **fields}
    return call(server, "POST", f"/v1/sessions/{session_id}/append", token, body)


def list_ids(server, token, query=""):
    """Every session id the token can list, walking `next_cursor` to the end."""
    ids, cursor = [], None
    for _ in range(100):
        suffix = f"&cursor={urllib.parse.quote(cursor)}" if cursor else ""
        response = call(server, "GET", f"/v1/sessions?limit=1000{query}{suffix}", token)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [record["id"] for record in page["sessions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("listing did not end")


def issue(server, service_token, principal_id="bot", kind="agent", scopes=("session:read", "session:append"),
          tenant=TENANT, **extra):
    body = {"principal": {"tenant_id": tenant, "id": principal_id, "type": kind}, "scopes": list(scopes), **extra}
    return call(server, "POST", "/v1/auth/issue", service_token, body)


def principal(server, service_token, *args, **kwargs) -> str:
    response = issue(server, service_token, *args, **kwargs)
    assert response.status_code == 201, response.text
    return remember(response.json()["token"])


def expiring_reader(server, service_token, session_id, ttl_seconds=2):
    """Session `session_id` with one event, and a read-only principal token for it alone that expires in
    `ttl_seconds`: ``(token, exp)``."""
    create(server, service_token, session_id)
    assert append(server, service_token, session_id).status_code == 201
    token = principal(server, service_token, scopes=["session:read"], session_ids=[session_id],
                      ttl_seconds=ttl_seconds)
    return token, jwt.get_unverified_claims(token)["exp"]


def token_query(token):
    """The `&access_token=` suffix of a tail URL (how browsers authenticate WebSockets)."""
    return f"&access_token={urllib.parse.quote(token)}" if token else ""


def tail_url(server, session_id, token=None):
    return f"{server.ws_base}/v1/sessions/{session_id}/tail?cursor=0{token_query(token)}"


def refused_upgrade(server, session_id, token=None, headers=None):
    """(status, error code) of a tail upgrade the node must refuse."""
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(tail_url(server, session_id, token), timeout=5, header=headers or [])
    body = info.value.resp_body
    return info.value.status_code, json.loads(body)["error"] if body else None
