"""A Phoenix socket's liveness on a node with short timeouts (`tests.slow_clients`): a socket
that sends nothing (no heartbeat, no pong) is pinged after one ``tail_ws_ping_ms`` and closed
after a second (counted as ``tail_ping``), its channels ended and the gauges idle; a socket that
heartbeats lives on, however long; one that heartbeats but stops reading is closed when a
channel's write stalls (``tail_stall``).

Must not: reach anything but 127.0.0.1, or wait without a bound.
"""

import time

from tests.phoenix_client import PhoenixClient
from tests.slow_clients import MARGIN_S, PING_S, closed_after, connection_gauges, node, timeouts, wait_idle  # noqa: F401

PHOENIX_GAUGES = ("starcite_phoenix_sockets", "starcite_phoenix_channels", "starcite_phoenix_tail_streams")


def test_a_silent_socket_is_pinged_then_closed(node, sid):
    node.create(sid)
    before = timeouts(node)["tail_ping"]
    client = PhoenixClient.open(node.port)
    try:
        join_ref, reply = client.join(f"tail:{sid}")
        assert reply["status"] == "ok"
        took, data = closed_after(client.sock, 2 * PING_S + 2 * MARGIN_S)
    finally:
        client.sock.close()
    assert took <= 2 * PING_S + 2 * MARGIN_S
    assert b"\x89\x00" in data  # the ping it never answered
    assert timeouts(node)["tail_ping"] == before + 1
    node.wait_until(lambda: all(node.metric(name) == 0 for name in PHOENIX_GAUGES), 5, "the Phoenix gauges at 0")
    wait_idle(node)


def test_a_socket_that_heartbeats_lives_on(node):
    client = PhoenixClient.open(node.port)
    try:
        until = time.monotonic() + 4 * PING_S
        while time.monotonic() < until:
            assert client.heartbeat()["status"] == "ok"
            time.sleep(PING_S / 4)
        assert connection_gauges(node)["phoenix_socket"] == 1
    finally:
        client.close()
    wait_idle(node)


def test_a_socket_that_stops_reading_is_closed_by_the_stall_timeout(node, sid):
    """It still heartbeats (so it is not silent), but reads nothing: a channel's write stalls for
    two intervals, the channel ends and takes the socket with it (the client would reconnect)."""
    node.create(sid)
    before = timeouts(node)["tail_stall"]
    client = PhoenixClient.open(node.port, receive_buffer=4096)
    try:
        _join_ref, reply = client.join(f"tail:{sid}")
        assert reply["status"] == "ok"
        payload = {"text": "x" * 60000}
        seq = 0
        while connection_gauges(node)["phoenix_socket"] == 1:
            seq += 1
            assert seq <= 400, "the stalled socket was never closed"
            assert node.append(sid, seq, payload=payload).status_code == 201
            client.send(None, "phoenix", "heartbeat", {})
            time.sleep(0.05)
        assert timeouts(node)["tail_stall"] == before + 1
    finally:
        client.sock.close()
    node.wait_until(lambda: all(node.metric(name) == 0 for name in PHOENIX_GAUGES), 5, "the Phoenix gauges at 0")
    wait_idle(node)
