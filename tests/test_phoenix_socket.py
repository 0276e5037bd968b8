"""The Phoenix Channels V2 socket (`/v1/socket/websocket`) with a raw client, against a real node (auth off).

Heartbeats, joins and their refusals (bad topic, bad cursor or batch size,
a session that is not there), a tail channel's replay then live events (each
with ``cursor``), ``live_only``, a duplicate join replacing the first, many
topics on one socket, leave, the unmatched-topic error, bad messages, the
handshake's conformance (shared with the raw tail), and the gauges back to
idle once the sockets close. The raw tail and SSE are the other tests'.

Must not: reach anything but 127.0.0.1, or wait without a bound.
"""

import signal

import pytest

from tests.phoenix_client import PhoenixClient, Refused, client_frame

PHOENIX_GAUGES = ("starcite_phoenix_sockets", "starcite_phoenix_channels", "starcite_phoenix_tail_streams",
                  "starcite_phoenix_tail_pumps", "starcite_tails_open", "starcite_tails_live")


@pytest.fixture
def client(shared_server):
    opened = []

    def make(**kwargs):
        opened.append(PhoenixClient.open(shared_server.port, **kwargs))
        return opened[-1]

    yield make
    for each in opened:
        each.close()


def _events(server, sid, count, start=1):
    for n in range(start, start + count):
        assert server.append(sid, n, actor="agent:a").status_code == 201


def test_heartbeat_is_answered(client):
    socket = client()
    assert socket.heartbeat() == {"status": "ok", "response": {}}
    assert socket.heartbeat()["status"] == "ok"


def test_tail_channel_replays_then_goes_live_with_cursors(shared_server, client, sid):
    shared_server.create(sid)
    _events(shared_server, sid, 3)
    socket = client()
    join_ref, reply = socket.join(f"tail:{sid}", {"cursor": 1})
    assert reply == {"status": "ok", "response": {}}
    replayed = socket.events_until(f"tail:{sid}", join_ref, 2)
    assert [(e["seq"], e["cursor"]) for e in replayed] == [(2, 2), (3, 3)]
    assert replayed[0]["actor"] == "agent:a" and replayed[0]["type"] == "message"
    _events(shared_server, sid, 2, start=4)
    live = socket.events_until(f"tail:{sid}", join_ref, 2)
    assert [e["seq"] for e in live] == [4, 5]


def test_events_without_an_actor_get_a_string_actor_and_no_null_source(shared_server, client, sid):
    shared_server.create(sid)
    assert shared_server.append(sid, 1).status_code == 201
    socket = client()
    join_ref, _ = socket.join(f"tail:{sid}", {})
    [event] = socket.events_until(f"tail:{sid}", join_ref, 1)
    assert isinstance(event["actor"], str) and event["actor"]
    assert event.get("source", "absent") is not None and event["cursor"] == 1


def test_batch_size_bounds_each_push(shared_server, client, sid):
    shared_server.create(sid)
    _events(shared_server, sid, 5)
    socket = client()
    join_ref, _ = socket.join(f"tail:{sid}", {"cursor": 0, "batch_size": 2})
    pushes = [socket.wait_for(lambda m: m[3] == "events")[4]["events"] for _ in range(3)]
    assert [[e["seq"] for e in push] for push in pushes] == [[1, 2], [3, 4], [5]]


def test_live_only_starts_from_now(shared_server, client, sid):
    shared_server.create(sid)
    _events(shared_server, sid, 3)
    socket = client()
    join_ref, reply = socket.join(f"tail:{sid}", {"live_only": True})
    assert reply["status"] == "ok"
    _events(shared_server, sid, 1, start=4)
    assert [e["seq"] for e in socket.events_until(f"tail:{sid}", join_ref, 1)] == [4]


