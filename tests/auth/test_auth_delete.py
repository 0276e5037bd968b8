"""JWT auth on `DELETE /v1/sessions/:id` end to end: the `session:delete` scope and the tenant fence.

Owns: a token without `session:delete` refused (403 forbidden_scope) and the
session untouched; a foreign tenant's token refused (403 forbidden_tenant)
before anything is deleted; a principal granted `session:delete` for its own
session deletes it, and one locked to another session cannot; no token 401.
Uses the module's jwt node (conftest.py `server`). Must not: test what a
delete does (tests/test_delete.py), reach anything but 127.0.0.1, or wait
without a bound.
"""

from tests.auth.node_helpers import OTHER, call, create, error_of, principal

ALL = "session:create session:read session:append session:delete auth:issue"


def test_delete_needs_a_token_and_the_delete_scope(server, svc, sid):
    create(server, svc(), sid)
    assert error_of(call(server, "DELETE", f"/v1/sessions/{sid}"), 401) == "unauthorized"
    assert error_of(call(server, "DELETE", f"/v1/sessions/{sid}", svc()), 403) == "forbidden_scope"
    assert call(server, "GET", f"/v1/sessions/{sid}", svc()).status_code == 200  # untouched
    response = call(server, "DELETE", f"/v1/sessions/{sid}", svc(scope="session:delete"))
    assert response.status_code == 200, response.text
    assert error_of(call(server, "GET", f"/v1/sessions/{sid}", svc()), 404) == "session_not_found"


def test_delete_is_tenant_fenced(server, svc, sid):
    create(server, svc(), sid)
    theirs = svc(tenant_id=OTHER, scope=ALL)
    assert error_of(call(server, "DELETE", f"/v1/sessions/{sid}", theirs), 403) == "forbidden_tenant"
    assert call(server, "GET", f"/v1/sessions/{sid}", svc()).status_code == 200
    assert error_of(call(server, "DELETE", f"/v1/sessions/{sid}-nope", theirs), 404) == "session_not_found"
    assert call(server, "DELETE", f"/v1/sessions/{sid}", svc(scope=ALL)).status_code == 200


def test_a_principal_deletes_only_the_sessions_it_is_locked_to(server, svc, sid):
    service = svc(scope=ALL)
    create(server, service, sid)
    create(server, service, sid + "-other")
    token = principal(server, service, scopes=["session:read", "session:delete"], session_ids=[sid])
    assert error_of(call(server, "DELETE", f"/v1/sessions/{sid}-other", token), 403) == "forbidden_session"
    assert call(server, "DELETE", f"/v1/sessions/{sid}", token).status_code == 200
    reader = principal(server, service, scopes=["session:read"], session_ids=[sid + "-other"])
    assert error_of(call(server, "DELETE", f"/v1/sessions/{sid}-other", reader), 403) == "forbidden_scope"
