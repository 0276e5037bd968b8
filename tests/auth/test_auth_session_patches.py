"""JWT auth end to end on a real `starcite serve` process: PATCH, archive and unarchive.

Owns: the scope they need (`session:create`, upstream's "manage"), the
session lock, the tenant fence (a foreign tenant's session cannot be
patched, archived or unarchived, and is unchanged), the tenant a patch keeps
(`metadata.tenant_id` and the record's `tenant_id`), the listing's archived
filter inside the tenant, and the actor of an append under auth (the
token's, never the default). Uses the module's jwt node (`server`, from
conftest.py) and its own session ids. Must not: reach anything but
127.0.0.1, or wait without a bound.
"""

from tests.auth.conftest import TENANT
from tests.auth.node_helpers import OTHER, append, call, create, error_of, list_ids


def patch(server, token, session_id, body):
    return call(server, "PATCH", f"/v1/sessions/{session_id}", token, body)


def test_a_patch_keeps_the_tenant(server, svc, sid):
    token = svc()
    record = create(server, token, sid, metadata={"team": "a"})
    assert record["tenant_id"] == TENANT and record["version"] == 1 and record["archived"] is False
    response = patch(server, token, sid, {"title": "t", "metadata": {"team": "b"}, "expected_version": 1})
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["metadata"] == {"tenant_id": TENANT, "team": "b"} and record["tenant_id"] == TENANT
    moved = patch(server, token, sid, {"metadata": {"tenant_id": OTHER}})
    assert error_of(moved, 400) == "invalid_metadata"
    assert call(server, "GET", f"/v1/sessions/{sid}", token).json()["tenant_id"] == TENANT


def test_patch_and_archive_need_session_create(server, svc, sid):
    create(server, svc(), sid)
    limited = svc(scope="session:read session:append")
    assert error_of(patch(server, limited, sid, {"title": "x"}), 403) == "forbidden_scope"
    assert error_of(call(server, "POST", f"/v1/sessions/{sid}/archive", limited), 403) == "forbidden_scope"
    assert error_of(patch(server, limited, "missing-session", {"title": "x"}), 403) == "forbidden_scope"
    locked = svc(session_id=sid + "-other")
    assert error_of(patch(server, locked, sid, {"title": "x"}), 403) == "forbidden_session"


def test_a_foreign_tenant_cannot_patch_archive_or_unarchive(server, svc, sid):
    theirs, ours = svc(tenant_id=OTHER), svc()
    create(server, theirs, sid, title="theirs")
    assert error_of(patch(server, ours, sid, {"title": "mine"}), 403) == "forbidden_tenant"
    for action in ("archive", "unarchive"):
        assert error_of(call(server, "POST", f"/v1/sessions/{sid}/{action}", ours), 403) == "forbidden_tenant"
    record = call(server, "GET", f"/v1/sessions/{sid}", theirs).json()
    assert (record["title"], record["version"], record["archived"], record["tenant_id"]) == ("theirs", 1, False, OTHER)


def test_archived_listing_stays_inside_the_tenant(server, svc, sid):
    ours, theirs = svc(), svc(tenant_id=OTHER)
    create(server, ours, sid, metadata={"case": sid})
    create(server, theirs, sid + "-theirs", metadata={"case": sid})
    for token, session_id in ((ours, sid), (theirs, sid + "-theirs")):
        assert call(server, "POST", f"/v1/sessions/{session_id}/archive", token).status_code == 200
    assert list_ids(server, ours, f"&metadata.case={sid}&archived=true") == [sid]
    assert list_ids(server, ours, f"&metadata.case={sid}") == []


def test_an_append_under_auth_records_the_tokens_actor(server, svc, sid):
    token = svc()
    create(server, token, sid)
    assert append(server, token, sid).status_code == 201
    event = call(server, "GET", f"/v1/sessions/{sid}/events", token).json()["events"][0]
    assert event["actor"] == "service:svc-backend" and event["cursor"] == 1
