"""The API listener's accept path: accept at once, start a connection's greenlet once it has a request.

Owns: `GatedWSGIServer`, the worker's WSGI server. It accepts every connection
the kernel has (so a reconnect storm never overflows the listen backlog, whose
dropped SYNs a client retries only after 1, 3, 7 s). A new connection first
waits, with no greenlet, on an io watcher until its first bytes arrive; then it
joins a FIFO, and at most `STARTS_IN_FLIGHT` connection greenlets are spawned
and not yet running at any time: each greenlet, as it starts, admits the next.

Why: gevent runs a spawned greenlet from the hub's callback queue, FIFO, the
same queue every wake-up goes through (an `Event.set`, the `AsyncResult` of a
thread-pool fsync, a Raft group's tick), and it runs every ready io watcher of
a loop iteration before any callback or timer. gevent's own accept loop spawns
up to 100 greenlets per readiness event, and a greenlet that starts before its
client has written the request blocks on the read; after a node restart 10,000
tails reconnect at once, their requests arrive in bursts, and each of their
greenlets then runs its whole upgrade and replay (~1 ms) in one go. Measured
during a storm before this: loop iterations of 1.5–3.8 s (thousands of ready
sockets, thousands of queued callbacks), a Raft journal sync whose thread
finished in 1 ms but whose result reached the tick 2.8 s later, appends timing
out, and tails with nothing new to catch up to. Here a wake-up waits behind at
most `STARTS_IN_FLIGHT` connection starts, and a loop iteration's ready
watchers of not-yet-started connections cost a deque append each.

The gate also keeps the connection limits a connection meets before it has a
greenlet (`starcite.api.server.connection_limits.ConnectionLimits`): a
connection that sends nothing within the header timeout is closed (a sweep
of the idle connections in accept order, every `SWEEP_FRACTION` of the timeout, no
timer per connection), and past the connection cap a new connection is
answered 503 with ``Retry-After`` at once, its request drained for at most
`REFUSED_LINGER_S`, then closed (closing with its request unread would
reset the connection and lose the 503). It counts the connections it holds
as ``request`` in the node's `ConnectionCounts`; a connection's handler
takes its count over when it starts, with the head deadline its first
request must meet.

Must not: read a request or write a response (the handler does; the one
exception is the fixed 503 of a refused connection), drop an accepted
connection other than at its timeout or at close (`close` closes the ones
still waiting), or block the hub.
"""

import collections
import socket
import time

from gunicorn.workers.ggevent import PyWSGIServer

from starcite.api.server.connection_limits import ConnectionLimits
from starcite.api.server.early_responses import early_response
from starcite.telemetry.connections import ConnectionCounts

STARTS_IN_FLIGHT = 8  # connection greenlets spawned and not yet started, at most
SWEEP_FRACTION = 0.05  # the deadline sweep runs every this much of the header timeout (at most each second)
REFUSED_LINGER_S = 1.0  # a refused connection's request is drained this long at most
_REFUSAL = early_response(503)


class GatedWSGIServer(PyWSGIServer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.idle = {}                       # accepted, no byte yet: socket -> (io watcher, args)
        self.waiting = collections.deque()   # have bytes, not started yet: (socket, address)
        self.starting = 0                    # spawned greenlets that have not run yet
        self.gate_closed = False
        self.limits = ConnectionLimits()          # the worker sets its own, and the node's counts
        self.connections = ConnectionCounts()
        self.refused = {}                          # refused, draining: socket -> io watcher
        self.refused_deadlines = collections.deque()
        self.sweeper = None

    def do_handle(self, *args):
        """Hub context (the accept loop): wait, without a greenlet, for the connection's first bytes."""
        sock = args[0]
        if self.connections.node_total() >= self.limits.max_connections:
            return self._refuse(sock)
        self.connections.moved(None, "request")
        deadline = time.monotonic() + self.limits.header_s
        watcher = self.loop.io(sock.fileno(), 1)
        self.idle[sock] = (watcher, args, deadline)  # in accept order, so in deadline order
        watcher.start(self._readable, sock)
        self._sweep_started()

    def _readable(self, sock):
        """Hub context: the client has written something; queue it for a greenlet."""
        watcher, args, deadline = self.idle.pop(sock)
        _stop(watcher)
        self.waiting.append((args, deadline))
        self._admit()

    def _refuse(self, sock):
        """Hub context: past the cap. The 503 goes out now; the request is drained, then the socket closes."""
        self.connections.refused += 1
        try:
            sock._sock.send(_REFUSAL)
            sock._sock.shutdown(socket.SHUT_WR)
        except OSError:
            return sock.close()
        watcher = self.loop.io(sock.fileno(), 1)
        self.refused[sock] = watcher
        self.refused_deadlines.append((time.monotonic() + REFUSED_LINGER_S, sock))
        watcher.start(self._drain, sock)
        self._sweep_started()

    def _drain(self, sock):
        try:
            if sock._sock.recv(65536):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self._drop_refused(sock)  # the client closed (or reset): so do we

    def _drop_refused(self, sock):
        watcher = self.refused.pop(sock, None)
        if watcher is not None:
            _stop(watcher)
            sock.close()

    def _sweep_started(self):
        if self.sweeper is None:
            period = min(1.0, max(0.01, self.limits.header_s * SWEEP_FRACTION))
            self.sweeper = self.loop.timer(period, period, ref=False)
            self.sweeper.start(self._sweep)

    def _sweep(self):
        """Hub context: close the connections that sent nothing by their deadline, and the refused
        ones whose linger is over."""
        now = time.monotonic()
        idle = self.idle
        while idle:
            sock, (watcher, args, deadline) = next(iter(idle.items()))
            if deadline > now:
                break
            del idle[sock]
            _stop(watcher)
            self.connections.timed_out["header"] += 1
            self._close_uncounted(args)
        deadlines = self.refused_deadlines
        while deadlines and deadlines[0][0] <= now:
            self._drop_refused(deadlines.popleft()[1])

    def _admit(self):
        waiting = self.waiting
        while waiting and self.starting < STARTS_IN_FLIGHT and not self.gate_closed and not self.full():
            item = waiting.popleft()
            self.starting += 1
            try:
                self._spawn(self._run, item)
            except BaseException:
                self.starting -= 1
                self._close_uncounted(item[0])
                raise

    def _run(self, item):
        self.starting -= 1
        self._admit()
        (sock, address), deadline = item
        try:
            handler = self.handler_class(sock, address, self)
            handler.head_deadline = deadline  # its first request's head is due by the gate's deadline
            return handler.handle()  # from here the handler keeps the connection's count
        finally:
            self.do_close(sock, address)

    def _close_uncounted(self, args):
        """A connection the gate holds (no handler yet) closes."""
        self.connections.moved("request", None)
        self.do_close(*args)

    def start_accepting(self):
        super().start_accepting()  # also what the pool calls once a full pool has a free slot again
        self._admit()

    def close(self):
        """Stop accepting; connections accepted but never started are closed (their clients retry)."""
        self.gate_closed = True
        try:
            super().close()
        finally:
            for watcher, args, _deadline in self.idle.values():
                _stop(watcher)
                self._close_uncounted(args)
            self.idle.clear()
            while self.waiting:
                self._close_uncounted(self.waiting.popleft()[0])
            for sock in list(self.refused):
                self._drop_refused(sock)
            self.refused_deadlines.clear()
            if self.sweeper is not None:
                _stop(self.sweeper)


def _stop(watcher):
    watcher.stop()
    watcher.close()
