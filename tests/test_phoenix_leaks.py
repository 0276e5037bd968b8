"""Closed Phoenix sockets and left channels leave nothing behind: join, replay, leave cycles
against a real node, as `tests.test_tail_lifecycle` does for raw tails (its helpers read the
gauges), fewer cycles: each socket joins a tail channel, reads its replay and leaves it
``LEAVES_PER_SOCKET`` times, then joins once more and ends with the channel still joined, in
one of three ways (a close frame it waits to see answered, a close frame and gone, no frame
at all).

After a warm-up, the worker's RSS must stay within 2 MiB of where it started, every gauge
of what tails, sockets and channels hold must return to its idle value, and the cyclic
collector must have freed next to nothing. Performance is not asserted here.
"""

import struct

import pytest

from tests.phoenix_client import PhoenixClient, client_frame
from tests.server import child_pids, rss_bytes
from tests.test_tail_lifecycle import IDLE_GAUGES, RSS_TOLERANCE, cyclic_garbage_collected, idle_baseline, \
    run_in_threads, settled, wait_idle

EVENTS = 50
LEAVES_PER_SOCKET = 4
WARMUP_SOCKETS = 600  # 3,000 joins, as many as the raw tails' warm-up
SOCKETS = 4000  # 20,000 joins, as many as the raw tails' lifecycle test
ENDINGS = ("answered", "sent", "abrupt")
PHOENIX_IDLE_GAUGES = {**IDLE_GAUGES, "starcite_phoenix_sockets": 0, "starcite_phoenix_channels": 0,
                       "starcite_phoenix_tail_streams": 0, "starcite_phoenix_tail_pumps": 0}


def _replay(client, topic) -> str:
    join_ref, reply = client.join(topic, {"cursor": 0})
    if reply["status"] != "ok":
        raise AssertionError(f"join refused: {reply}")
    seqs = [event["seq"] for event in client.events_until(topic, join_ref, EVENTS)]
    if seqs != list(range(1, EVENTS + 1)):
        raise AssertionError(f"replay was {seqs[:5]}...")
    return join_ref


def socket_cycle(port, session_id, n):
    """One socket's joins, replays and leaves, then its end (``ENDINGS[n % 3]``)."""
    topic = f"tail:{session_id}"
    client = PhoenixClient.open(port)
    try:
        for _ in range(LEAVES_PER_SOCKET):
            join_ref = _replay(client, topic)
            if client.leave(topic, join_ref)["status"] != "ok":
                raise AssertionError("leave refused")
            client.wait_for(lambda m, ref=join_ref: m[3] == "phx_close" and m[0] == ref)
            client.messages.clear()
        _replay(client, topic)
        ending = ENDINGS[n % len(ENDINGS)]
        if ending != "abrupt":
            client.sock.sendall(client_frame(struct.pack("!H", 1000), 0x8))
        if ending == "answered":
            while client.sock.recv(65536):  # the server's close frame, then EOF
                pass
    finally:
        client.sock.close()


def run_sockets(server, session_id, count):
    run_in_threads(count, lambda n: socket_cycle(server.port, session_id, n))


@pytest.fixture
def node(make_server):
    # The node's workers as the suite runs them (1, or 2 in CI's second pass: then half the channels are
    # fed over the sibling link, whose reads no longer fragment the heap: `PeerLink._read_loop`).
    return make_server(env={"STARCITE_ACCESS_LOG": "false", "STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "3600000"})


def test_closed_sockets_and_left_channels_leave_nothing(node):
    node.create("churn")
    for n in range(1, EVENTS + 1):
        assert node.append("churn", n).status_code == 201
    workers = child_pids(node.proc.pid)
    run_sockets(node, "churn", WARMUP_SOCKETS)
    baseline = idle_baseline(node, idle=PHOENIX_IDLE_GAUGES)
    assert baseline["starcite_tails_open"] == 0 and baseline["starcite_phoenix_sockets"] == 0, baseline
    rss_before = sum(rss_bytes(worker) for worker in workers)
    collected_before = cyclic_garbage_collected(node)

    run_sockets(node, "churn", SOCKETS)
    after, expected = wait_idle(node, baseline, idle=PHOENIX_IDLE_GAUGES)
    rss_after = sum(rss_bytes(worker) for worker in workers)
    collected = cyclic_garbage_collected(node) - collected_before

    assert settled(after, expected), (after, expected)
    joins = SOCKETS * (LEAVES_PER_SOCKET + 1)
    grown = rss_after - rss_before
    print(f"worker RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB over {joins} joins")  # -s shows it
    assert grown <= RSS_TOLERANCE * len(workers), f"worker RSS grew {grown / 1024:.0f} KiB over {joins} joins"
    assert collected < joins // 10, f"the cyclic collector freed {collected} objects over {joins} joins"
    socket_cycle(node.port, "churn", 0)  # and the node still serves channels
