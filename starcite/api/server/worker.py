"""Serving: gunicorn with one gevent WebSocket worker that owns the node.

Owns: `StarciteApplication` (gunicorn app that builds the `Node` and the
Falcon app inside the worker, after gevent has patched it), `StarciteWorker`
(serves the API through `starcite.api.server.accept_gate.GatedWSGIServer`, with
the config's `ConnectionLimits` and the node's `ConnectionCounts`, and logs
the connection cap at start; freezes
the booted node's objects out of the cyclic collector; graceful SIGTERM: stop
accepting, close tails with a normal close, let in-flight appends finish,
flush the archive, sync the Raft journals),
`StarciteHandler` (the header, body and keep-alive timeouts of
`starcite.api.server.connection_limits.TimedHandler`; upgrades a tail only after the Falcon resource has
validated it, so errors are plain HTTP before the upgrade, and hands an SSE
tail its connection once the resource has sent its head; answers the
requests pywsgi refuses before the app, such as a request line over 8 KiB
(414) or oversized headers (431), in the API's JSON error shape). The
logger is `starcite.api.server.access_log.RedactingLogger`; the worker flushes its
access lines every 0.1 s and at the end.

Workers (`STARCITE_WORKERS`): the master gives each worker it forks the
lowest free index (a SIGKILLed worker's replacement takes the index, and so
the groups and journals, of the one it replaces) and a sibling secret chosen
at start; each worker builds its `Node` as a member of a cluster of the
node's workers (`starcite.config.worker_members`). Worker 0 serves the ops
console.

Must not: contain request logic.
"""

import gc
import http
import logging
import multiprocessing
import secrets
import sys
import time

import gevent
import gevent.socket
from gevent import pywsgi
from geventwebsocket.handler import WebSocketHandler
from gevent.pool import Pool
from gunicorn import SERVER_SOFTWARE as GUNICORN_VERSION
from gunicorn.app.base import BaseApplication
from gunicorn.http.wsgi import base_environ
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

from starcite.telemetry import logs
from starcite.api.server.accept_gate import GatedWSGIServer
from starcite.api.http.errors import error_body
from starcite.api.server.connection_limits import ConnectionLimits, TimedHandler
from starcite.api.server.early_responses import EARLY_ERRORS, early_response
from starcite.api.server.http_headers import HEADERS_TOO_LARGE, read_headers
from starcite.cluster.ops_channel import close_ops, serve_ops
from starcite.config.worker_members import member_config, worker_count


SWITCH_INTERVAL_S = 0.0005

