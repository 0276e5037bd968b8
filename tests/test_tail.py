"""WebSocket tails on a real node: replay then live, batches, bursts, archive boundary, errors."""

import socket
import threading

import pytest
import websocket

from tests.raw_tail import read_head
from tests.rules.helpers import EVENT_KEYS
from tests.tail_client import TailClient


@pytest.fixture
def server(shared_server):
    return shared_server


def fill(server, session_id, start, stop, producer_id="p1"):
    for n in range(start, stop + 1):
        response = server.append(session_id, n, producer_id=producer_id)
        assert response.status_code == 201, response.text


def test_replay_then_live_one_event_per_frame(server, sid):
    server.create(sid)
    fill(server, sid, 1, 20)
    tail = TailClient(server, sid)
    tail.read_until(20)
    fill(server, sid, 21, 30)
    tail.read_until(30)
    assert tail.seqs() == list(range(1, 31)) and tail.frames == 30
    first = tail.events[0]
    assert set(first) == EVENT_KEYS
    assert first["payload"] == {"n": 1} and first["producer_id"] == "p1" and first["inserted_at"].endswith("Z")
    tail.close()


def test_cursor_and_batches(server, sid):
    server.create(sid)
    fill(server, sid, 1, 25)
    tail = TailClient(server, sid, cursor=10, batch_size=4)
    tail.read_until(15)
    assert tail.seqs() == list(range(11, 26))
    assert tail.frames >= 4  # arrays of at most 4 events
    fill(server, sid, 26, 27)
    tail.read_until(17)
    assert tail.seqs() == list(range(11, 28))
    tail.close()


def test_cursor_at_or_past_the_end_waits_for_new_events(server, sid):
    server.create(sid)
    fill(server, sid, 1, 3)
    tail = TailClient(server, sid, cursor=3)
    fill(server, sid, 4, 4)
    assert tail.read_until(1) and tail.seqs() == [4]
    tail.close()


def test_a_cursor_past_last_seq_is_a_wait_for_the_events_after_it(server, sid):
    """docs/api.md: a replica that has not applied the client's last seq yet must not refuse it."""
    server.create(sid)
    fill(server, sid, 1, 3)
    tail = TailClient(server, sid, cursor=5)
    page = server.request("GET", f"/v1/sessions/{sid}/events?cursor=5").json()
    assert page == {"events": [], "next_cursor": 5, "last_seq": 3}
    fill(server, sid, 4, 6)
    assert tail.read_until(1) and tail.seqs() == [6]
    tail.close()


def test_tail_opened_during_a_burst_sees_each_seq_once_in_order(server, sid):
    server.create(sid)
    fill(server, sid, 1, 50)
    done = threading.Event()

    def burst(producer):
        for n in range(1, 101):
            assert server.append(sid, n, producer_id=producer).status_code == 201
        done.set()

    writers = [threading.Thread(target=burst, args=(f"w{i}",)) for i in range(4)]
    for writer in writers:
        writer.start()
    tails = [TailClient(server, sid, batch_size=size) for size in (1, 7, 1000)]
    for writer in writers:
        writer.join(60)
    for tail in tails:
        tail.read_until(450)
        assert tail.seqs() == list(range(1, 451))
        tail.close()


def test_inbound_frames_are_ignored(server, sid):
    server.create(sid)
    tail = TailClient(server, sid)
    tail.ws.send("hello")
    tail.ws.send("{}")
    fill(server, sid, 1, 2)
    assert tail.read_until(2) and tail.seqs() == [1, 2]
    tail.close()


@pytest.mark.parametrize("query,status,code", [
    ("cursor=-1", 400, "invalid_cursor"), ("cursor=x", 400, "invalid_cursor"),
    ("batch_size=0", 400, "invalid_batch_size"), ("batch_size=1001", 400, "invalid_batch_size"),
])
def test_bad_parameters_refused_before_upgrade(server, sid, query, status, code):
    server.create(sid)
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(f"{server.ws_base}/v1/sessions/{sid}/tail?{query}", timeout=5)
    assert info.value.status_code == status and code.encode() in info.value.resp_body


