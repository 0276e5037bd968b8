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

Must not: read from or write to a connection (the handler does), drop an
accepted connection other than at close (`close` closes the ones still
waiting), or block the hub.
"""

import collections

from gunicorn.workers.ggevent import PyWSGIServer

STARTS_IN_FLIGHT = 8  # connection greenlets spawned and not yet started, at most


class GatedWSGIServer(PyWSGIServer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.idle = {}                       # accepted, no byte yet: socket -> (io watcher, args)
        self.waiting = collections.deque()   # have bytes, not started yet: (socket, address)
        self.starting = 0                    # spawned greenlets that have not run yet
        self.gate_closed = False

    def do_handle(self, *args):
        """Hub context (the accept loop): wait, without a greenlet, for the connection's first bytes."""
        sock = args[0]
        watcher = self.loop.io(sock.fileno(), 1)
        self.idle[sock] = (watcher, args)
        watcher.start(self._readable, sock)

    def _readable(self, sock):
        """Hub context: the client has written something; queue it for a greenlet."""
        watcher, args = self.idle.pop(sock)
        watcher.stop()
        watcher.close()
        self.waiting.append(args)
        self._admit()

    def _admit(self):
        waiting = self.waiting
        while waiting and self.starting < STARTS_IN_FLIGHT and not self.gate_closed and not self.full():
            args = waiting.popleft()
            self.starting += 1
            try:
                self._spawn(self._run, args)
            except BaseException:
                self.starting -= 1
                self.do_close(*args)
                raise

    def _run(self, args):
        self.starting -= 1
        self._admit()
        try:
            return self._handle(*args)
        finally:
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
            for watcher, args in self.idle.values():
                watcher.stop()
                watcher.close()
                self.do_close(*args)
            self.idle.clear()
            while self.waiting:
                self.do_close(*self.waiting.popleft())
