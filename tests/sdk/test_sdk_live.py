"""The sync SDK against a real `starcite serve`: sessions, pages, typed errors, crashes and restarts.

Owns: list iteration over several pages; each typed error as the service
answers it (auth errors on a jwt node, a refused tail, a tail whose token
expires); a producer resuming its sequence; appends across a SIGKILL and
restart (every append that returned has exactly one event); a following tail
replaying then going live, and across restarts (no gap, no duplicate), over
each transport (WebSocket and SSE); an idle SSE tail kept open by the
keep-alives; and `follow=False` stopping at the end. Must not: use anything
but loopback, or leave a thread or a process behind (every wait is bounded).
"""

import threading
import time
import uuid

import pytest

import starcite_client as sc
from tests.auth.conftest import JwksServer, claims, jwt_env, make_rsa_key

TRANSPORTS = pytest.mark.parametrize("transport", ["websocket", "sse"])


@pytest.fixture
def client(shared_server):
    with sc.Starcite(shared_server.base) as client:
        yield client


def test_create_get_and_list_every_page(client):
    tag = uuid.uuid4().hex
    made = {client.create_session(metadata={"suite": tag, "i": str(i)}, title=f"t{i}").id for i in range(7)}
    client.create_session(metadata={"suite": "other"})
    listed = [s.id for s in client.list_sessions(metadata={"suite": tag}, page_size=3)]
    assert sorted(listed) == sorted(made) and len(listed) == 7
    one = client.get_session(sorted(made)[0])
    assert one.data["metadata"]["suite"] == tag and one.data["last_seq"] == 0


def test_typed_errors(client, sid):
    with pytest.raises(sc.SessionNotFound):
        client.get_session("no-such-session")
    session = client.create_session(id=sid)
    with pytest.raises(sc.SessionExists):
        client.create_session(id=sid)
    producer = session.producer("p1")
    assert producer.append("m", {"n": 1}).producer_seq == 1
    with pytest.raises(sc.ProducerSeqConflict) as info:
        session.producer("p1", next_seq=5).append("m", {"n": 5})
    assert info.value.expected_producer_seq == 2
    with pytest.raises(sc.ProducerReplayConflict):
        session.producer("p1", next_seq=1).append("m", {"other": True})
    with pytest.raises(sc.ExpectedSeqConflict):
        producer.append("m", {"n": 2}, expected_seq=99)
    with pytest.raises(sc.BadRequest) as bad:
        producer.append("", {"n": 2})
    assert bad.value.code == "invalid_event"
    with pytest.raises(sc.PayloadTooLarge):
        producer.append("m", {"blob": "x" * (1024 * 1024 + 10)})
    assert producer.append("m", {"n": 2}).seq == 2  # refused appends did not use up a producer_seq
    with pytest.raises(sc.ConnectionFailed):
        sc.Starcite("http://127.0.0.1:9", retry_for=0.2).get_session(sid)


