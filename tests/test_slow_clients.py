"""Slow, idle and greedy HTTP clients against a real node with short timeouts (issue 22).

Owns: the header timeout (a connection that never sends, a slow head, 500
slowloris connections while a normal client is served, the worker's RSS
after them), the body timeout (408), the keep-alive timeout (longer than the
header timeout, and only between requests), a long-poll held past every one
of them, and the connection cap (503 with ``Retry-After``, counted; its
default from ``RLIMIT_NOFILE``); the settings refused out of range. Tails
are `tests/test_tail_liveness.py`'s.

Must not: assert on speed; every wait is bounded.
"""

import json
import socket
import threading
import time

import pytest
import requests

from starcite.api.server.connection_limits import ConnectionLimits, default_max_connections
from starcite.config.settings import ConfigError, load_config
from tests.server import child_pids, rss_bytes
from tests.slow_clients import (node,  # noqa: F401 (the module's node fixture)
                                BODY_S, HEADER_S, IDLE, KEEPALIVE_S, MARGIN_S, SHORT_TIMEOUTS, closed_after,
                                connection_gauges, metric_value, metrics_text, timeouts, wait_idle)

MiB = 1024 * 1024
SLOW_CONNECTIONS = 500


def _connect(node) -> socket.socket:
    return socket.create_connection(("127.0.0.1", node.port), timeout=10)


def test_a_connection_that_never_sends_is_closed_after_the_header_timeout(node):
    before = timeouts(node)["header"]
    with _connect(node) as sock:
        seconds, data = closed_after(sock, HEADER_S + MARGIN_S)
    assert data == b""  # no request line read: nothing to answer
    assert HEADER_S * 0.9 <= seconds <= HEADER_S + MARGIN_S
    assert timeouts(node)["header"] == before + 1
    wait_idle(node)


def test_a_slow_request_head_gets_408_then_the_close(node):
    before = timeouts(node)["header"]
    with _connect(node) as sock:
        sock.sendall(b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\n")
        seconds, data = closed_after(sock, HEADER_S + MARGIN_S)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in head
    assert json.loads(body)["error"] == "request_timeout"
    assert seconds <= HEADER_S + MARGIN_S
    assert timeouts(node)["header"] == before + 1


def test_a_slow_body_gets_408(node):
    before = timeouts(node)["body"]
    with _connect(node) as sock:
        sock.sendall(b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 40\r\n\r\n{\"id\": ")
        seconds, data = closed_after(sock, BODY_S + MARGIN_S)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), data[:200]
    assert json.loads(body)["error"] == "request_timeout"
    assert seconds <= BODY_S + MARGIN_S
    assert timeouts(node)["body"] == before + 1
    assert node.request("GET", "/v1/sessions?limit=1").status_code == 200  # nothing was created or broken


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(node):
    before = timeouts(node)["keepalive"]
    with _connect(node) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        seconds, data = closed_after(sock, KEEPALIVE_S + MARGIN_S)
    assert data.startswith(b"HTTP/1.1 200 ") and data.count(b"HTTP/1.1") == 1
    # the keep-alive timeout, not the (shorter) header timeout, and the response was not held up
    assert KEEPALIVE_S * 0.9 <= seconds <= KEEPALIVE_S + MARGIN_S
    assert timeouts(node)["keepalive"] >= before + 1


def test_a_keep_alive_connection_serves_requests_spread_over_more_than_the_header_timeout(node):
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(node.base + "/health/live", timeout=10).status_code == 200
            time.sleep(HEADER_S * 0.8)  # 2.4 x the header timeout in all, each gap under the keep-alive one
    wait_idle(node)


def test_a_long_poll_is_held_past_every_timeout(node, sid):
    node.create(sid)
    wait_ms = int((HEADER_S + BODY_S + KEEPALIVE_S) * 1000)
    result = {}

    def poll():
        result["response"] = requests.get(f"{node.base}/v1/sessions/{sid}/events?cursor=0&wait_ms={wait_ms}",
                                          headers={"Connection": "close"}, timeout=wait_ms / 1000 + 10)

    poller = threading.Thread(target=poll)
    started = time.monotonic()
    poller.start()
    node.wait_until(lambda: connection_gauges(node)["long_poll"] == 1, 5, "the long-poll held")
    poller.join(wait_ms / 1000 + 15)
    assert not poller.is_alive()
    assert result["response"].status_code == 200 and result["response"].json()["events"] == []
    assert time.monotonic() - started >= wait_ms / 1000 * 0.95
    wait_idle(node)


class _Slowloris:
    """Connections that each sent a request line and then trickle one header line at a time."""

    def __init__(self, node, count):
        self.open = [_connect(node) for _ in range(count)]
        self.answers = {}  # socket -> bytes the node sent before it closed it
        for sock in self.open:
            sock.sendall(b"POST /v1/sessions/sl/append HTTP/1.1\r\nHost: x\r\n")
            sock.setblocking(False)
        self.started = time.monotonic()

    def trickle_until_closed(self, limit_s, every_s=0.2):
        deadline = self.started + limit_s
        line = 0
        while self.open and time.monotonic() < deadline:
            line += 1
            for sock in list(self.open):
                self._read(sock)
                if sock in self.open:
                    try:
                        sock.send(b"X-Slow-%d: 1\r\n" % line)
                    except OSError:
                        pass  # closed by the node: the next read sees it
            time.sleep(every_s)
        for sock in list(self.open):
            self._read(sock)
        return time.monotonic() - self.started

    def _read(self, sock):
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                self.answers[sock] = self.answers.get(sock, b"") + chunk
        except BlockingIOError:
            return
        except OSError:
            pass
        self.open.remove(sock)
        sock.close()

    def close(self):
        for sock in self.open:
            sock.close()


def test_slowloris_connections_are_closed_and_a_normal_client_is_served(node, sid):
    """The RSS baseline is taken after one burst of slow connections: the first burst leaves glibc's
    heap ~6.6 MiB larger (freed chunks between live ones, so not trimmed; measured with smaps), and
    the next bursts reuse them (bursts 2 to 4 measured flat within 1 MiB). What must not happen is
    the worker keeping what slow connections held, burst after burst."""
    node.create(sid)
    worker = child_pids(node.proc.pid)[0]
    warm_up = _Slowloris(node, SLOW_CONNECTIONS)
    warm_up.trickle_until_closed(HEADER_S + MARGIN_S + 3)
    warm_up.close()
    wait_idle(node)
    rss_before = rss_bytes(worker)
    header_timeouts = timeouts(node)["header"]
    served, failures, stop = [], [], threading.Event()

    def normal_client():
        seq = 0
        with requests.Session() as session:
            while not stop.is_set():
                seq += 1
                body = {"type": "message", "payload": {"n": seq}, "producer_id": "normal", "producer_seq": seq}
                response = session.post(f"{node.base}/v1/sessions/{sid}/append", json=body, timeout=10)
                (served if response.status_code == 201 else failures).append(response.status_code)
                time.sleep(0.02)

    client = threading.Thread(target=normal_client)
    client.start()
    slow = _Slowloris(node, SLOW_CONNECTIONS)
    try:
        node.wait_until(lambda: connection_gauges(node)["request"] >= SLOW_CONNECTIONS, 10, "slow connections held")
        seconds = slow.trickle_until_closed(HEADER_S + MARGIN_S + 3)
        assert not slow.open, f"{len(slow.open)} slow connections still open after {seconds:.1f} s"
        assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in slow.answers.values())
        assert len(slow.answers) == SLOW_CONNECTIONS
        assert timeouts(node)["header"] == header_timeouts + SLOW_CONNECTIONS
    finally:
        slow.close()
        stop.set()
        client.join(15)
    assert not failures and len(served) >= 10  # served throughout
    wait_idle(node)
    assert rss_bytes(worker) - rss_before <= 5 * MiB


