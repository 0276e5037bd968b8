"""Vanished and stalled tail clients against a real node with short intervals (issue 22).

Owns: a WebSocket tail whose client reads nothing and never pongs is closed
within two ping intervals and its gauges go back to idle; a client that
answers pings stays open across many intervals (past the header and
keep-alive timeouts) and still gets events; an SSE tail that reads stays
open past those timeouts with its keep-alive comments; one whose client
stops reading is ended by the stall timeout, while one that reads goes on.

Must not: assert on speed; every wait is bounded.
"""

import socket
import threading
import time

from tests.raw_tail import open_tail, server_frame
from tests.slow_clients import (node,  # noqa: F401 (the module's node fixture)
                                IDLE, KEEPALIVE_S, MARGIN_S, PING_S, SSE_KEEPALIVE_S,
                                connection_gauges, metric_value, metrics_text, timeouts, wait_idle)

OP_TEXT, OP_CLOSE, OP_PING = 0x1, 0x8, 0x9
_PONG = bytes([0x8A, 0x80]) + b"\x00\x00\x00\x00"  # masked (zero key), empty


def _tail_gauges_idle(node) -> bool:
    text = metrics_text(node)
    return all(metric_value(text, name) == 0 for name in
               ("starcite_tail_streams", "starcite_tail_watchers", "starcite_tail_pumps", "starcite_tails_open"))


def _frames(buf: bytes):
    """Every complete server frame in ``buf``: ``([(opcode, payload)], rest)``."""
    frames = []
    while (parsed := server_frame(buf)) is not None:
        opcode, payload, buf = parsed
        frames.append((opcode, payload))
    return frames, buf


def test_a_websocket_tail_whose_client_never_answers_is_closed_within_two_ping_intervals(node, sid):
    node.create(sid)
    before = timeouts(node)["tail_ping"]
    sock, buf = open_tail(node.port, sid, 0)
    opened = time.monotonic()
    try:
        node.wait_until(lambda: connection_gauges(node)["websocket_tail"] == 1, 5, "the tail open")
        node.wait_until(lambda: connection_gauges(node)["websocket_tail"] == 0, 2 * PING_S + MARGIN_S + 3,
                        "the silent tail closed")
        closed_within = time.monotonic() - opened
        assert 1.5 * PING_S <= closed_within <= 2 * PING_S + MARGIN_S  # a ping first, then the close
        assert timeouts(node)["tail_ping"] == before + 1
        node.wait_until(lambda: _tail_gauges_idle(node), 5, "the tail's gauges idle")
        sock.settimeout(5)
        while chunk := sock.recv(65536):  # what the node sent before it closed: pings only
            buf += chunk
    finally:
        sock.close()
    frames, rest = _frames(buf)
    assert frames and {opcode for opcode, _ in frames} == {OP_PING} and rest == b""
    wait_idle(node)


def test_a_websocket_tail_that_answers_pings_stays_open_across_many_intervals(node, sid):
    node.create(sid)
    sock, buf = open_tail(node.port, sid, 0)
    pings, events = 0, []
    appender = threading.Thread(target=lambda: node.append(sid, 1))  # the client keeps answering meanwhile
    try:
        sock.settimeout(0.1)
        until = time.monotonic() + max(6 * PING_S, KEEPALIVE_S + 1)  # past the header and keep-alive timeouts
        while time.monotonic() < until or not events:
            assert time.monotonic() < until + 10, "the event never arrived"
            if not appender.is_alive() and appender.ident is None and time.monotonic() > until - 1:
                appender.start()
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            assert chunk, "the node closed a tail that answers its pings"
            frames, buf = _frames(buf + chunk)
            for opcode, payload in frames:
                assert opcode != OP_CLOSE, payload
                if opcode == OP_PING:
                    pings += 1
                    sock.sendall(_PONG)
                elif opcode == OP_TEXT:
                    events.append(payload)
        assert pings >= 4 and len(events) == 1
        assert connection_gauges(node)["websocket_tail"] == 1
    finally:
        sock.close()
        if appender.ident is not None:
            appender.join(15)
    node.wait_until(lambda: _tail_gauges_idle(node), 5, "the tail's gauges idle")
    wait_idle(node)


def _open_sse(node, sid, receive_buffer=None):
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # before connect: a small window
    sock.settimeout(10)
    sock.connect(("127.0.0.1", node.port))
    sock.sendall(f"GET /v1/sessions/{sid}/tail?cursor=0 HTTP/1.1\r\nHost: x\r\n"
                 f"Accept: text/event-stream\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # the head only: nothing of the stream is read here
    assert head.startswith(b"HTTP/1.1 200 "), head
    return sock


def test_an_sse_tail_that_reads_stays_open_past_the_header_and_keep_alive_timeouts(node, sid):
    node.create(sid)
    sock = _open_sse(node, sid)
    received = b""
    try:
        sock.settimeout(0.2)
        until = time.monotonic() + KEEPALIVE_S + 1
        while time.monotonic() < until:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            assert chunk, "the node ended an SSE tail that reads"
            received += chunk
        assert received.count(b": keep-alive") >= 2
        assert connection_gauges(node)["sse_tail"] == 1
    finally:
        sock.close()
    node.wait_until(lambda: _tail_gauges_idle(node), 5, "the tail's gauges idle")


def test_an_sse_tail_whose_client_stops_reading_is_ended_by_the_stall_timeout(node, sid):
    node.create(sid)
    before = timeouts(node)["tail_stall"]
    reader = _open_sse(node, sid)
    stalled = _open_sse(node, sid, receive_buffer=4096)
    try:
        node.wait_until(lambda: connection_gauges(node)["sse_tail"] == 2, 5, "both SSE tails open")
        payload = {"text": "x" * 60000}
        seq = 0
        while connection_gauges(node)["sse_tail"] == 2:  # until the kernel buffers are full and the write stalls
            seq += 1
            assert seq <= 400, "the stalled SSE tail was never ended"
            assert node.append(sid, seq, payload=payload).status_code == 201
            reader.settimeout(0.01)
            try:
                while reader.recv(1 << 20):
                    pass
            except socket.timeout:
                pass
        node.wait_until(lambda: connection_gauges(node)["sse_tail"] == 1, 2 * SSE_KEEPALIVE_S + MARGIN_S,
                        "the stalled tail ended")
        assert timeouts(node)["tail_stall"] == before + 1
        reader.settimeout(2)
        assert reader.recv(65536)  # the one that reads is still served
    finally:
        reader.close()
        stalled.close()
    node.wait_until(lambda: _tail_gauges_idle(node), 5, "the tails' gauges idle")
    node.wait_until(lambda: connection_gauges(node) == IDLE, KEEPALIVE_S + 10, "idle connection gauges")
