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
import re
import sys

import gevent
from gevent import pywsgi
from geventwebsocket.handler import WebSocketHandler
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

_TOKEN_RE = re.compile(r"(access_token=)[^&\s\"]*", re.IGNORECASE)


def redact(text):
    return _TOKEN_RE.sub(r"\1[REDACTED]", text) if text and "access_token" in text.lower() else text


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "q", "{raw_uri}e"):
            if key in atoms and isinstance(atoms[key], str):
                atoms[key] = redact(atoms[key])
        return atoms


class StarciteHandler(WebSocketHandler, PyWSGIHandler):
    """Plain WSGI for every request; the tail resource calls ``environ['starcite.upgrade']``."""

    log_request = PyWSGIHandler.log_request  # gunicorn's access log, not geventwebsocket's

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
    wsgi_handler = StarciteHandler

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        gevent.spawn(self._close_tails)

    def _close_tails(self):
        node = getattr(self.app, "node", None)
        if node is not None:
            node.begin_shutdown()

    def run(self):
        try:
            super().run()
        finally:
            node = getattr(self.app, "node", None)
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
