"""The live fan-out (`starcite.api.tails.live_fanout`) on real sockets, in this process's gevent hub.

`send_each` (the C helper and its Python twin) reports per fd what the kernel
took; `LiveFanout` sends a committed batch to every idle live tail in one
job, grouped by the bytes each tail gets, holds batches committed while a
job is out and sends them together after it, hands a tail that is not idle
its batch through the outbox (the pump), and settles a part-sent or dead
socket. Both the threaded job (the C helper in the fan-out thread) and the
fallback (on the calling thread) are run. No timing is asserted; every wait
is bounded.
"""

import errno
import json
import socket

import gevent
import gevent.socket
import pytest

from starcite.api.tails import live_fanout
from starcite.api.tails.live_fanout import LiveFanout, send_each_here
from starcite.api.tails.stream import TailStream
from starcite.api.tails.ws_wire import WebSocketConn
from tests.raw_tail import server_frame

WAIT_S = 10.0
SESSION = "fanout-1"


def test_the_c_helper_is_built_by_make_install():
    assert live_fanout.native_send_each is not None, "starcite._fanout did not build (see setup.py)"


def _pair():
    """(server end, client end) over loopback TCP, both gevent sockets: a read by the test yields
    to the hub, where the tails' pumps and the fan-out's completions run."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = gevent.socket.create_connection(listener.getsockname(), timeout=WAIT_S)
    server, _ = listener.accept()
    listener.close()
    return gevent.socket.socket(fileno=server.detach()), client


IMPLEMENTATIONS = [pytest.param(send_each_here, id="python")]
if live_fanout.native_send_each is not None:
    IMPLEMENTATIONS.append(pytest.param(live_fanout.native_send_each, id="c"))


@pytest.mark.parametrize("send_each", IMPLEMENTATIONS)
def test_send_each_reports_what_each_fd_took(send_each):
    (a, a_peer), (b, b_peer), (dead, dead_peer) = _pair(), _pair(), _pair()
    dead_peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    dead_peer.close()  # an RST: the next send fails
    gevent.sleep(0.05)
    spare = socket.socket()
    bad_fd = spare.fileno()
    spare.close()
    results = send_each([a.fileno(), dead.fileno(), b.fileno(), bad_fd], b"hello")
    assert results[0] == 5 and results[2] == 5
    assert results[1] in (-errno.ECONNRESET, -errno.EPIPE)
    assert results[3] == -errno.EBADF
    assert a_peer.recv(16) == b"hello" and b_peer.recv(16) == b"hello"


@pytest.mark.parametrize("send_each", IMPLEMENTATIONS)
def test_send_each_takes_what_a_full_buffer_can(send_each):
    sock, peer = _pair()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    data = b"x" * (4 << 20)
    first = send_each([sock.fileno()], data)[0]
    assert 0 < first < len(data)
    for _ in range(1000):  # the peer's receive buffer takes some more, then nothing does
        if send_each([sock.fileno()], data)[0] == 0:
            break
    else:
        pytest.fail("a socket nobody reads never filled up")
    peer.close()


class _Node:
    """What a TailStream's pump asks of the node: its read part (`node.reads`), over a list of
    committed entries."""

    def __init__(self, entries):
        self.entries = entries
        self.reads = self

    def read_events(self, _session_id, after, limit):
        return [e for e in self.entries if e[0] > after][:limit]


class _Handle:
    def __init__(self):
        self.live = []

    def go_live(self, cursor):
        self.live.append(cursor)

    def go_replay(self):
        pass

    def close(self):
        pass


def _entries(first, last):
    return [(seq, json.dumps({"seq": seq})) for seq in range(first, last + 1)]


class _Tail:
    """A live TailStream on a real socket, and the client end that reads its frames."""

    def __init__(self, node, sent, batch_size=1):
        sock, self.peer = _pair()
        self.stream = TailStream(node, WebSocketConn(sock), SESSION, sent, batch_size)
        self.stream.handle = _Handle()
        self.stream.replaying = False
        self.buffer = b""
        self.payloads = []  # every event received, decoded

    def seqs_until(self, last):
        """Every seq the client receives until it has ``last`` (bounded by the socket timeout)."""
        seqs = []
        self.peer.settimeout(WAIT_S)
        while not seqs or seqs[-1] < last:
            parsed = server_frame(self.buffer)
            if parsed is None:
                self.buffer += self.peer.recv(65536)
                continue
            _opcode, payload, self.buffer = parsed
            payload = json.loads(payload)
            events = payload if isinstance(payload, list) else [payload]
            self.payloads += events
            seqs += [e["seq"] for e in events]
        return seqs


def _wait(predicate):
    with gevent.Timeout(WAIT_S):
        while not predicate():
            gevent.sleep(0.01)


@pytest.fixture(params=[True, False], ids=["threaded", "here"])
def fanout(request, monkeypatch):
    if request.param and live_fanout.native_send_each is None:
        pytest.skip("the C helper is not built")
    monkeypatch.setattr(live_fanout, "INLINE_SENDS", 0)  # every job of these few tails goes to the thread
    return LiveFanout(threaded=request.param)


def test_a_small_job_is_sent_on_the_calling_thread():
    fanout = LiveFanout()
    node = _Node(_entries(1, 1))
    tail = _Tail(node, 0)
    fanout.put_all(SESSION, [tail.stream.outbox], node.entries)
    assert fanout.job is None and fanout.pool is None and tail.stream.conn.in_flight is None  # done already
    assert tail.seqs_until(1) == [1]


def test_one_job_sends_each_tail_what_it_has_not_sent(fanout):
    node = _Node(_entries(1, 5))
    behind, ahead, batched = _Tail(node, 3), _Tail(node, 4), _Tail(node, 3, batch_size=100)
    fanout.put_all(SESSION, [t.stream.outbox for t in (behind, ahead, batched)], node.entries[3:])  # 4, 5
    assert behind.seqs_until(5) == [4, 5]
    assert ahead.seqs_until(5) == [5]
    assert batched.seqs_until(5) == [4, 5]
    _wait(lambda: fanout.job is None)
    assert fanout.jobs == 1
    assert all(t.stream.sent == 5 and t.stream.conn.in_flight is None for t in (behind, ahead, batched))


def test_batches_committed_while_a_job_is_out_go_together_after_it(fanout):
    node = _Node(_entries(1, 3))
    tail = _Tail(node, 0)
    outboxes = [tail.stream.outbox]
    fanout.job = held = live_fanout.FanoutJob()  # a job is out
    fanout.put_all(SESSION, outboxes, node.entries[0:1])
    fanout.put_all(SESSION, outboxes, node.entries[1:3])
    assert fanout.pending[SESSION][1] == node.entries  # one run, in order
    fanout._finish(held, [])
    assert tail.seqs_until(3) == [1, 2, 3]
    _wait(lambda: fanout.job is None and not fanout.pending)


def test_a_tail_that_is_not_idle_gets_the_batch_through_its_pump(fanout):
    node = _Node(_entries(1, 4))
    gap, replaying = _Tail(node, 1), _Tail(node, 2)
    replaying.stream.replaying = True  # its pump reads the store, then goes live
    fanout.put_all(SESSION, [gap.stream.outbox, replaying.stream.outbox], node.entries[3:])  # 4 only
    assert gap.seqs_until(4) == [2, 3, 4]  # the gap (2, 3) was replayed, never skipped
    assert replaying.seqs_until(4) == [3, 4]


def test_a_part_sent_batch_is_finished_by_the_pump_in_order(fanout):
    blob = "x" * 200_000
    node = _Node([(seq, json.dumps({"seq": seq, "blob": blob})) for seq in range(1, 41)])
    tail = _Tail(node, 0)
    tail.stream.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    for start in range(0, 40, 4):  # ~8 MB, more than the socket buffers, while nobody reads
        fanout.put_all(SESSION, [tail.stream.outbox], node.entries[start:start + 4])
        gevent.sleep(0.01)

    def read_all():
        seqs, buffer = [], b""
        tail.peer.settimeout(WAIT_S)
        while len(seqs) < 40:
            buffer += tail.peer.recv(1 << 20)
            seqs = [int(s) for s in __import__("re").findall(rb'"seq": (\d+)', buffer)]
        return seqs

    assert read_all() == list(range(1, 41))


def test_a_dead_socket_ends_its_tail_and_the_others_go_on(fanout):
    node = _Node(_entries(1, 2))
    dead, alive = _Tail(node, 0), _Tail(node, 0)
    dead.peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    dead.peer.close()
    gevent.sleep(0.05)
    registry = {dead.stream, alive.stream}
    dead.stream.registry = alive.stream.registry = registry
    fanout.put_all(SESSION, [dead.stream.outbox, alive.stream.outbox], node.entries)
    assert alive.seqs_until(2) == [1, 2]
    _wait(lambda: dead.stream.conn.closed)
    assert registry == {alive.stream}


def test_two_sessions_in_one_job_each_get_their_own_bytes(fanout):
    """Batches of different sessions held during a job go out in one job, at the same seqs."""
    ours, theirs = _Node(_entries(1, 2)), _Node([(seq, json.dumps({"seq": seq, "other": True})) for seq in (1, 2)])
    tail, other = _Tail(ours, 0), _Tail(theirs, 0)
    other.stream.session_id = "fanout-2"
    fanout.job = held = live_fanout.FanoutJob()
    fanout.put_all(SESSION, [tail.stream.outbox], ours.entries)
    fanout.put_all("fanout-2", [other.stream.outbox], theirs.entries)
    fanout._finish(held, [])
    assert tail.seqs_until(2) == [1, 2] and other.seqs_until(2) == [1, 2]
    assert not any("other" in e for e in tail.payloads) and all(e["other"] for e in other.payloads)
    _wait(lambda: fanout.job is None)
    assert fanout.jobs == 1


def test_no_pump_starts_while_a_job_has_the_socket(fanout):
    """Work that arrives for a tail in a job waits for the job's settle, which starts the pump:
    no greenlet is parked per tail meanwhile (a shutdown closes every live tail at once)."""
    node = _Node(_entries(1, 1))
    tail = _Tail(node, 0)
    held = live_fanout.FanoutJob()
    assert tail.stream.claim(node.entries, held) == 0
    tail.stream.outbox.put(("close", 1000, "server_shutdown"))
    assert tail.stream.pump is None  # nothing runs until the job settles
    fanout.job = held
    held.groups.append((b"", [], [tail.stream]))
    fanout._finish(held, [[0]])  # the job sent nothing of an empty frame: settled
    _wait(lambda: tail.stream.conn.closed)
