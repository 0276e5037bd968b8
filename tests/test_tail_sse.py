"""SSE tails on a real node, read with a raw HTTP client (`tests.sse_client`): the head,
replay then live, `Last-Event-ID` in place of the cursor, keep-alive comments, `retry:`, the
refusals before the stream starts, HEAD, HTTP/1.0, the end of the stream on shutdown, and the
tail gauges back to zero once the streams are closed. Auth (bearer, `access_token`, expiry)
is in `tests/auth/test_sse_auth.py`."""

import pytest

from tests.server import StarciteServer, wait_until
from tests.sse_client import SseTail
from tests.test_tail import EVENT_KEYS, fill

KEEPALIVE_MS = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    node = StarciteServer(tmp_path_factory.mktemp("sse"), {"STARCITE_TAIL_SSE_KEEPALIVE_MS": str(KEEPALIVE_MS),
                                                          "STARCITE_TAIL_SSE_RETRY_MS": "750"})
    node.start()
    yield node
    node.stop()


def session_with_tail(server, sid, events, **tail_options) -> SseTail:
    """Create ``sid`` with ``events`` events and open an SSE tail on it."""
    server.create(sid)
    fill(server, sid, 1, events)
    return SseTail(server, sid, **tail_options)


def test_head_then_replay_then_live(server, sid):
    tail = session_with_tail(server, sid, 20, cursor=0)
    try:
        assert tail.status == 200 and tail.status_line.startswith("HTTP/1.1 200")
        assert tail.headers["content-type"].startswith("text/event-stream")
        assert tail.headers["cache-control"] == "no-cache" and tail.headers["transfer-encoding"] == "chunked"
        assert tail.headers["x-request-id"]
        tail.read_until(20)
        fill(server, sid, 21, 30)
        tail.read_until(30)
        assert tail.seqs() == list(range(1, 31))
        assert set(tail.events[0]) == EVENT_KEYS and tail.events[0]["payload"] == {"n": 1}
        assert [m["id"] for m in tail.messages] == [str(n) for n in range(1, 31)]
        assert tail.retry == [750]  # once, before any event
    finally:
        tail.close()


def test_cursor_and_last_event_id(server, sid):
    server.create(sid)
    fill(server, sid, 1, 10)
    by_cursor = SseTail(server, sid, cursor=4)
    resumed = SseTail(server, sid, cursor=1, last_event_id=7)  # a reconnecting EventSource: the id wins
    blank = SseTail(server, sid, cursor=9, last_event_id="")
    try:
        assert by_cursor.read_until(6) and by_cursor.seqs() == list(range(5, 11))
        assert resumed.read_until(3) and resumed.seqs() == [8, 9, 10]
        assert blank.read_until(1) and blank.seqs() == [10]
        fill(server, sid, 11, 11)
        for tail, count in ((by_cursor, 7), (resumed, 4), (blank, 2)):
            assert tail.read_until(count)[-1]["seq"] == 11
    finally:
        for tail in (by_cursor, resumed, blank):
            tail.close()


def test_cursor_at_the_end_waits_and_keep_alive_comments_come(server, sid):
    tail = session_with_tail(server, sid, 3, cursor=3)
    try:
        tail.wait_for(lambda: len(tail.comments) >= 2, timeout=10, what="two keep-alive comments")
        assert set(tail.comments) == {"keep-alive"} and tail.events == []
        fill(server, sid, 4, 4)
        assert tail.read_until(1)[0]["seq"] == 4
    finally:
        tail.close()


def test_batch_size_is_checked_but_every_message_is_one_event(server, sid):
    tail = session_with_tail(server, sid, 5, cursor=0, query="&batch_size=3")
    try:
        tail.read_until(5)
        assert len(tail.messages) == 5
    finally:
        tail.close()


@pytest.mark.parametrize("query,last_event_id,code", [
    ("&cursor=-1", None, "invalid_cursor"),
    ("&cursor=abc", None, "invalid_cursor"),
    ("", "seven", "invalid_cursor"),
    ("", "-3", "invalid_cursor"),
    ("&batch_size=0", None, "invalid_batch_size"),
    ("&batch_size=1001", None, "invalid_batch_size"),
])
def test_bad_cursor_or_batch_size_is_400_before_the_stream(server, sid, query, last_event_id, code):
    server.create(sid)
    tail = SseTail(server, sid, query=query, last_event_id=last_event_id)
    assert tail.status == 400 and tail.error["error"] == code and tail.error["message"]
    tail.close()


def test_unknown_session_is_404_and_plain_get_is_426(server, sid):
    missing = SseTail(server, sid + "-missing", cursor=0)
    assert missing.status == 404 and missing.error["error"] == "session_not_found"
    server.create(sid)
    plain = SseTail(server, sid, cursor=0, accept="application/json")
    assert plain.status == 426 and plain.error["error"] == "upgrade_required"
    assert plain.headers["upgrade"] == "websocket"


def test_head_answers_the_stream_headers_without_a_body(server, sid):
    server.create(sid)
    response = server.request("HEAD", f"/v1/sessions/{sid}/tail", headers={"Accept": "text/event-stream"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert response.content == b""
    missing = server.request("HEAD", f"/v1/sessions/{sid}-x/tail", headers={"Accept": "text/event-stream"})
    assert missing.status_code == 404


def test_http_1_0_gets_a_body_delimited_by_the_close(server, sid):
    tail = session_with_tail(server, sid, 2, cursor=0, protocol="HTTP/1.0")
    try:
        assert tail.status_line.startswith("HTTP/1.0 200") and not tail.chunked
        assert tail.read_until(2) and tail.seqs() == [1, 2]
    finally:
        tail.close()


def test_closed_streams_leave_nothing_behind(server, sid):
    server.create(sid)
    fill(server, sid, 1, 5)
    tails = [SseTail(server, sid, cursor=0) for _ in range(20)]
    for tail in tails:
        tail.read_until(5)
    assert server.metric("starcite_tails_open") >= 20
    for tail in tails:
        tail.close()
    wait_until(lambda: server.metric("starcite_tails_open") == 0 and server.metric("starcite_tails_live") == 0,
               timeout=10, what="the SSE tails to be gone from the gauges")


def test_shutdown_ends_the_stream_cleanly(make_server, sid):
    node = make_server()
    node.create(sid)
    fill(node, sid, 1, 3)
    tail = SseTail(node, sid, cursor=0)
    tail.read_until(3)
    node.stop()
    tail.wait_end(timeout=15)
    assert tail.ended and tail.errors() == [] and "server_shutdown" in tail.comments
    tail.close()