@pytest.mark.parametrize("payload, reason", [
    ({"cursor": -1}, "invalid_cursor"), ({"cursor": "3"}, "invalid_cursor"), ({"cursor": True}, "invalid_cursor"),
    ({"batch_size": 0}, "invalid_batch_size"), ({"batch_size": 1001}, "invalid_batch_size"),
])
def test_a_bad_join_payload_is_refused_with_a_reason(shared_server, client, sid, payload, reason):
    shared_server.create(sid)
    socket = client()
    _join_ref, reply = socket.join(f"tail:{sid}", payload)
    assert reply["status"] == "error" and reply["response"]["reason"] == reason
    assert socket.heartbeat()["status"] == "ok"  # the socket lives on


def test_join_refusals_for_topics_and_sessions(client):
    socket = client()
    for topic, reason in [("tail:no-such-session", "session_not_found"), ("tail:", "invalid_topic"),
                          ("rooms:lobby", "unmatched topic")]:
        _join_ref, reply = socket.join(topic)
        assert (reply["status"], reply["response"]["reason"]) == ("error", reason), topic


def test_messages_on_unjoined_topics_get_unmatched_topic(shared_server, client, sid):
    socket = client()
    for event in ("phx_leave", "custom"):
        reply = socket.reply(socket.send("9", f"tail:{sid}", event, {}))
        assert reply == {"status": "error", "response": {"reason": "unmatched topic"}}


def test_duplicate_join_replaces_the_first(shared_server, client, sid):
    shared_server.create(sid)
    _events(shared_server, sid, 2)
    socket = client()
    first, _ = socket.join(f"tail:{sid}", {"cursor": 0})
    assert len(socket.events_until(f"tail:{sid}", first, 2)) == 2
    second, reply = socket.join(f"tail:{sid}", {"cursor": 1})
    assert reply["status"] == "ok"
    socket.wait_for(lambda m: m[3] == "phx_close" and m[0] == first)
    assert [e["seq"] for e in socket.events_until(f"tail:{sid}", second, 1)] == [2]
    _events(shared_server, sid, 1, start=3)
    assert [e["seq"] for e in socket.events_until(f"tail:{sid}", second, 1)] == [3]
    assert not [m for m in socket.messages if m[3] == "events" and m[0] == first and m[4]["events"][-1]["seq"] > 2]


def test_many_topics_on_one_socket_and_leave(shared_server, client, sid):
    sessions = [f"{sid}-{n}" for n in range(5)]
    for session in sessions:
        shared_server.create(session)
    socket = client()
    refs = {session: socket.join(f"tail:{session}")[0] for session in sessions}
    for n, session in enumerate(sessions):
        _events(shared_server, session, n + 1)
    for n, session in enumerate(sessions):
        assert [e["seq"] for e in socket.events_until(f"tail:{session}", refs[session], n + 1)] == \
            list(range(1, n + 2))
    left = sessions[0]
    assert socket.leave(f"tail:{left}", refs[left]) == {"status": "ok", "response": {}}
    socket.wait_for(lambda m: m[3] == "phx_close" and m[2] == f"tail:{left}")
    _events(shared_server, left, 1, start=2)
    _events(shared_server, sessions[1], 1, start=3)
    assert [e["seq"] for e in socket.events_until(f"tail:{sessions[1]}", refs[sessions[1]], 1)] == [3]
    assert not [m for m in socket.messages if m[2] == f"tail:{left}" and m[3] == "events"]
    reply = socket.reply(socket.send(refs[left], f"tail:{left}", "phx_leave", {}))
    assert reply["response"]["reason"] == "unmatched topic"


def test_a_bad_message_closes_the_socket(client):
    socket = client()
    socket.send_raw(b'{"not": "an array"}')
    with pytest.raises(ConnectionError):
        socket.next()
    assert socket.closed[0] == 1007


def test_a_message_split_in_fragments_is_read_whole(client):
    socket = client()
    message = b'[null,"7","phoenix","heartbeat",{}]'
    socket.sock.sendall(client_frame(message[:10], 0x1)[:1].replace(b"\x81", b"\x01")
                        + client_frame(message[:10], 0x1)[1:] + client_frame(message[10:], 0x0))
    assert socket.reply("7")["status"] == "ok"


