"""`DELETE /v1/sessions/:id` and expiry on one node (a real `starcite serve`, its default workers).

Owns: the delete's answer and the 404s after it (get, events, append, tail,
a second delete), tails closed (WebSocket 4410 ``session_deleted``, SSE
``event: error``), a held long-poll answered 404, the list, the archive copy
gone (local archive), the restart (the delete is in the journal and the
snapshot), the recreate rule (409 ``session_deleted`` while the tombstone
lives, allowed after), and expiry (``ttl_seconds``, ``expires_at``,
``STARCITE_SESSION_TTL``). Must not: test the pure rules
(tests/rules/test_deletion.py), the adapters (tests/adapters) or the archive
outages (tests/test_delete_archive.py).
"""

import os
import threading
import time

import pytest

from starcite.adapters.local import LocalArchiveAdapter
from tests.server import wait_until
from tests.sse_client import SseTail
from tests.tail_client import TailClient

# tombstones live at least max(raft timeout, read cache TTL) + 10 s: short ones for the tests
FAST_TOMBSTONES = {"STARCITE_ARCHIVE_READ_CACHE_TTL_MS": "100", "STARCITE_RAFT_TIMEOUT_MS": "2000"}


def filled(server, session_id, count=3, **create):
    server.create(session_id, **create)
    for n in range(1, count + 1):
        assert server.append(session_id, n).status_code == 201
    return session_id


def archive_of(server):
    return LocalArchiveAdapter(os.path.join(server.data_dir, "archive"))


def archived(server, session_id, last_seq):
    return len(archive_of(server).read_lines(session_id, 1, last_seq)) == last_seq


def gone_from_archive(server, session_id):
    archive = archive_of(server)
    return archive.read_lines(session_id, 1, 10**6) == [] and archive.get_session(session_id) is None


def assert_gone(server, session_id):
    for method, path in (("GET", ""), ("GET", "/events"), ("DELETE", "")):
        response = server.request(method, f"/v1/sessions/{session_id}{path}")
        assert response.status_code == 404 and response.json()["error"] == "session_not_found", response.text
    response = server.append(session_id, 99)
    assert response.status_code == 404, response.text
    listed = server.request("GET", "/v1/sessions?limit=1000").json()["sessions"]
    assert session_id not in [record["id"] for record in listed]


