"""Who wrote an event under auth: a service token's append defaults its actor to the service (SPEC.md §3).

Owns: the `actor` recorded for service-token appends on a real jwt-mode node:
`service:<sub>` when the body names none (the form principal actors use,
`user:<id>` / `agent:<id>`), the requested actor when it names one. Must
not: reach anything but 127.0.0.1, or wait without a bound.
"""

import pytest

from tests.auth.conftest import claims, jwt_env
from tests.server import StarciteServer
from tests.tail_client import TailClient


@pytest.fixture(scope="module")
def node(module_jwks, tmp_path_factory):
    server = StarciteServer(tmp_path_factory.mktemp("actor"), jwt_env(module_jwks.url))
    server.start()
    yield server
    server.stop()


def test_service_append_without_actor_is_recorded_as_the_service(node, rsa_key, sid):
    token = rsa_key.sign(claims(sub="svc-backend"))
    headers = {"Authorization": f"Bearer {token}"}
    assert node.request("POST", "/v1/sessions", {"id": sid}, headers=headers).status_code == 201
    bodies = [{}, {"actor": None}, {"actor": "user:alice"}]  # no actor, an explicit null, a chosen actor
    for seq, extra in enumerate(bodies, start=1):
        body = {"type": "message", "payload": {}, "producer_id": "p", "producer_seq": seq, **extra}
        response = node.request("POST", f"/v1/sessions/{sid}/append", body, headers=headers)
        assert response.status_code == 201, response.text
    tail = TailClient(node, sid, headers=[f"Authorization: Bearer {token}"])
    try:
        actors = [event["actor"] for event in tail.read_until(3)]
    finally:
        tail.close()
    assert actors == ["service:svc-backend", "service:svc-backend", "user:alice"]