@pytest.mark.parametrize("headers, status, code", [
    ({"Sec-WebSocket-Version": "7"}, 426, "unsupported_websocket_version"),
    ({"Connection": "xxupgradexx"}, 426, "upgrade_required"),
    ({"Upgrade": None, "Connection": None}, 426, "upgrade_required"),
    ({"Sec-WebSocket-Key": "short"}, 400, "invalid_handshake"),
])
def test_handshake_conformance(shared_server, headers, status, code):
    with pytest.raises(Refused) as info:
        PhoenixClient.open(shared_server.port, headers=headers)
    assert (info.value.status, info.value.code) == (status, code)
    if status == 426 and "Sec-WebSocket-Version" in headers:
        assert b"sec-websocket-version: 13" in info.value.head.lower()


def test_connection_header_is_a_token_list(shared_server):
    PhoenixClient.open(shared_server.port, headers={"Connection": "keep-alive, Upgrade"}).close()


def test_other_serializer_versions_are_refused(shared_server):
    with pytest.raises(Refused) as info:
        PhoenixClient.open(shared_server.port, vsn="1.0.0")
    assert (info.value.status, info.value.code) == (400, "unsupported_vsn")


def test_gauges_return_to_idle_after_the_sockets_close(shared_server, sid):
    shared_server.create(sid)
    _events(shared_server, sid, 2)
    sockets = [PhoenixClient.open(shared_server.port) for _ in range(3)]
    try:
        for socket in sockets:
            join_ref, _ = socket.join(f"tail:{sid}")
            socket.events_until(f"tail:{sid}", join_ref, 2)
        assert shared_server.metric("starcite_phoenix_sockets") >= 3
        assert shared_server.metric("starcite_phoenix_channels") >= 3
    finally:
        for socket in sockets:
            socket.close()
    shared_server.wait_until(lambda: all(shared_server.metric(name) == 0 for name in PHOENIX_GAUGES),
                             timeout=10, what="the Phoenix gauges back at 0")


def test_a_stopping_node_closes_the_socket_going_away(make_server, sid):
    server = make_server()
    server.create(sid)
    socket = PhoenixClient.open(server.port)
    try:
        join_ref, reply = socket.join(f"tail:{sid}")
        assert reply["status"] == "ok"
        server.proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionError):
            socket.wait_for(lambda m: False, timeout=15)
        assert socket.closed == (1001, "server_shutdown")  # the client reconnects and rejoins elsewhere
    finally:
        socket.sock.close()


def _created_ids(socket, join_ref, count, timeout=15.0) -> list:
    messages = [socket.wait_for(lambda m: m[0] == join_ref and m[3] == "lifecycle", timeout) for _ in range(count)]
    return [m[4]["event"]["session_id"] for m in messages if m[4]["event"]["kind"] == "session.created"]


def test_lifecycle_events_of_every_worker_reach_each_socket_once(make_server, sid):
    """A node of two workers: each owns a share of the groups, and a socket on either sees every
    session's events (`LifecycleRelay`), once."""
    server = make_server(env={"STARCITE_WORKERS": "2", "STARCITE_NUM_GROUPS": "8"})
    sockets = [PhoenixClient.open(server.port) for _ in range(4)]  # the accept spreads them over the workers
    try:
        refs = [socket.join("lifecycle")[0] for socket in sockets]
        server.wait_until(lambda: server.metric("starcite_phoenix_channels") == 4, 10, "the joins")
        ids = [f"{sid}-{n}" for n in range(12)]
        for session_id in ids:
            server.create(session_id)
        for socket, join_ref in zip(sockets, refs):
            assert sorted(_created_ids(socket, join_ref, len(ids))) == sorted(ids)
            with pytest.raises(TimeoutError):  # and nothing twice
                socket.wait_for(lambda m: m[3] == "lifecycle", timeout=0.5)
    finally:
        for socket in sockets:
            socket.close()
