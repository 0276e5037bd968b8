"""HTTP API of a real single node: every endpoint, status code and error code of SPEC.md §2.

Most tests share one node (`server` below is module-scoped) and use their own session ids.
"""

import concurrent.futures
import json

import pytest


@pytest.fixture
def server(shared_server):
    return shared_server


def error_of(response):
    body = response.json()
    extra = {"expected_producer_seq"} if body.get("error") == "producer_seq_conflict" else set()
    assert set(body) == {"error", "message"} | extra, body
    assert body["message"]
    return body["error"]


def test_health_and_docs(server):
    assert server.request("GET", "/health/live").json() == {"status": "ok"}
    assert server.request("GET", "/health/ready").json() == {"status": "ok", "mode": "write_node"}
    spec = server.request("GET", "/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {"/v1/sessions", "/v1/sessions/{session_id}", "/v1/sessions/{session_id}/append",
                                  "/v1/sessions/{session_id}/tail", "/v1/sessions/{session_id}/events",
                                  "/v1/sessions/{session_id}/archive", "/v1/sessions/{session_id}/unarchive",
                                  "/v1/socket/websocket", "/health/live", "/health/ready", "/metrics", "/openapi.json",
                                  "/api/v1/session-tokens"}  # auth off: no /v1/auth/issue, no security


def test_create_get_and_conflict(server, sid):
    record = server.create(sid, title="Hello", metadata={"team": "a"})
    assert record["id"] == sid and record["title"] == "Hello" and record["metadata"] == {"team": "a"}
    assert record["last_seq"] == 0 and record["created_at"].endswith("Z") and record["updated_at"]
    assert server.request("GET", f"/v1/sessions/{sid}").json() == record
    again = server.request("POST", "/v1/sessions", {"id": sid})
    assert again.status_code == 409 and error_of(again) == "session_exists"
    generated = server.create()
    assert generated["id"].startswith("ses_")
    missing = server.request("GET", "/v1/sessions/nope")
    assert missing.status_code == 404 and error_of(missing) == "session_not_found"


@pytest.mark.parametrize("body,code", [
    ({"id": ""}, "invalid_session"),
    ({"id": 5}, "invalid_session"),
    ({"title": 5}, "invalid_session"),
    ({"metadata": "x"}, "invalid_metadata"),
    ({"bogus": 1}, "invalid_session"),
    ([], "invalid_session"),
])
def test_create_rejects_bad_bodies(server, body, code):
    response = server.request("POST", "/v1/sessions", body)
    assert response.status_code == 400 and error_of(response) == code


def test_append_rules(server, sid):
    s = sid
    server.create(s)
    first = server.append(s, 1)
    assert first.status_code == 201 and first.json() == {"seq": 1, "last_seq": 1, "deduped": False}
    assert server.append(s, 2).json()["seq"] == 2
    retry = server.append(s, 2)
    assert retry.status_code == 201 and retry.json() == {"seq": 2, "last_seq": 2, "deduped": True}
    replay = server.append(s, 2, payload={"other": True})
    assert replay.status_code == 409 and error_of(replay) == "producer_replay_conflict"
    gap = server.append(s, 5)
    assert gap.status_code == 409 and error_of(gap) == "producer_seq_conflict"
    assert "3" in gap.json()["message"] and gap.json()["expected_producer_seq"] == 3
    fresh = server.append(s, 2, producer_id="p2")
    assert fresh.status_code == 409 and error_of(fresh) == "producer_seq_conflict"
    assert fresh.json()["expected_producer_seq"] == 1
    stale = server.append(s, 3, expected_seq=1)
    assert stale.status_code == 409 and error_of(stale) == "expected_seq_conflict"
    assert stale.json()["message"] == "Expected seq 1, current seq is 2"
    assert server.append(s, 3, expected_seq=2).json()["seq"] == 3
    full = server.append(s, 4, actor="agent:x", source="test", metadata={"k": "v"},
                         refs={"to_seq": 1, "step": 2, "request_id": "r", "sequence_id": "q"},
                         idempotency_key="idem")
    assert full.status_code == 201
    assert server.request("GET", f"/v1/sessions/{s}").json()["last_seq"] == 4
    unknown = server.append("nope", 1)
    assert unknown.status_code == 404 and error_of(unknown) == "session_not_found"


