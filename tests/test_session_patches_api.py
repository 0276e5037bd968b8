"""PATCH, archive and unarchive of a real single node (auth off), and the event and record shapes it serves.

Owns: `PATCH /v1/sessions/:id` (title set and cleared, metadata merged,
version, 409 expected_version_conflict with current_version, 400s, 404),
`POST /v1/sessions/:id/archive` and `/unarchive`, the `archived` filter of
`GET /v1/sessions` (default, true, all, full pages past archived sessions),
metadata filters after a patch, appends to an archived session (accepted),
`creator_principal` on create (accepted, ignored), events with `cursor`, a
default actor and no null source on the events page, the WebSocket tail and
SSE, and version/archived across a SIGKILL restart.
Most tests share one node and use their own session ids. Must not: wait
without a bound.
"""

import pytest

from tests.auth.node_helpers import list_ids
from tests.sse_client import SseTail
from tests.tail_client import TailClient


@pytest.fixture
def server(shared_server):
    return shared_server


def patch(server, session_id, body):
    return server.request("PATCH", f"/v1/sessions/{session_id}", body)


def post(server, session_id, action):
    return server.request("POST", f"/v1/sessions/{session_id}/{action}", {})


def error_of(response, status, extra=()):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"} | set(extra) and body["message"], body
    return body["error"]


def listed_ids(server, query=""):
    """Every session id listed with ``query``, walking every page (auth off: no token)."""
    return list_ids(server, None, query)


def test_patch_title_metadata_and_version(server, sid):
    created = server.create(sid, title="T", metadata={"team": "a", "keep": 1})
    assert (created["version"], created["archived"]) == (1, False) and "tenant_id" not in created
    response = patch(server, sid, {"title": "U", "metadata": {"team": "b"}, "expected_version": 1})
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["title"] == "U" and record["metadata"] == {"team": "b", "keep": 1} and record["version"] == 2
    assert record["created_at"] == created["created_at"] and record["updated_at"] >= created["updated_at"]
    assert server.request("GET", f"/v1/sessions/{sid}").json() == record
    cleared = patch(server, sid, {"title": None}).json()
    assert cleared["title"] is None and cleared["version"] == 3


def test_a_stale_expected_version_is_409_with_current_version(server, sid):
    server.create(sid)
    assert patch(server, sid, {"title": "a"}).json()["version"] == 2
    response = patch(server, sid, {"title": "b", "expected_version": 1})
    assert error_of(response, 409, {"current_version"}) == "expected_version_conflict"
    assert response.json()["current_version"] == 2
    assert server.request("GET", f"/v1/sessions/{sid}").json()["title"] == "a"


@pytest.mark.parametrize("body, code", [
    ({}, "invalid_session"), (None, "invalid_session"), ({"metadata": {}}, "invalid_metadata"),
    ({"title": 1}, "invalid_session"), ({"title": "x", "expected_version": 0}, "invalid_session"),
    ({"metadata": "x"}, "invalid_metadata"), ({"title": "x", "bogus": 1}, "invalid_session"),
])
def test_bad_patches_are_400(server, sid, body, code):
    server.create(sid)
    assert error_of(patch(server, sid, body), 400) == code


def test_patch_archive_and_unarchive_of_an_unknown_session_are_404(server):
    assert error_of(patch(server, "nope-patch", {"title": "x"}), 404) == "session_not_found"
    assert error_of(post(server, "nope-patch", "archive"), 404) == "session_not_found"
    assert error_of(post(server, "nope-patch", "unarchive"), 404) == "session_not_found"


def test_archive_hides_a_session_from_the_default_listing(server, sid):
    active, archived = f"{sid}-active", f"{sid}-archived"
    server.create(active, metadata={"case": sid})
    server.create(archived, metadata={"case": sid})
    record = post(server, archived, "archive").json()
    assert (record["archived"], record["version"]) == (True, 1)
    assert post(server, archived, "archive").json()["archived"] is True  # idempotent
    query = f"&metadata.case={sid}"
    assert listed_ids(server, query) == [active]
    assert listed_ids(server, query + "&archived=false") == [active]
    assert listed_ids(server, query + "&archived=true") == [archived]
    assert sorted(listed_ids(server, query + "&archived=all")) == sorted([active, archived])
    assert post(server, archived, "unarchive").json()["archived"] is False
    assert sorted(listed_ids(server, query)) == sorted([active, archived])
    bad = server.request("GET", "/v1/sessions?archived=maybe")
    assert error_of(bad, 400) == "invalid_request"


def test_a_page_is_filled_past_archived_sessions(server, sid):
    ids = [f"{sid}-{n}" for n in range(6)]
    for session_id in ids:
        server.create(session_id, metadata={"case": sid})
    for session_id in ids[:4]:
        post(server, session_id, "archive")
    page = server.request("GET", f"/v1/sessions?limit=2&metadata.case={sid}").json()
    assert [record["id"] for record in page["sessions"]] == ids[4:]
    assert all(record["archived"] is False and record["version"] == 1 for record in page["sessions"])


def test_metadata_filters_see_a_patch(server, sid):
    server.create(sid, metadata={"stage": "draft"})
    patch(server, sid, {"metadata": {"stage": "final", "case": sid}})
    assert listed_ids(server, f"&metadata.case={sid}&metadata.stage=final") == [sid]
    assert listed_ids(server, f"&metadata.case={sid}&metadata.stage=draft") == []


def test_an_archived_session_takes_appends(server, sid):
    server.create(sid)
    post(server, sid, "archive")
    response = server.append(sid, 1)
    assert response.status_code == 201 and response.json()["seq"] == 1
    assert server.request("GET", f"/v1/sessions/{sid}").json()["archived"] is True


def test_create_accepts_and_ignores_creator_principal(server, sid):
    record = server.create(sid, creator_principal={"tenant_id": "t", "id": "u", "type": "user"})
    assert "creator_principal" not in record and "tenant_id" not in record


def test_events_have_a_cursor_an_actor_and_no_null_source_everywhere(server, sid):
    server.create(sid)
    assert server.append(sid, 1).status_code == 201
    assert server.append(sid, 2, source="cli", actor="user:u").status_code == 201
    page = server.request("GET", f"/v1/sessions/{sid}/events").json()["events"]
    tail = TailClient(server, sid)
    try:
        tail.read_until(2)
        ws_events = tail.events
    finally:
        tail.close()
    sse = SseTail(server, sid, cursor=0)
    try:
        sse.read_until(2)
        sse_events = sse.events
    finally:
        sse.close()
    for events in (page, ws_events, sse_events):
        first, second = events
        assert [first["cursor"], second["cursor"]] == [1, 2]
        assert first["actor"] == "service:service" and "source" not in first
        assert (second["actor"], second["source"]) == ("user:u", "cli")


def test_version_and_archived_survive_a_restart(make_server, sid):
    node = make_server()
    node.create(sid)
    patch(node, sid, {"title": "kept"})
    post(node, sid, "archive")
    node.kill()
    node.start()
    record = node.request("GET", f"/v1/sessions/{sid}").json()
    assert (record["title"], record["version"], record["archived"]) == ("kept", 2, True)