def test_delete_answers_then_everything_is_404_and_the_archive_copy_goes(server, sid):
    filled(server, sid, 5)
    filled(server, sid + "-kept", 2)
    wait_until(lambda: archived(server, sid, 5), what="the events archived")
    response = server.request("DELETE", f"/v1/sessions/{sid}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == sid and body["deleted"] is True and body["deleted_at"].endswith("Z")
    assert_gone(server, sid)
    wait_until(lambda: gone_from_archive(server, sid), what="the archive copy gone")
    kept = server.request("GET", f"/v1/sessions/{sid}-kept/events").json()
    assert [event["seq"] for event in kept["events"]] == [1, 2]


def test_open_tails_close_and_a_held_long_poll_answers_404(server, sid):
    filled(server, sid, 2)
    ws = TailClient(server, sid)
    sse = SseTail(server, sid, cursor=0)
    try:
        ws.read_until(2)
        sse.read_until(2)
        held = {}
        poll = threading.Thread(target=lambda: held.update(
            response=server.request("GET", f"/v1/sessions/{sid}/events?cursor=2&wait_ms=20000", timeout=30)))
        poll.start()
        time.sleep(0.3)  # the long-poll is held
        started = time.monotonic()
        assert server.request("DELETE", f"/v1/sessions/{sid}").status_code == 200
        assert ws.wait_close() == 4410 and ws.close_reason == "session_deleted"
        sse.wait_end()
        assert sse.errors()[-1]["error"] == "session_deleted"
        poll.join(30)
        assert held["response"].status_code == 404, held["response"].text
        assert time.monotonic() - started < 15  # answered by the delete, not by wait_ms
    finally:
        ws.close()
        sse.close()


def test_a_tail_opened_after_the_delete_is_refused(server, sid):
    filled(server, sid, 1)
    server.request("DELETE", f"/v1/sessions/{sid}")
    sse = SseTail(server, sid, cursor=0)
    try:
        assert sse.status == 404 and sse.error["error"] == "session_not_found"
    finally:
        sse.close()


def test_a_deleted_session_stays_deleted_after_a_restart(make_server, sid):
    server = make_server({"STARCITE_RAFT_SNAPSHOT_ENTRIES": "5"})  # the delete lands in a snapshot too
    filled(server, sid, 8)
    filled(server, sid + "-kept", 8)
    server.request("DELETE", f"/v1/sessions/{sid}")
    server.restart()
    assert_gone(server, sid)
    assert server.request("GET", f"/v1/sessions/{sid}-kept").json()["last_seq"] == 8
    server.kill()
    server.start()
    assert_gone(server, sid)


def test_the_id_is_refused_while_its_tombstone_lives_then_free(make_server, sid):
    server = make_server(FAST_TOMBSTONES)
    filled(server, sid, 3)
    server.request("DELETE", f"/v1/sessions/{sid}")
    response = server.request("POST", "/v1/sessions", {"id": sid})
    assert response.status_code == 409 and response.json()["error"] == "session_deleted", response.text
    wait_until(lambda: server.request("POST", "/v1/sessions", {"id": sid}).status_code == 201, timeout=40,
               what="the id free again")
    page = server.request("GET", f"/v1/sessions/{sid}/events").json()
    assert page["events"] == [] and page["last_seq"] == 0  # a new, empty session: nothing came back


@pytest.mark.parametrize("how", ["ttl_seconds", "expires_at", "setting"])
def test_an_expired_session_is_deleted(make_server, sid, how):
    env = {"STARCITE_SESSION_TTL": "2s"} if how == "setting" else {}
    server = make_server(env)
    create = {"ttl_seconds": {"ttl_seconds": 2},
              "expires_at": {"expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3))},
              "setting": {}}[how]
    record = filled(server, sid, 2, **create) and server.request("GET", f"/v1/sessions/{sid}").json()
    assert record["expires_at"].endswith("Z")
    server.create(sid + "-forever", ttl_seconds=3600)
    wait_until(lambda: server.request("GET", f"/v1/sessions/{sid}").status_code == 404, timeout=20,
               what="the session expired")
    assert_gone(server, sid)
    wait_until(lambda: gone_from_archive(server, sid), timeout=20, what="the archive copy gone")
    assert server.request("GET", f"/v1/sessions/{sid}-forever").status_code == 200


def test_create_refuses_a_bad_expiry(server, sid):
    for body in ({"ttl_seconds": 0}, {"expires_at": "soon"}, {"expires_at": "2000-01-01T00:00:00"}):
        response = server.request("POST", "/v1/sessions", {"id": sid, **body})
        assert response.status_code == 400 and response.json()["error"] == "invalid_session", (body, response.text)


def test_a_patch_sets_and_moves_the_expiry(server, sid):
    server.create(sid)
    server.create(sid + "-kept", ttl_seconds=1)
    response = server.request("PATCH", f"/v1/sessions/{sid}", {"ttl_seconds": 2})
    assert response.status_code == 200, response.text
    assert response.json()["expires_at"].endswith("Z") and response.json()["version"] == 2
    # a later patch moves it: "-kept" would have expired after 1 s, a patch gives it an hour
    moved = server.request("PATCH", f"/v1/sessions/{sid}-kept", {"ttl_seconds": 3600})
    assert moved.status_code == 200, moved.text
    wait_until(lambda: server.request("GET", f"/v1/sessions/{sid}").status_code == 404, timeout=20,
               what="the patched session expired")
    assert server.request("GET", f"/v1/sessions/{sid}-kept").status_code == 200


def test_a_patch_refuses_a_bad_expiry(server, sid):
    server.create(sid)
    for body in ({"ttl_seconds": 0}, {"expires_at": "soon"}, {"expires_at": "2000-01-01T00:00:00"}):
        response = server.request("PATCH", f"/v1/sessions/{sid}", body)
        assert response.status_code == 400 and response.json()["error"] == "invalid_session", (body, response.text)
    assert server.request("GET", f"/v1/sessions/{sid}").json()["version"] == 1