@pytest.mark.parametrize("patch,code", [
    ({"type": ""}, "invalid_event"),
    ({"type": None}, "invalid_event"),
    ({"payload": "x"}, "invalid_event"),
    ({"payload": None}, "invalid_event"),
    ({"producer_id": ""}, "invalid_event"),
    ({"producer_seq": 0}, "invalid_event"),
    ({"producer_seq": "1"}, "invalid_event"),
    ({"producer_seq": True}, "invalid_event"),
    ({"producer_seq": 1.5}, "invalid_event"),
    ({"metadata": []}, "invalid_metadata"),
    ({"refs": "x"}, "invalid_refs"),
    ({"refs": {"to_seq": -1}}, "invalid_refs"),
    ({"refs": {"request_id": 3}}, "invalid_refs"),
    ({"expected_seq": -1}, "invalid_event"),
    ({"idempotency_key": 5}, "invalid_event"),
    ({"unknown_field": 1}, "invalid_event"),
])
def test_append_rejects_bad_events(server, sid, patch, code):
    server.create(sid)
    body = {"type": "t", "payload": {}, "producer_id": "p", "producer_seq": 1, **patch}
    response = server.request("POST", f"/v1/sessions/{sid}/append", body)
    assert response.status_code == 400 and error_of(response) == code, response.text
    assert server.request("GET", f"/v1/sessions/{sid}").json()["last_seq"] == 0


@pytest.mark.parametrize("raw,status,code", [
    (b"{not json", 400, "invalid_json"),
    (b"\xff\xfe", 400, "invalid_json"),
    (b"[1, 2]", 400, "invalid_event"),
    (b"", 400, "invalid_event"),
    (b"null", 400, "invalid_event"),
])
def test_append_malformed_bodies(server, sid, raw, status, code):
    server.create(sid)
    response = server.request("POST", f"/v1/sessions/{sid}/append", raw=raw,
                              headers={"Content-Type": "application/json"})
    assert response.status_code == status and error_of(response) == code


def test_oversize_body_is_413_and_nothing_is_lost(make_server):
    server = make_server({"STARCITE_MAX_BODY_SIZE": "4KB"})
    server.create("s")
    big = {"type": "t", "payload": {"x": "y" * 5000}, "producer_id": "p", "producer_seq": 1}
    response = server.request("POST", "/v1/sessions/s/append", big)
    assert response.status_code == 413 and error_of(response) == "payload_too_large"
    chunked = server.http.post(server.base + "/v1/sessions/s/append",
                               data=iter([json.dumps(big).encode()]), timeout=10)
    assert chunked.status_code == 413
    assert server.append("s", 1).status_code == 201


def test_unknown_routes_and_methods(server):
    for method, path, status in [("GET", "/nope", 404), ("GET", "/v1/sessions/a/b/c", 404),
                                 ("DELETE", "/v1/sessions", 405), ("PUT", "/v1/sessions/x/append", 405),
                                 ("POST", "/health/live", 405)]:
        response = server.request(method, path)
        assert response.status_code == status, (method, path)
        error_of(response)
    assert "Traceback" not in server.output()


