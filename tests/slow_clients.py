"""Test helper: a node with short client timeouts, and what its connection gauges say.

Owns: `SHORT_TIMEOUTS` (the settings the slow-client tests run a node with:
short enough that a timeout is seconds, with the keep-alive timeout longer
than the header timeout so the two are told apart), the module fixture
`node` (one such node per test module that imports it), `connection_gauges` (the
``starcite_http_connections`` gauge by kind, read on a connection of its own
that it closes, so the reading counts one ``request``), `IDLE` (that reading
on an idle node), `timeouts` (the connections each timeout ended), and `closed_after` (how long until the node closes a
socket, and what it sent before). Must not: start or stop nodes (the
fixtures do).
"""

import time

import pytest
import requests

from tests.server import StarciteServer

HEADER_S, BODY_S, KEEPALIVE_S, PING_S, SSE_KEEPALIVE_S = 1.0, 1.0, 2.0, 1.0, 0.5
SHORT_TIMEOUTS = {
    "STARCITE_HTTP_HEADER_TIMEOUT_MS": str(int(HEADER_S * 1000)),
    "STARCITE_HTTP_BODY_TIMEOUT_MS": str(int(BODY_S * 1000)),
    "STARCITE_HTTP_KEEPALIVE_TIMEOUT_MS": str(int(KEEPALIVE_S * 1000)),
    "STARCITE_TAIL_WS_PING_MS": str(int(PING_S * 1000)),
    "STARCITE_TAIL_SSE_KEEPALIVE_MS": str(int(SSE_KEEPALIVE_S * 1000)),
}
IDLE = {"request": 1, "keepalive_idle": 0, "websocket_tail": 0, "sse_tail": 0, "phoenix_socket": 0, "long_poll": 0}
MARGIN_S = 2.0  # what a timeout may overrun by on a loaded test machine (sweeps and visits are periodic)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    server = StarciteServer(tmp_path_factory.mktemp("short-timeouts"), SHORT_TIMEOUTS)
    server.start()
    yield server
    server.stop()


def metrics_text(server) -> str:
    response = requests.get(server.base + "/metrics", headers={"Connection": "close"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def metric_value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


def connection_gauges(server) -> dict:
    prefix = 'starcite_http_connections{kind="'
    return {line[len(prefix):].split('"', 1)[0]: int(float(line.rsplit(" ", 1)[1]))
            for line in metrics_text(server).splitlines() if line.startswith(prefix)}


def timeouts(server) -> dict:
    """``starcite_http_connections_timed_out_total`` by timeout."""
    prefix = 'starcite_http_connections_timed_out_total{timeout="'
    return {line[len(prefix):].split('"', 1)[0]: int(float(line.rsplit(" ", 1)[1]))
            for line in metrics_text(server).splitlines() if line.startswith(prefix)}


def wait_idle(server, timeout=KEEPALIVE_S + 10):
    """Until the gauges read idle (a keep-alive connection of an earlier request may hold them up
    to the keep-alive timeout)."""
    server.wait_until(lambda: connection_gauges(server) == IDLE, timeout, "idle connection gauges")


def closed_after(sock, limit_s: float):
    """``(seconds until the node closed sock, bytes it sent before)``; reads at most ``limit_s``."""
    start = time.monotonic()
    sock.settimeout(limit_s)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return time.monotonic() - start, data
        data += chunk
