"""The keeper of idle tails: keep-alives, WebSocket pings, and the end of tails whose peer vanished.

Owns: `TailKeeper`, one greenlet for every open tail stream of the node (no
timer per tail). Every eighth of the shortest interval it visits each stream
(`TailStream.tend`): a stream that wrote nothing for its wire's interval
writes its keep-alive, an SSE comment every ``sse_keepalive_ms`` (proxies
close silent connections) or a WebSocket ping every ``ws_ping_ms``; a
WebSocket whose peer sent nothing back (no pong, no frame) for an interval
after a ping is closed. A vanished peer (a phone off the network, a NAT that
dropped its state) never sends a FIN, and an idle tail writes nothing that
could fail, so without this its tail, socket and registration would stay
for ever. A peer that stops reading a busy tail is the stall timeout's
(`stall_seconds`, the socket's send timeout): two intervals without
progress.

`forget` takes a finished stream or socket out of its registry.

Must not: block the hub (`tend` writes only what the kernel takes at once),
or send events.
"""

import time

import gevent

VISITS_PER_INTERVAL = 8


def stall_seconds(interval_s: float) -> float:
    """How long a tail's blocking write may make no progress before the tail ends."""
    return 2 * interval_s


class TailKeeper:
    def __init__(self, streams: set, intervals: dict):
        """streams: the open tail streams; intervals: seconds between keep-alives by
        connection kind (``{"websocket_tail": ..., "sse_tail": ...}``)."""
        self.streams = streams
        self.intervals = intervals
        self.visit_s = min(intervals.values()) / VISITS_PER_INTERVAL
        self.greenlet = None

    def started(self):
        if self.greenlet is None:
            self.greenlet = gevent.spawn(self._run)

    def _run(self):
        intervals = self.intervals
        while True:
            gevent.sleep(self.visit_s)
            now = time.monotonic()
            for stream in list(self.streams):
                stream.tend(now, intervals[stream.conn.kind])


def forget(registry, member, node):
    """A finished stream or socket leaves its ``registry`` (the keeper visits no more), and its
    connection the ``node``'s counts; once."""
    if registry is not None and member in registry:
        registry.discard(member)
        node.connections.moved(member.conn.kind, None)
