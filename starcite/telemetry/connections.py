"""The API's open connections by kind, and the ones refused at the connection cap.

Owns: `ConnectionCounts`, one per node: what the worker's accept gate and
request handler (``request``, ``keepalive_idle``) and the tail streams
(``websocket_tail``, ``sse_tail``) and the Phoenix sockets (``phoenix_socket``, one
connection whatever its channels) hold open right now, kept as they move from
one kind to another so that the gate reads the total in O(1) at every accept,
and the count of connections refused past the cap, and of the ones a timeout
ended, by timeout (`TIMEOUT_KINDS`). ``long_poll`` is not
counted here: a held long-poll is a request whose handler waits, and the
scrape splits it out of ``request`` with the node's count of waiters.

With several workers the cap is the node's: each worker publishes its total
in its own slot of an array the master shares with every worker
(`share`), and the gate compares the sum (`node_total`) with the cap.

Must not: open, close or time out connections (the server does), or know
their sockets.
"""

CONNECTION_KINDS = ("request", "keepalive_idle", "websocket_tail", "sse_tail", "phoenix_socket", "long_poll")
# header: no complete request head in time; body: a request body paused too long; keepalive: idle
# between requests; tail_ping: a WebSocket peer answered nothing; tail_stall: a tail's write made no progress
TIMEOUT_KINDS = ("header", "body", "keepalive", "tail_ping", "tail_stall")


class ConnectionCounts:
    def __init__(self):
        self.by_kind = dict.fromkeys(CONNECTION_KINDS, 0)
        self.total = 0
        self.refused = 0
        self.timed_out = dict.fromkeys(TIMEOUT_KINDS, 0)
        self.cap = 0  # the node's connection cap, once the worker has started (0: not serving)
        self.slots = None  # with several workers: every worker's total, shared across the processes
        self.slot = 0

    def share(self, slots, slot: int):
        """Publish this worker's total in ``slots[slot]`` (shared memory; a restarted worker starts at 0)."""
        self.slots, self.slot = slots, slot
        slots[slot] = self.total

    def node_total(self) -> int:
        """Connections open on the whole node (this worker's alone when it has no siblings)."""
        return self.total if self.slots is None else sum(self.slots)

    def moved(self, old, new):
        """A connection changed kind; ``old`` None: it opened, ``new`` None: it closed."""
        if old is not None:
            self.by_kind[old] -= 1
            self.total -= 1
        if new is not None:
            self.by_kind[new] += 1
            self.total += 1
        if self.slots is not None:
            self.slots[self.slot] = self.total

    def gauges(self, long_polls: int) -> dict:
        """Open connections by kind for the metrics; ``long_polls``: held long-poll requests."""
        long_polls = min(long_polls, self.by_kind["request"])
        return {**self.by_kind, "request": self.by_kind["request"] - long_polls, "long_poll": long_polls}