def test_list_pagination_and_filters(server, sid):
    for i in range(25):
        server.create(f"s{i:02d}-{sid}", metadata={"team": "red" if i % 2 else "blue", "n": str(i), "run": sid})
    seen, cursor = [], None
    for _ in range(10):
        query = f"/v1/sessions?limit=7&metadata.run={sid}" + (f"&cursor={cursor}" if cursor else "")
        page = server.request("GET", query).json()
        assert len(page["sessions"]) <= 7
        seen += [s["id"] for s in page["sessions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"s{i:02d}-{sid}" for i in range(25)] and len(seen) == 25
    red = server.request("GET", f"/v1/sessions?metadata.team=red&metadata.run={sid}&limit=1000").json()["sessions"]
    assert sorted(s["id"] for s in red) == [f"s{i:02d}-{sid}" for i in range(25) if i % 2]
    both = server.request("GET", f"/v1/sessions?metadata.team=red&metadata.n=3&metadata.run={sid}").json()
    assert [s["id"] for s in both["sessions"]] == [f"s03-{sid}"]
    for bad in ("limit=0", "limit=1001", "limit=x", "bogus=1"):
        response = server.request("GET", f"/v1/sessions?{bad}")
        assert response.status_code == 400, bad
        error_of(response)


def test_list_shows_live_last_seq(server, sid):
    server.create(sid, metadata={"run": sid})
    server.append(sid, 1)
    page = server.request("GET", f"/v1/sessions?metadata.run={sid}").json()
    assert page["sessions"][0]["last_seq"] == 1


def test_concurrent_appends_get_contiguous_seqs(server, sid):
    server.create(sid)

    def one(i):
        response = server.append(sid, 1, producer_id=f"p{i}")
        assert response.status_code == 201, response.text
        return response.json()["seq"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        seqs = list(pool.map(one, range(100)))
    assert sorted(seqs) == list(range(1, 101))


def test_metrics(make_server):
    server = make_server()
    server.create("s")
    for i in range(1, 4):
        server.append("s", i)
    text = server.request("GET", "/metrics").text
    for name in ("starcite_events_append_total", "starcite_events_payload_bytes",
                 "starcite_archive_pending_rows", "starcite_archive_pending_sessions",
                 "starcite_archive_flush_duration_ms", "starcite_archive_attempted_total",
                 "starcite_archive_inserted_total", "starcite_archive_bytes_attempted_total",
                 "starcite_archive_bytes_inserted_total", "starcite_archive_lag", "starcite_archive_tail_size",
                 "starcite_archive_trimmed_total", "starcite_event_store_backpressure_total",
                 "starcite_http_request_duration_seconds"):
        assert name in text, name
    assert server.metric("starcite_events_append_total") == 3
    server.wait_until(lambda: server.metric("starcite_archive_trimmed_total") == 3, what="archive")
    assert server.metric("starcite_archive_pending_rows") == 0
    assert server.metric("starcite_archive_inserted_total") == 3


def test_backpressure_429_then_recovery(make_server):
    # 4KB: with two workers, the worker holding "s" has half of it (the cap is the node's)
    server = make_server({"STARCITE_EVENT_STORE_MAX_SIZE": "4KB", "STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "1500"})
    server.create("s")
    statuses, seq = [], 0
    for _ in range(40):
        response = server.append("s", seq + 1, payload={"x": "y" * 200})
        statuses.append(response.status_code)
        if response.status_code == 201:
            seq += 1
        else:
            assert response.status_code == 429 and error_of(response) == "event_store_backpressure"
            break
    assert 429 in statuses
    assert server.metric("starcite_event_store_backpressure_total") >= 1
    server.wait_until(lambda: server.append("s", seq + 1).status_code == 201, timeout=15, what="recovery")


@pytest.mark.parametrize("raw", [
    b"[" * 100000 + b"]" * 100000,
    b'{"type": "t", "payload": {"x": NaN}, "producer_id": "p", "producer_seq": 1}',
    b'{"type": "t", "payload": {"x": Infinity}, "producer_id": "p", "producer_seq": 1}',
    b'{"type": "t", "payload": {"x": 1e999}, "producer_id": "p", "producer_seq": 1}',
])
def test_json_that_cannot_round_trip_is_400(server, sid, raw):
    server.create(sid)
    response = server.request("POST", f"/v1/sessions/{sid}/append", raw=raw)
    assert response.status_code == 400 and error_of(response) == "invalid_json", response.text
    assert server.request("GET", f"/v1/sessions/{sid}").json()["last_seq"] == 0


def test_garbage_list_cursor_is_400(server):
    for cursor in ("%00%01", "not+a+cursor", "////", "abcde", "YWJj=", "a.b"):
        response = server.request("GET", f"/v1/sessions?cursor={cursor}")
        assert response.status_code == 400 and error_of(response) == "invalid_cursor", cursor


@pytest.mark.parametrize("cursor", ["not-a-cursor", "AA", "__8", "gICA"])  # forged, NUL, bad UTF-8
def test_any_base64url_cursor_is_a_position(server, cursor):
    """Every cursor the documented pattern admits is answered: listing resumes after it."""
    response = server.request("GET", f"/v1/sessions?limit=5&cursor={cursor}")
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"sessions", "next_cursor"}


def test_zz_no_request_above_ever_caused_a_500(server):
    """Runs last in this module: nothing the tests above sent produced a traceback."""
    assert "Traceback" not in server.output()
    assert 'status="500"' not in server.request("GET", "/metrics").text
