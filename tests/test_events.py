"""`GET /v1/sessions/:id/events` on a real node: pages, bounds, cold + hot, archive outage, long-poll.

Owns: the events endpoint through HTTP only: walking pages, the parameter
bounds, a read across the archive boundary, a local archive made unreadable
(503, never a gap), and the long-poll hold: woken promptly by a commit,
timing out with an empty page, many waiters woken by one commit and
deregistered after, and held requests answered at once by SIGTERM. Must not:
wait without a bound or reach anything but loopback.
"""

import concurrent.futures
import os
import shutil
import time

import pytest
import requests

from tests.test_tail import fill


def page(server, sid, timeout=10, **query):
    response = requests.get(f"{server.base}/v1/sessions/{sid}/events", params=query, timeout=timeout)
    assert response.status_code == 200, response.text
    return response.json()


def seqs(body):
    return [event["seq"] for event in body["events"]]


def drained(server):
    return server.metric("starcite_archive_pending_rows") == 0


def test_pages_walk_every_event_once(shared_server, sid):
    server = shared_server
    server.create(sid)
    fill(server, sid, 1, 7)
    cursor, seen = 0, []
    for _ in range(10):
        body = page(server, sid, cursor=cursor, limit=3)
        assert body["last_seq"] == 7
        if not body["events"]:
            assert body["next_cursor"] == cursor
            break
        seen += seqs(body)
        assert body["next_cursor"] == seen[-1]
        cursor = body["next_cursor"]
    assert seen == list(range(1, 8))
    first = page(server, sid)["events"][0]
    assert first["payload"] == {"n": 1} and first["producer_id"] == "p1" and first["producer_seq"] == 1
    assert len(page(server, sid, limit=1000)["events"]) == 7
    assert page(server, sid, cursor=100) == {"events": [], "next_cursor": 100, "last_seq": 7}


@pytest.mark.parametrize("query, code", [
    ({"limit": 0}, "invalid_limit"), ({"limit": 1001}, "invalid_limit"), ({"limit": "x"}, "invalid_limit"),
    ({"cursor": -1}, "invalid_cursor"), ({"cursor": ""}, "invalid_cursor"),
    ({"wait_ms": -1}, "invalid_wait_ms"), ({"wait_ms": 30001}, "invalid_wait_ms"),
])
def test_bounds(shared_server, sid, query, code):
    shared_server.create(sid)
    response = requests.get(f"{shared_server.base}/v1/sessions/{sid}/events", params=query, timeout=5)
    assert response.status_code == 400 and response.json()["error"] == code


def test_unknown_session_is_404(shared_server):
    response = requests.get(f"{shared_server.base}/v1/sessions/nope-events/events", params={"wait_ms": 5000},
                            timeout=5)
    assert response.status_code == 404 and response.json()["error"] == "session_not_found"


def test_cold_and_hot_merge_and_an_archive_outage_is_503(server, sid):
    server.create(sid)
    fill(server, sid, 1, 600)
    server.wait_until(lambda: drained(server), timeout=20, what="archive drain")
    fill(server, sid, 601, 650)  # hot
    # The outage first: no cold chunk has been read (and cached) yet.
    archive = os.path.join(server.data_dir, "archive")
    shutil.move(archive, archive + ".away")
    try:
        with open(archive, "w") as fh:  # the archive's directory is now a file: every cold read fails
            fh.write("not a directory")
        response = requests.get(f"{server.base}/v1/sessions/{sid}/events", params={"cursor": 100}, timeout=5)
        assert response.status_code == 503 and response.json()["error"] == "archive_read_unavailable"
        assert response.headers["Retry-After"] == "1"
        fill(server, sid, 651, 655)  # cannot be archived now: hot
        assert seqs(page(server, sid, cursor=650)) == list(range(651, 656))  # hot reads are still served
    finally:
        os.remove(archive)
        shutil.move(archive + ".away", archive)
    for cursor, limit in ((0, 1000), (255, 1), (299, 100), (590, 1000)):
        body = page(server, sid, cursor=cursor, limit=limit)
        assert seqs(body) == list(range(cursor + 1, min(655, cursor + limit) + 1))


def test_long_poll_wakes_promptly_on_a_commit(shared_server, sid):
    server = shared_server
    server.create(sid)
    fill(server, sid, 1, 1)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(page, server, sid, 15, cursor=1, wait_ms=10000)
        time.sleep(0.5)
        assert not held.done()
        appended = time.monotonic()
        fill(server, sid, 2, 2)
        body = held.result(timeout=5)
        assert time.monotonic() - appended < 1.0
    assert seqs(body) == [2] and body["next_cursor"] == 2 and body["last_seq"] == 2


def test_long_poll_times_out_with_an_empty_page(shared_server, sid):
    server = shared_server
    server.create(sid)
    started = time.monotonic()
    body = page(server, sid, wait_ms=400)
    elapsed = time.monotonic() - started
    assert body == {"events": [], "next_cursor": 0, "last_seq": 0}
    assert 0.4 <= elapsed < 3.0


def test_many_waiters_are_all_woken_and_released(shared_server, sid):
    server = shared_server
    server.create(sid)
    waiters = 40
    with concurrent.futures.ThreadPoolExecutor(waiters) as pool:
        held = [pool.submit(page, server, sid, 20, wait_ms=15000) for _ in range(waiters)]
        server.wait_until(lambda: server.ops_status()["long_polls"] == waiters, timeout=10, what="all waiting")
        fill(server, sid, 1, 1)
        bodies = [future.result(timeout=5) for future in held]
    assert all(seqs(body) == [1] for body in bodies)
    assert server.ops_status()["long_polls"] == 0


def test_sigterm_answers_held_requests(make_server, sid):
    server = make_server()
    server.create(sid)
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        held = [pool.submit(page, server, sid, 20, wait_ms=20000) for _ in range(5)]
        server.wait_until(lambda: server.ops_status()["long_polls"] == 5, timeout=10, what="all waiting")
        stopping = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(1) as stopper:
            stopped = stopper.submit(server.stop)
            bodies = [future.result(timeout=10) for future in held]
            answered = time.monotonic() - stopping
            stopped.result(timeout=20)
    assert all(body == {"events": [], "next_cursor": 0, "last_seq": 0} for body in bodies)
    assert answered < 3.0