def test_past_the_connection_cap_a_connection_gets_503_and_is_counted(make_server):
    cap = 4
    server = make_server({**SHORT_TIMEOUTS, "STARCITE_HTTP_HEADER_TIMEOUT_MS": "30000",
                          "STARCITE_MAX_CONNECTIONS": str(cap)})
    text = metrics_text(server)
    assert metric_value(text, "starcite_http_connection_cap") == cap
    assert metric_value(text, "starcite_http_connections_refused_total") == 0
    holders = [_connect(server) for _ in range(cap)]  # idle: each counts until the header timeout
    try:
        with _connect(server) as extra:
            extra.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            _seconds, data = closed_after(extra, 10)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 "), data[:200]
        assert b"Retry-After: 1" in head and b"Connection: close" in head
        assert json.loads(body)["error"] == "too_many_connections"
    finally:
        for sock in holders:
            sock.close()
    server.wait_until(lambda: _served(server), 10, "a connection served again under the cap")
    assert metric_value(metrics_text(server), "starcite_http_connections_refused_total") >= 1
    server.wait_until(lambda: connection_gauges(server) == IDLE, 10, "idle connection gauges")


def _served(server) -> bool:
    try:
        return requests.get(server.base + "/health/live", headers={"Connection": "close"},
                            timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.parametrize("env, value", [
    ("STARCITE_HTTP_HEADER_TIMEOUT_MS", "5"), ("STARCITE_HTTP_BODY_TIMEOUT_MS", "0"),
    ("STARCITE_HTTP_KEEPALIVE_TIMEOUT_MS", "3600001"), ("STARCITE_TAIL_WS_PING_MS", "-1"),
    ("STARCITE_MAX_CONNECTIONS", "0")])
def test_each_setting_is_refused_with_one_line_when_out_of_range(env, value):
    with pytest.raises(ConfigError) as info:
        load_config(None, {env: value})
    assert str(info.value).startswith(env + " (") and "\n" not in str(info.value)


def test_the_default_cap_leaves_the_node_a_share_of_its_file_descriptors():
    assert default_max_connections(1024) == 768
    assert default_max_connections(20000) == 16000
    assert default_max_connections(-1) == default_max_connections(2**62) > 0  # RLIM_INFINITY, or huge
    limits = ConnectionLimits.from_config(load_config(None, {}))
    assert limits.max_connections == default_max_connections(limits.nofile_soft)
    assert "RLIMIT_NOFILE" in limits.describe()
    limits = ConnectionLimits.from_config(load_config(None, {"STARCITE_MAX_CONNECTIONS": "7"}))
    assert limits.max_connections == 7 and "STARCITE_MAX_CONNECTIONS" in limits.describe()
