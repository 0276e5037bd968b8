"""The API listener's accept gate (`starcite.api.server.accept_gate`) on a real node.

A connection holds no start slot until its client has written something, so idle
connections never keep others from being served; many connections arriving at once
(a reconnect storm) are all served, tails included; a shutdown closes the connections
that were accepted but never started. No timing is asserted: every wait is bounded only
so a failure cannot hang the suite.
"""

import base64
import os
import socket

from tests.raw_tail import read_head
from tests.server import wait_until

WAIT_S = 20.0


def _connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    sock.settimeout(WAIT_S)
    return sock


def test_idle_connections_do_not_keep_a_request_from_being_served(server):
    idle = [_connect(server.port) for _ in range(50)]  # far more than the gate's start slots
    try:
        sock = _connect(server.port)
        with sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_head(sock).startswith(b"HTTP/1.1 200")
    finally:
        for sock in idle:
            sock.close()


def test_many_connections_at_once_are_all_served_tails_included(server, sid):
    server.create(sid)
    socks = [_connect(server.port) for _ in range(300)]
    try:
        for i, sock in enumerate(socks):
            if i % 2:
                sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            else:
                key = base64.b64encode(os.urandom(16))
                sock.sendall(b"GET /v1/sessions/%s/tail?cursor=0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                             % (sid.encode(), key))
        heads = [read_head(sock) for sock in socks]
        assert all(head.startswith(b"HTTP/1.1 101") for head in heads[0::2])
        assert all(head.startswith(b"HTTP/1.1 200") for head in heads[1::2])
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: server.metric("starcite_tails_open") == 0, WAIT_S, "tails closed")


def test_shutdown_closes_connections_that_never_started(server):
    idle = [_connect(server.port) for _ in range(20)]
    try:
        wait_until(lambda: server.request("GET", "/health/live").status_code == 200, WAIT_S, "node serving")
        server.stop()
        for sock in idle:
            try:
                assert sock.recv(1) == b""  # closed by the node, not left hanging
            except ConnectionResetError:
                pass
    finally:
        for sock in idle:
            sock.close()
