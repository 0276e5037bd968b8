"""Serving: gunicorn with one gevent WebSocket worker that owns the node.

Owns: `StarciteApplication` (gunicorn app that builds the `Node` and the
Falcon app inside the worker, after gevent has patched it), `StarciteWorker`
(graceful SIGTERM: stop accepting, close tails with a normal close, let
in-flight appends finish, flush the archive, sync the Raft journals),
`StarciteHandler` (upgrades a tail only after the Falcon resource has
validated it, so errors are plain HTTP before the upgrade) and
`RedactingLogger` (access log lines never carry an ``access_token``).

Must not: contain request logic. One worker per node by design: the data
plane (Raft groups, hot store, actors) lives in that worker's process.
"""

import logging
import sys
import time

import gevent
from gevent import pywsgi
from geventwebsocket.handler import WebSocketHandler
from gevent.pool import Pool
from gunicorn import SERVER_SOFTWARE as GUNICORN_VERSION
from gunicorn.app.base import BaseApplication
from gunicorn.http.wsgi import base_environ
from gunicorn.glogging import Logger
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

from starcite.api.http_headers import read_headers

from starcite.api.auth import redact


class RedactingLogger(Logger):
    """gunicorn's logger, with tokens kept out of every line.

    Access log: every string atom (request line, path, query, referer,
    headers, environ) has its `access_token` values replaced, and the
    Authorization header atoms are masked, whatever `access_log_format` asks
    for. Error log: a filter redacts each message the same way.
    """

    def setup(self, cfg):
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                if not any(isinstance(f, _RedactFilter) for f in handler.filters):
                    handler.addFilter(_RedactFilter())

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():
            if "authorization" in key:
                atoms[key] = "[REDACTED]"
            elif isinstance(value, str):
                atoms[key] = redact(value)
        return atoms


class _RedactFilter(logging.Filter):
    def filter(self, record):
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class StarciteHandler(WebSocketHandler, PyWSGIHandler):
    """Plain WSGI for every request; the tail resource calls ``environ['starcite.upgrade']``."""

    log_request = PyWSGIHandler.log_request  # gunicorn's access log, not geventwebsocket's

    def MessageClass(self, fp, *args):  # noqa: N802 (pywsgi's name)
        return read_headers(fp)

    def run_application(self):
        self.environ["starcite.upgrade"] = self._upgrade
        pywsgi.WSGIHandler.run_application(self)

    def _upgrade(self):
        self.upgrade_websocket()
        if self.status and not self.headers_sent:
            self.write(b"")
        return self.websocket

    def _upgraded(self):
        return self.environ.get("wsgi.websocket") is not None or getattr(self, "websocket", None) is not None

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

    def handle_quit(self, sig, frame):
        # gunicorn makes SIGINT/SIGQUIT (Ctrl-C) a quick exit that would skip the
        # shutdown below; a node always stops gracefully (the master still SIGKILLs
        # after graceful_timeout_seconds).
        self.alive = False

    def _node(self):
        return getattr(self.app, "node", None)

    def run(self):
        servers = []
        for sock in self.sockets:
            sock.setblocking(1)
            environ = base_environ(self.cfg)
            environ.update({"wsgi.multithread": True, "SERVER_SOFTWARE": GUNICORN_VERSION})
            server = self.server_class(sock, application=self.wsgi, spawn=Pool(self.worker_connections),
                                       log=self.log, handler_class=self.wsgi_handler, environ=environ)
            server.start()
            servers.append(server)
        while self.alive:
            self.notify()
            gevent.sleep(0.1)
        node = self._node()
        for server in servers:
            server.close()  # stop accepting
        if node is not None:
            node.begin_shutdown()  # not ready; tails get a normal close
            deadline = time.monotonic() + self.cfg.graceful_timeout
            while (node.inflight or node.tails) and time.monotonic() < deadline:
                self.notify()
                gevent.sleep(0.02)
        for server in servers:
            server.stop(timeout=0.5)  # idle keep-alive connections
        if node is not None:
            node.shutdown()


class StarciteApplication(BaseApplication):
    def __init__(self, config):
        self.config = config
        self.node = None
        super().__init__()

    def load_config(self):
        c = self.config
        settings = {
            "bind": f"{c.host}:{c.port}",
            "workers": 1,
            "worker_class": "starcite.api.server.StarciteWorker",
            "worker_connections": 100000,
            # After a restart every tail's client reconnects at once: a connection beyond the
            # listen backlog has its SYN dropped and retried by the client's kernel after 1, 3,
            # 7, 15 s. The kernel caps this at net.core.somaxconn.
            "backlog": 16384,
            "graceful_timeout": max(1, int(round(c.graceful_timeout))),
            "timeout": 60,
            "keepalive": 75,
            "logger_class": "starcite.api.server.RedactingLogger",
            "accesslog": "-" if c.access_log else None,
            "errorlog": "-",
            "loglevel": c.log_level.lower(),
            "proc_name": f"starcite[{c.node_name}]",
            "limit_request_line": 8190,
            "control_socket_disable": True,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self):
        from starcite.api.app import create_app
        from starcite.node import Node
        logging.basicConfig(level=self.config.log_level.upper(), stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.node = Node(self.config)
        return create_app(self.node, self.config)