def test_backpressure_carries_retry_after(make_server, sid):
    server = make_server({"STARCITE_EVENT_STORE_MAX_SIZE": "4KB", "STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "60000"})
    with sc.Starcite(server.base) as client:
        producer = client.create_session(id=sid).producer("p")
        with pytest.raises(sc.Backpressure) as info:
            for n in range(100):
                producer.append("m", {"blob": "x" * 500, "n": n})
    assert (info.value.status, info.value.code, info.value.retry_after) == (429, "event_store_backpressure", 1.0)


def test_auth_errors_on_a_jwt_node(make_server, sid):
    key = make_rsa_key("sdk-1")
    with JwksServer([key.jwk()]) as jwks:
        server = make_server(jwt_env(jwks.url))
        with pytest.raises(sc.Unauthorized):
            sc.Starcite(server.base).create_session(id=sid)
        reader = key.sign(claims(scope="session:read"))
        with pytest.raises(sc.Forbidden) as info:
            sc.Starcite(server.base, token=reader).create_session(id=sid)
        assert info.value.code == "forbidden_scope"
        with pytest.raises(sc.TokenExpired):
            sc.Starcite(server.base, token=key.sign(claims(exp=int(time.time()) - 60))).get_session(sid)
        full = sc.Starcite(server.base, token=key.sign(claims()))
        session = full.create_session(id=sid)
        session.producer("p").append("m", {})
        assert [e["seq"] for e in session.tail(follow=False)] == [1]
        for transport in ("websocket", "sse"):
            tail = session.tail(cursor=0, batch_size=1, transport=transport)
            assert next(tail)["seq"] == 1
            tail.close()
            with pytest.raises(sc.Unauthorized):
                next(sc.Starcite(server.base).session(sid).tail(transport=transport))
            with pytest.raises(sc.Forbidden):
                next(sc.Starcite(server.base, token=key.sign(claims(scope="session:append")))
                     .session(sid).tail(transport=transport))


@TRANSPORTS
def test_a_tail_raises_token_expired_when_its_token_expires(make_server, sid, transport):
    key = make_rsa_key("sdk-exp")
    with JwksServer([key.jwk()]) as jwks:
        server = make_server(jwt_env(jwks.url, STARCITE_AUTH_JWT_LEEWAY_SECONDS="0"))
        with sc.Starcite(server.base, token=key.sign(claims())) as admin:
            admin.create_session(id=sid).producer("p").append("m", {})
        short = sc.Starcite(server.base, token=key.sign(claims(exp=int(time.time()) + 2)))
        outcome = []

        def follow():
            try:
                for event in short.session(sid).tail(transport=transport):
                    outcome.append(event["seq"])
            except sc.StarciteError as exc:
                outcome.append(exc)

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        reader.join(10)
        short.close()
    assert not reader.is_alive(), outcome
    assert outcome[0] == 1 and isinstance(outcome[1], sc.TokenExpired), outcome


@TRANSPORTS
def test_a_refused_tail_raises_its_typed_error(client, sid, transport):
    with pytest.raises(sc.SessionNotFound):
        next(client.session("no-such-session").tail(transport=transport))
    client.create_session(id=sid)
    with pytest.raises(sc.BadRequest) as info:
        next(client.session(sid).tail(cursor=-1, transport=transport))
    assert info.value.code == "invalid_cursor"


@TRANSPORTS
def test_a_tail_replays_then_follows_live(client, sid, transport):
    session = client.create_session(id=sid)
    producer = session.producer("p")
    for n in range(3):
        producer.append("m", {"n": n})
    tail = session.tail(cursor=1, batch_size=1, transport=transport)
    got = [next(tail) for _ in range(2)]
    producer.append("m", {"n": 3}, actor="agent:x")
    got.append(next(tail))
    tail.close()
    assert [(e["seq"], e["payload"]["n"]) for e in got] == [(2, 1), (3, 2), (4, 3)]
    assert got[2]["actor"] == "agent:x" and got[2]["producer_id"] == "p" and got[2]["inserted_at"].endswith("Z")


def test_a_restarted_producer_resumes_when_asked(client, sid):
    session = client.create_session(id=sid)
    before = session.producer("p")
    for n in range(3):
        before.append("m", {"n": n})
    with pytest.raises(sc.ProducerSeqConflict):
        session.producer("p").append("m", {"n": 3})  # a restart that does not ask to resume
    restarted = session.producer("p", resume=True)
    result = restarted.append("m", {"n": 3})
    assert (result.producer_seq, result.seq, restarted.next_seq) == (4, 4, 5)


def test_follow_false_stops_at_the_current_end(client, sid):
    session = client.create_session(id=sid)
    producer = session.producer("p")
    for n in range(5):
        producer.append("m", {"n": n})
    assert [e["seq"] for e in session.tail(cursor=0, batch_size=2, follow=False)] == [1, 2, 3, 4, 5]
    assert [e["seq"] for e in session.tail(cursor=3, follow=False)] == [4, 5]
    assert list(session.tail(cursor=5, follow=False)) == []


def test_appends_across_a_sigkill_and_restart_are_exactly_once(make_server, sid):
    server = make_server({"STARCITE_ACCESS_LOG": "0"})
    with sc.Starcite(server.base, timeout=2.0, retry_for=40.0) as client:
        producer = client.create_session(id=sid).producer("crashy")
        returned, stop = [], threading.Event()

        def write():
            n = 0
            while not stop.is_set() and n < 400:
                returned.append(producer.append("m", {"n": n}))
                n += 1

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        deadline = time.monotonic() + 20
        while len(returned) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()
        time.sleep(0.5)  # appends meet refused connections meanwhile
        server.start()
        count = len(returned)
        while len(returned) < count + 30 and time.monotonic() < deadline + 20:
            time.sleep(0.01)
        stop.set()
        writer.join(timeout=45)
        assert not writer.is_alive()
        events = list(client.session(sid).tail(follow=False))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    by_producer_seq = {}
    for event in events:
        assert event["producer_seq"] not in by_producer_seq  # no event twice
        by_producer_seq[event["producer_seq"]] = event
    assert len(returned) > count >= 30
    for result in returned:
        assert by_producer_seq[result.producer_seq]["seq"] == result.seq
        assert by_producer_seq[result.producer_seq]["payload"]["n"] == result.producer_seq - 1


@TRANSPORTS
def test_a_following_tail_survives_restarts_without_gap_or_duplicate(make_server, sid, transport):
    server = make_server({"STARCITE_ACCESS_LOG": "0", "STARCITE_TAIL_CATCHUP_INTERVAL_MS": "200"})
    with sc.Starcite(server.base, timeout=2.0, retry_for=40.0) as client:
        session = client.create_session(id=sid)
        producer = session.producer("p")
        seen, done = [], threading.Event()

        def follow():
            tail = session.tail(cursor=0, batch_size=3, transport=transport)
            for event in tail:
                seen.append(event["seq"])
                if event["seq"] == 60:
                    break
            tail.close()
            done.set()

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        for n in range(20):
            producer.append("m", {"n": n})
        server.wait_until(lambda: len(seen) == 20, timeout=10, what="the first 20 events")
        server.restart()  # SIGTERM: the tail is closed normally (the event stream ends)
        for n in range(20, 40):
            producer.append("m", {"n": n})
        server.wait_until(lambda: len(seen) == 40, timeout=20, what="events after a restart")
        server.kill()  # SIGKILL: the socket (or the chunked stream) just breaks
        server.start()
        for n in range(40, 60):
            producer.append("m", {"n": n})
        assert done.wait(30), seen[-5:]
        reader.join(5)
    assert seen == list(range(1, 61))


def test_keep_alives_hold_an_idle_sse_tail_open(make_server, sid, monkeypatch):
    """The read timeout counts keep-alive comments as life: an idle stream is not reopened."""
    from starcite_client import _sse
    server = make_server({"STARCITE_TAIL_SSE_KEEPALIVE_MS": "200"})
    monkeypatch.setattr(_sse, "SSE_READ_TIMEOUT", 1.0)
    opened, seen = [], []
    request = _sse.SseTail.request
    monkeypatch.setattr(_sse.SseTail, "request", lambda self: opened.append(1) or request(self))
    with sc.Starcite(server.base) as client:
        session = client.create_session(id=sid)

        def follow():
            tail = session.tail(transport="sse")
            for event in tail:
                seen.append(event["seq"])
                if event["seq"] == 2:
                    break
            tail.close()

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        session.producer("p").append("m", {"n": 0})
        server.wait_until(lambda: seen == [1], timeout=5, what="the first event")
        time.sleep(3.0)  # idle, the reader waiting on the stream: three read timeouts long
        session.producer("p", next_seq=2).append("m", {"n": 1})
        reader.join(5)
    assert not reader.is_alive() and seen == [1, 2]
    assert len(opened) == 1, opened
