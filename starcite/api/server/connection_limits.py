"""How long a client may take, and how many connections a node holds: the limits and the handler that keeps them.

Owns: `ConnectionLimits` (the header, body and keep-alive timeouts and the
connection cap, from the config; the cap's default is a share of
``RLIMIT_NOFILE``), and `TimedHandler`, the part of the worker's pywsgi
handler that enforces them on a connection and keeps its kind in the node's
`starcite.telemetry.connections.ConnectionCounts`:

- the request head (request line and headers) must arrive within
  ``header_s`` of the accept (the gate's deadline) or, on a keep-alive
  connection, of the next request's first byte: past it, 408 if the request
  line was read, then close (a `gevent.Timeout` armed around the read, so a
  client trickling one header line at a time is cut too);
- an idle keep-alive connection is closed after ``keepalive_s`` with no byte
  of a next request;
- while the body is read (and the response written), any pause longer than
  ``body_s`` ends the request: 408 ``request_timeout`` if the app was reading
  the body, then close (the socket's own timeout, per read or write).

Once a request's head is read nothing here cuts it: a long-poll waits its
``wait_ms``, and a tail's connection leaves the handler at its upgrade (its
pings and stall timeout are `starcite.api.tails.keeper`'s).

Must not: read or write anything but the request head and what pywsgi
reads; decide what a request means.
"""

import dataclasses
import resource
import socket
import time

import gevent
from gevent import pywsgi

from starcite.api.server.early_responses import early_response
from starcite.core.errors import StarciteError

MAX_DEFAULT_CONNECTIONS = 1_000_000


def default_max_connections(nofile_soft: int) -> int:
    """A safe share of the process's file descriptors: a fifth of them (at least 256) stays for the
    node's own files (Raft journals, archive, peer links, logs)."""
    if nofile_soft < 0 or nofile_soft > MAX_DEFAULT_CONNECTIONS * 2:
        return MAX_DEFAULT_CONNECTIONS
    return max(16, nofile_soft - max(256, nofile_soft // 5))


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    header_s: float = 10.0
    body_s: float = 30.0
    keepalive_s: float = 75.0
    max_connections: int = MAX_DEFAULT_CONNECTIONS
    nofile_soft: int = -1  # RLIMIT_NOFILE's soft limit the default cap came from (-1: the cap was set)

    @classmethod
    def from_config(cls, config) -> "ConnectionLimits":
        timeouts = (config.http_header_timeout_ms / 1000.0, config.http_body_timeout_ms / 1000.0,
                    config.http_keepalive_timeout_ms / 1000.0)
        if config.max_connections is not None:
            return cls(*timeouts, config.max_connections)
        nofile_soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return cls(*timeouts, default_max_connections(nofile_soft), nofile_soft)

    def describe(self) -> str:
        source = "STARCITE_MAX_CONNECTIONS" if self.nofile_soft < 0 else f"RLIMIT_NOFILE soft limit {self.nofile_soft}"
        return (f"connection cap {self.max_connections} ({source}); timeouts: header {self.header_s:g} s, "
                f"body {self.body_s:g} s, keep-alive {self.keepalive_s:g} s")


class _HeadTimeout(gevent.Timeout):
    """The request head's deadline passed (only this handler's own timer is caught)."""


class BodyInput(pywsgi.Input):
    """pywsgi's request body reader; a pause past the body timeout is a 408 for the app to answer."""

    __slots__ = ("timed_out",)

    def read(self, length=None):
        try:
            return super().read(length)
        except socket.timeout:
            raise self._timeout() from None

    def readline(self, size=None):
        try:
            return super().readline(size)
        except socket.timeout:
            raise self._timeout() from None

    def _timeout(self):
        self.timed_out["body"] += 1
        return StarciteError(408, "request_timeout", "The request body stalled longer than "
                             "STARCITE_HTTP_BODY_TIMEOUT_MS", {"Connection": "close"})


class TimedHandler:
    """Mixed into the worker's pywsgi handler, before it; ``server.limits`` and ``server.connections``
    are the worker's `ConnectionLimits` and the node's `ConnectionCounts`."""

    kind = None               # what this connection counts as right now (None: not counted here)
    head_deadline = None      # monotonic time the first request's head must be in by (the gate's)
    head_timer = None
    requests_read = 0

    def handle(self):
        self.kind = "request"  # the gate counted it so at accept
        try:
            super().handle()
        finally:
            self.count_as(None)

    def count_as(self, kind):
        """This connection is now of ``kind`` (None: it closed or left the handler, e.g. a tail)."""
        self.server.connections.moved(self.kind, kind)
        self.kind = kind

    def handle_one_request(self):
        limits = self.server.limits
        self.requestline = self.environ = None
        self.socket.settimeout(None)  # the body's per-read timeout is over; the head has a total deadline
        if self.requests_read:
            if not self._next_request_starts(limits.keepalive_s):
                return None
            self.head_deadline = time.monotonic() + limits.header_s
        elif self.head_deadline is None:
            self.head_deadline = time.monotonic() + limits.header_s
        self.head_timer = _HeadTimeout(max(0.001, self.head_deadline - time.monotonic()))
        self.head_timer.start()
        try:
            return super().handle_one_request()
        except _HeadTimeout as exc:
            if exc is not self.head_timer:
                raise
            self.close_connection = True
            self.server.connections.timed_out["header"] += 1
            return ("408", early_response(408)) if self.requestline else None
        finally:
            self.head_timer.close()
            self.head_timer = None  # a raised Timeout holds its traceback, whose frames hold this handler

    def read_request(self, raw_requestline):
        """pywsgi's parse of the head; once it is in, the head's timer stops and the body's starts."""
        result = super().read_request(raw_requestline)
        self.head_timer.cancel()
        self.requests_read += 1
        self.socket.settimeout(self.server.limits.body_s)
        return result

    def _next_request_starts(self, keepalive_s) -> bool:
        """Keep-alive: True once the next request's first byte is here (or the client closed: pywsgi
        then reads nothing and ends), False after ``keepalive_s`` with nothing."""
        self.count_as("keepalive_idle")
        try:
            with gevent.Timeout(keepalive_s, False):
                self.rfile.peek(1)  # one read at most, and only if nothing is buffered
                return True
            self.server.connections.timed_out["keepalive"] += 1
            return False
        except (OSError, ValueError):  # reset by the peer, or the reader already closed
            return False
        finally:
            self.count_as("request")

    def get_environ(self):
        env = super().get_environ()
        body = self.wsgi_input
        if env.get("wsgi.input") is body:
            self.wsgi_input = env["wsgi.input"] = BodyInput(body.rfile, body.content_length, body.socket,
                                                            body.chunked_input)
            self.wsgi_input.timed_out = self.server.connections.timed_out
        return env