def test_an_http10_upgrade_is_refused_with_400(server, sid):
    server.create(sid)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(f"GET /v1/sessions/{sid}/tail?cursor=0 HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        answer = b"".join(iter(lambda: sock.recv(4096), b""))  # HTTP/1.0: the answer ends at the close
    assert answer.startswith(b"HTTP/1.1 400") and b"invalid_handshake" in answer


def raw_upgrade(server, sid, connection="Upgrade", version="13") -> bytes:
    """The head of the answer to a hand-written upgrade request."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(f"GET /v1/sessions/{sid}/tail?cursor=0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     f"Connection: {connection}\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     f"Sec-WebSocket-Version: {version}\r\n\r\n".encode())
        return read_head(sock)


@pytest.mark.parametrize("version", ["7", "8", "12", "14", ""])
def test_a_websocket_version_other_than_13_is_426_naming_13(server, sid, version):
    """RFC 6455 §4.2.2: the server answers 426 with the version it speaks."""
    server.create(sid)
    answer = raw_upgrade(server, sid, version=version)
    assert answer.startswith(b"HTTP/1.1 426"), answer[:200]
    assert b"\r\nsec-websocket-version: 13\r\n" in answer.lower()


@pytest.mark.parametrize("connection", ["xxupgradexx", "keep-alive", "upgraded", ""])
def test_a_connection_header_without_the_upgrade_token_is_not_an_upgrade(server, sid, connection):
    server.create(sid)
    assert raw_upgrade(server, sid, connection=connection).startswith(b"HTTP/1.1 426")


@pytest.mark.parametrize("connection", ["keep-alive, Upgrade", "UPGRADE", " upgrade ,keep-alive"])
def test_the_upgrade_token_is_found_in_a_list_case_insensitively(server, sid, connection):
    server.create(sid)
    assert raw_upgrade(server, sid, connection=connection).startswith(b"HTTP/1.1 101")


def test_unknown_session_is_404_before_upgrade(server):
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(f"{server.ws_base}/v1/sessions/missing/tail", timeout=5)
    assert info.value.status_code == 404 and b"session_not_found" in info.value.resp_body


def test_plain_get_is_426(server, sid):
    server.create(sid)
    response = server.request("GET", f"/v1/sessions/{sid}/tail")
    assert response.status_code == 426 and response.json()["error"] == "upgrade_required"


def test_replay_across_the_archive_boundary(server, sid):
    """Events archived and evicted from memory replay from the archive, then hot, then live."""
    server.create(sid)
    fill(server, sid, 1, 600)
    server.wait_until(lambda: server.request("GET", "/metrics").text and
                      server.metric("starcite_archive_pending_rows") == 0, timeout=20, what="archive drain")
    fill(server, sid, 601, 650)  # hot
    for cursor, size in ((0, 1000), (255, 1), (300, 100)):
        tail = TailClient(server, sid, cursor=cursor, batch_size=size)
        tail.read_until(650 - cursor)
        fill_to = 650 + (cursor == 300)
        if cursor == 300:
            fill(server, sid, 651, 651)
            tail.read_until(fill_to - cursor)
        assert tail.seqs() == list(range(cursor + 1, fill_to + 1))
        tail.close()


def open_tails(server):
    return server.ops_status()["tails"]


def test_ping_close_and_disconnect_release_the_tail(make_server):
    server = make_server()
    server.create("s")
    tail = TailClient(server, "s")
    tail.ws.ping(b"hi")
    opcode, data = tail.ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_PONG and data == b"hi"
    server.append("s", 1)
    assert tail.read_until(1) and tail.seqs() == [1]
    tail.ws.send_close()
    assert tail.wait_close() == 1000
    abrupt = TailClient(server, "s")
    abrupt.read_until(1)
    abrupt.ws.sock.close()  # no close frame
    server.wait_until(lambda: open_tails(server) == 0, what="tails released")
    server.append("s", 2)  # fan-out to a released tail must not break anything
    again = TailClient(server, "s", cursor=1)
    assert again.read_until(1) and again.seqs() == [2]
    again.close()


def test_large_inbound_frames_are_ignored(server, sid):
    server.create(sid)
    tail = TailClient(server, sid)
    tail.ws.send("x" * 200000)
    tail.ws.send_binary(b"\x00" * 70000)
    fill(server, sid, 1, 3)
    assert tail.read_until(3) and tail.seqs() == [1, 2, 3]
    tail.close()


def test_slow_consumer_gets_everything_in_order(server, sid):
    """Live batches are written without blocking; when the socket buffer is full the rest
    waits in order behind what was already written."""
    server.create(sid)
    tail = TailClient(server, sid)
    big = {"blob": "x" * 60000}
    for n in range(1, 201):  # ~12 MB while the client reads nothing: more than the socket buffers
        assert server.append(sid, n, payload=big).status_code == 201
    events = tail.read_until(200, timeout=60)
    assert [e["seq"] for e in events] == list(range(1, 201))
    assert all(e["payload"] == big for e in events)
    fill(server, sid, 201, 205)
    assert tail.read_until(205)[-1]["seq"] == 205
    tail.close()