class StarciteHandler(TimedHandler, WebSocketHandler, PyWSGIHandler):
    """Plain WSGI for every request; the tail resource calls ``environ['starcite.upgrade']`` (a
    WebSocket and the bytes of its 101, which the tail sends) or ``environ['starcite.stream']``
    (an SSE head, then the connection is its own)."""

    streamed = False

    def log_request(self):  # gunicorn's access log, not geventwebsocket's
        if self.environ is not None:  # None: refused before the app; pywsgi logged why
            PyWSGIHandler.log_request(self)

    def MessageClass(self, fp, *args):  # noqa: N802 (pywsgi's name)
        return read_headers(fp)

    def handle_one_request(self):
        result = super().handle_one_request()
        if isinstance(result, tuple) and result[0] in ("400", "414"):  # pywsgi's refusals: answer in JSON
            status = 414 if result[0] == "414" else 431 if self._headers_too_large() else 400
            return str(status), early_response(status)
        return result

    def _headers_too_large(self) -> bool:
        return getattr(getattr(self, "headers", None), "status", "") in HEADERS_TOO_LARGE

    def _send_error_response_if_possible(self, error_code):  # pywsgi's own 400 (bad chunking) and 500
        if self.response_length:
            self.close_connection = True
            return
        code, message = EARLY_ERRORS[error_code]
        body = error_body(code, message).encode()
        try:
            self.start_response(f"{error_code} {http.HTTPStatus(error_code).phrase}",
                                [("Content-Type", "application/json"), ("Connection", "close"),
                                 ("Content-Length", str(len(body)))])
            self.write(body)
        except OSError:
            self.close_connection = True

    def run_application(self):
        environ = self.environ
        environ["starcite.upgrade"] = self._upgrade
        environ["starcite.stream"] = self._stream
        try:
            pywsgi.WSGIHandler.run_application(self)
        finally:
            self._unlink(environ)

    def _unlink(self, environ):
        """Break the rings a request leaves (the environ holds this handler's hooks, an upgrade's
        WebSocket holds the handler, its environ and its stream, and the handler holds them), so
        reference counting frees a finished request at once. Left to the cyclic collector they
        were ~20 objects per tail open, and most of what its collections walked in a reconnect
        storm. The tail itself has the fd by now (`WebSocketConn.detach`)."""
        environ.pop("starcite.upgrade", None)
        environ.pop("starcite.stream", None)
        websocket = environ.pop("wsgi.websocket", None) or self.__dict__.get("websocket")
        if websocket is not None:
            websocket.handler = websocket.environ = websocket.stream = None
            websocket.raw_read = websocket.raw_write = None
            self.websocket = None

    held_head = None  # while `_upgrade` runs: the 101's bytes, kept for the tail to send

    def _upgrade(self):
        """geventwebsocket's handshake; ``(websocket, head)``: the 101 is not written here but
        returned, and the tail sends it in front of its first frames (one write per open)."""
        self.upgrade_websocket()
        self.count_as(None)  # the connection is the tail's from here (it counts itself)
        if not self.status or self.headers_sent:
            return self.websocket, b""
        self.held_head = bytearray()
        try:
            self.write(b"")
            return self.websocket, bytes(self.held_head)
        finally:
            self.held_head = None

    def _sendall(self, data):
        if self.held_head is None:
            # One send first: a response fits the socket buffer, and gevent's sendall costs a
            # getsockopt(SO_SNDBUF) syscall and a chunk loop per call (~1% of the worker per append).
            # What it did not take, or an error, goes through pywsgi's sendall as before (which
            # meets the error again and records it on the access line).
            try:
                sent = self.socket.send(data)
            except OSError:
                sent = 0
            self.response_length += sent
            if sent == len(data):
                return None
            return super()._sendall(memoryview(data)[sent:])
        self.held_head += data
        self.response_length += len(data)  # for the access line, as pywsgi counts it

    def _stream(self, head: bytes):
        """Write ``head`` (status line, headers, the first body bytes) and hand over the connection:
        a gevent socket on its fd, detached from this handler, which then writes and closes nothing."""
        self.socket.sendall(head)
        self.count_as(None)  # the connection is the tail's from here (it counts itself)
        self.status, self.code, self.response_length = "200 OK", 200, 0  # for the access line
        self.response_headers = []
        self.headers_sent = self.streamed = self.close_connection = True
        return gevent.socket.socket(fileno=self.socket.detach())

    def _upgraded(self):
        return (self.streamed or self.environ.get("wsgi.websocket") is not None
                or getattr(self, "websocket", None) is not None)

    def start_response(self, status, headers, exc_info=None):
        if self.headers_sent and self._upgraded():
            return lambda data: None  # the tail already answered with 101
        return super().start_response(status, headers, exc_info)

    def process_result(self):
        if self._upgraded() and self.headers_sent:
            self.close_connection = True
            return
        super().process_result()


class StarciteWorker(GeventPyWSGIWorker):
    """gunicorn's gevent worker with a shutdown that waits for requests, not idle connections."""

    wsgi_handler = StarciteHandler
    server_class = GatedWSGIServer  # starts connections a few at a time (a reconnect storm)

    def handle_quit(self, sig, frame):
        # gunicorn makes SIGINT/SIGQUIT (Ctrl-C) a quick exit that would skip the
        # shutdown below; a node always stops gracefully (the master still SIGKILLs
        # after graceful_timeout_seconds).
        self.alive = False

    def _node(self):
        return getattr(self.app, "node", None)

    def _start_ops(self):
        """The ops console on its unix socket (never on the API port), served by worker 0."""
        app = getattr(self.app, "ops_app", None)
        if app is None or self.app.worker_index != 0:
            return None, None
        path = self.app.config.ops_socket_path
        return serve_ops(app, path), path

    def run(self):
        # Everything alive once the node has booted (modules, the replayed Raft state) stays alive:
        # out of the collector's generations, a full collection during a reconnect storm walks only
        # what was created since (measured: ~8% of the worker's time was collections, mostly full).
        gc.freeze()
        # The live fan-out thread (starcite.api.tails.live_fanout) and the thread pool's fsyncs take the
        # GIL back after their C calls; a busy worker hands it over only every switch interval
        # (5 ms by default, a few times per fan-out job). Measured, 1,000 tails at 100 appends/s:
        # ack to receipt p50 45 -> 37 ms at 0.5 ms.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        servers = []
        node = self._node()
        limits = ConnectionLimits.from_config(self.app.config)
        connections = node.connections if node is not None else None
        if connections is not None:
            connections.cap = limits.max_connections
            if self.app.workers > 1:
                connections.share(self.app.open_connections, self.app.worker_index)
        self.log.info("%s", limits.describe())
        for sock in self.sockets:
            sock.setblocking(1)
            environ = base_environ(self.cfg)
            environ.update({"wsgi.multithread": True, "SERVER_SOFTWARE": GUNICORN_VERSION})
            server = self.server_class(sock, application=self.wsgi, spawn=Pool(self.worker_connections),
                                       log=self.log, handler_class=self.wsgi_handler, environ=environ)
            server.limits = limits
            server.connections = connections or server.connections
            server.start()
            servers.append(server)
        ops_server, ops_path = self._start_ops()
        while self.alive:
            self.notify()
            self.log.flush_access()
            gevent.sleep(0.1)
        for server in servers:
            server.close()  # stop accepting
        if node is not None:
            node.begin_shutdown()  # not ready; tails get a normal close
            deadline = time.monotonic() + self.cfg.graceful_timeout
            while (node.inflight or node.tails.handles) and time.monotonic() < deadline:
                self.notify()
                gevent.sleep(0.02)
        for server in servers:
            server.stop(timeout=0.5)  # idle keep-alive connections
        close_ops(ops_server, ops_path)
        if node is not None:
            node.shutdown()
        self.log.flush_access()


def _assign_worker_index(server, worker):
    """gunicorn's ``pre_fork`` (in the master): the lowest index no live worker has."""
    taken = {getattr(w, "starcite_index", None) for w in server.WORKERS.values()}
    worker.starcite_index = next(i for i in range(len(taken) + 1) if i not in taken)


def _take_worker_index(server, worker):
    """gunicorn's ``post_fork`` (in the new worker): the app builds that worker's node."""
    server.app.worker_index = worker.starcite_index


class StarciteApplication(BaseApplication):
    def __init__(self, config):
        self.config = config
        self.node = None
        self.workers = worker_count(config)
        self.worker_index = 0
        self.sibling_secret = secrets.token_hex(32)  # authenticates the workers' sibling links
        # Each worker's open connections, in memory shared by the workers forked from here: the cap is the node's.
        self.open_connections = multiprocessing.RawArray("q", self.workers)
        super().__init__()

    def load_config(self):
        c = self.config
        logs.configure(c)  # before gunicorn builds its logger (RedactingLogger reads the format)
        settings = {
            "bind": f"{c.host}:{c.port}",
            "workers": self.workers,
            "pre_fork": _assign_worker_index,
            "post_fork": _take_worker_index,
            "worker_class": "starcite.api.server.worker.StarciteWorker",
            "worker_connections": 100000,
            # After a restart every tail's client reconnects at once: a connection beyond the
            # listen backlog has its SYN dropped and retried by the client's kernel after 1, 3,
            # 7, 15 s. The kernel caps this at net.core.somaxconn.
            "backlog": 16384,
            "graceful_timeout": max(1, int(round(c.graceful_timeout))),
            "timeout": 60,
            "keepalive": max(1, round(c.http_keepalive_timeout_ms / 1000)),  # for the record: TimedHandler keeps it
            "logger_class": "starcite.api.server.access_log.RedactingLogger",
            "accesslog": "-" if c.access_log else None,
            "errorlog": "-",
            "loglevel": c.log_level.lower(),
            "proc_name": f"starcite[{c.node_name}]",
            "limit_request_line": 8190,
            "control_socket_disable": True,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)
        if (c.workers or 1) > 1 and not c.single_node:
            logging.getLogger("starcite.serve").warning(
                "STARCITE_WORKERS=%d ignored: a cluster's node runs one worker (its workers would each need "
                "a peer port)", c.workers)

    def load(self):
        from starcite.api.app import create_app
        from starcite.node import Node
        from starcite.api.http.ops_console import create_ops_app
        logs.log_greenlet_errors(gevent.get_hub())
        self.node = Node(member_config(self.config, self.worker_index, self.workers, self.sibling_secret))
        logs.configure(self.config)  # JSON mode: take the root logger back from Thespian's ActorSystem
        self.ops_app = create_ops_app(self.node)
        return create_app(self.node, self.config)


