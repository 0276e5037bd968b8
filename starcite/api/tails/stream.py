"""A tail's stream: replay from the store, then live batches from its group, to one socket.

Owns: `TailStream` (one tail's pump: replay (cold + hot, gap-free) until
caught up, then go live (the group checks and registers the outbox
atomically) and send what the group puts on the outbox; re-enter replay on a
gap or when the group says so; its claim and settle of live batches for
`starcite.api.tails.live_fanout`; its end) and `Outbox`, the tail's work queue.
It sends every committed event after the cursor exactly once, in order.

Must not: decide liveness itself beyond a defensive seq check (the group's
actor does), read inbound frames for meaning (they are ignored), or know the
HTTP request it came from (`starcite.api.tails.resource` checks and starts it). The
wire formats and the sockets are `starcite.api.tails.ws_wire`'s and
`starcite.api.tails.sse_wire`'s; the pump sees only their `TailSocket` face, which a
Phoenix channel also wears (`starcite.api.tails.phoenix_channels`: many streams, one socket).
"""

import collections
import logging
import time

import gevent

from starcite.api.tails.keeper import forget
from starcite.api.tails.live_fanout import FANOUT
from starcite.api.tails.tail_socket import CLOSE_INTERNAL, CLOSE_TOKEN_EXPIRED, WriteStalled, close_watchers, received, watch
from starcite.node.tier_reads import ArchiveReadError

log = logging.getLogger("starcite.tail")

REPLAY_CHUNK = 1000


class Outbox:
    """Work for a tail: the group, the node and the stream's own hub callbacks put items here.

    Two items are settled at the put, in the hub, with no greenlet: a committed batch for an
    idle live tail is written straight to the socket, non-blocking (``deliver``), and a
    periodic ``("check", last_seq)`` is dropped when the tail has sent that much (``caught_up``).
    Anything else wakes the pump.
    """

    def __init__(self, stream, wake, deliver, caught_up):
        self.stream = stream
        self.items = collections.deque()
        self.wake = wake
        self.deliver = deliver
        self.caught_up = caught_up

    @staticmethod
    def put_all(session_id, outboxes, item):
        """The group's fan-out of a committed batch to several of these outboxes at once: one
        `LiveFanout` job (`starcite.actors.group_actor.put_all`)."""
        if item[0] == "events":
            return FANOUT.put_all(session_id, outboxes, item[1])
        for outbox in outboxes:
            outbox.put(item)

    def detach(self):
        """The tail has finished: drop every reference back to it (a put from here on is
        ignored), so that reference counting frees the tail at once, not the cyclic collector
        (the outbox stays reachable from snapshots of the group's registry for a moment)."""
        self.stream = _FINISHED
        self.put = self.wake = self.deliver = self.caught_up = _ignored
        self.items.clear()

    def put(self, item):
        if not self.items:
            kind = item[0]
            if kind == "events" and self.deliver(item[1]) or kind == "check" and self.caught_up(item[1]):
                return
        self.items.append(item)
        self.wake()


def _ignored(*_args):
    return True  # "delivered", "caught up": nothing is left to do for a finished tail


class _FinishedStream:
    """What a finished tail's outbox points at: the fan-out finds nothing to claim."""

    @staticmethod
    def claim(_entries, _job):
        return None


_FINISHED = _FinishedStream()


class TailStream:
    """One tail: replay from the store, then live items from its group, to one socket.

    No greenlet while idle: inbound bytes are read by an io watcher on the hub, the
    token expiry is a timer, keep-alives are the keeper's (`tend`), and a pump greenlet runs only while there is work
    (replaying, or items in the outbox), then exits.
    """

    def __init__(self, node, conn, session_id, cursor, batch_size, expires_at=None):
        """expires_at: epoch seconds at which the socket closes with 4001
        `token_expired` (the gate's choice, see `JwtGate.expires_at`); None
        with auth off."""
        self.node, self.conn, self.session_id = node, conn, session_id
        self.sent = cursor
        self.batch_size = batch_size
        self.wire_key = conn.wire_key(batch_size)  # for the live fan-out: who gets the same bytes
        self.fd = conn.sock.fileno()
        self.expires_at = expires_at
        self.replaying = True
        self.pump = None
        self.outbox = Outbox(self, self.kick, self._deliver_now, self._caught_up)
        self.handle = None
        self.watchers = []
        self.registry = None
        # For `starcite.api.tails.keeper` (monotonic times): the last inbound bytes, the last
        # write (seen as `sent` moving, or a keep-alive), the last keep-alive that wants an answer.
        self.heard_at = self.spoke_at = time.monotonic()
        self.spoke_seq = cursor
        self.pinged_at = 0.0

    def start(self, registry: set):
        """Open the tail in the node and start reading; ``registry`` holds the stream until it finishes."""
        if not self.open_in_node(registry):
            return
        watch(self)
        # The first replay runs in the request's greenlet, which exists anyway (no spawn per
        # tail); caught up and idle, it returns and the request greenlet ends.
        self.pump_here()

    def open_in_node(self, registry: set) -> bool:
        """Register the stream and open its tail in the node; False (and the stream finished) if
        the node could not open it. The part of `start` every sink shares (a raw socket's tail, a
        Phoenix channel: `starcite.api.tails.phoenix_channels`)."""
        self.registry = registry
        registry.add(self)
        self.node.connections.moved(None, self.conn.kind)
        try:
            self.handle = self.node.tails.open(self.session_id, self.sent, self.outbox)
        except Exception as exc:  # e.g. no replica reachable: the 101 is sent, so close the socket
            log.warning("tail on %s could not open: %s", self.session_id, exc)
            self._finish(CLOSE_INTERNAL, "tail_unavailable")
            return False
        return True

    def pump_here(self):
        """Run the pump in the calling greenlet (the first replay), until it is idle."""
        self.pump = gevent.getcurrent()
        self._run()

    def kick(self):
        """Start the pump, unless one runs or a fan-out job has the socket (its settle kicks:
        no greenlet is parked per tail while a job is out, e.g. a shutdown's 10,000 closes)."""
        if self.pump is None and not self.conn.closed and self.conn.in_flight is None:
            self.pump = gevent.spawn(self._run)

    # -- the pump -------------------------------------------------------------

    def _run(self):
        try:
            self._work()
        except WriteStalled:  # the client stopped reading
            self.node.connections.timed_out["tail_stall"] += 1
            self._finish()
        except OSError:
            self._finish()  # the client went away
        except Exception:  # never leave a tail half-open: its socket, watchers and registrations go
            log.exception("tail on %s failed", self.session_id)
            self._finish(CLOSE_INTERNAL, "internal_error")
        finally:
            self.pump = None

    def _deliver_now(self, entries) -> bool:
        """Hub context (never blocks): write the next contiguous batch of an idle live tail."""
        if self.replaying or entries[0][0] != self.sent + 1:
            return False  # replaying, or an overlap or a gap: the pump sorts it out
        if not self.write_idle(self.conn.encode(entries, self.batch_size)):
            return False
        self.sent = entries[-1][0]
        return True

    def claim(self, entries, job):
        """Hub context, for `LiveFanout`: ``entries`` (a committed run of this session) can go out
        in ``job`` if this tail is idle, live, and they continue what it has sent. Then the socket
        is the job's until it settles, ``sent`` moves to their end, and the index of the first
        entry not sent yet is returned. Else None: nothing new, or the batch is on the outbox
        for the pump (replaying, a write or a job pending, or a gap)."""
        if self.pump is None and not self.replaying and not self.conn.busy():
            first = self.sent + 1 - entries[0][0]
            if first >= len(entries):
                return None  # sent already (it read them before going live)
            if first >= 0 and entries[first][0] == self.sent + 1:
                self.conn.in_flight = job
                self.sent = entries[-1][0]
                return first
        self.outbox.put(("events", entries))
        return None

    def settle(self, data, sent: int):
        """Hub context: the fan-out job that claimed this tail sent ``sent`` bytes of ``data``."""
        if not self.conn.settle(data, sent):
            self.outbox.put(("gone",))
        elif self.conn.unsent or self.outbox.items:
            self.kick()  # the kernel buffer was full (the pump writes the rest), or items waited

    def write_idle(self, data) -> bool:
        """Hub context (never blocks): write ``data`` if no pump and no fan-out job is writing;
        False if one is (or the socket is dead: then the pump hits the error and ends the tail)."""
        if self.pump is not None or self.conn.busy():
            return False
        if not self.conn.send_now(data):
            self.outbox.put(("gone",))
            return False
        if self.conn.unsent:
            self.kick()  # the kernel buffer was full: the pump writes the rest
        return True

    def _caught_up(self, last_seq) -> bool:
        """Hub context: an idle live tail that has sent ``last_seq`` needs no catch-up."""
        return self.pump is None and not self.replaying and self.sent >= last_seq

    def _work(self):
        items = self.outbox.items
        while not self.conn.closed:
            if self.replaying:  # (its send writes what is unsent, the 101 first, in front of its frames)
                if self.expires_at is not None and time.time() >= self.expires_at:
                    return self._finish(CLOSE_TOKEN_EXPIRED, "token_expired")  # a long replay ends too
                try:
                    entries = self.node.reads.read_events(self.session_id, self.sent, REPLAY_CHUNK)
                except ArchiveReadError as exc:
                    return self._finish(CLOSE_INTERNAL, f"archive_read_unavailable: {exc}")
                self._send(entries)
                if len(entries) == REPLAY_CHUNK:
                    continue
                # A short read reached the end of the store (`SessionReads.read_events`): go live now,
                # without another read. The group compares self.sent with the session's last seq
                # and registers the outbox in one dispatch; anything committed since the read
                # makes it put ("replay",) instead.
                self.replaying = False
                self.handle.go_live(self.sent)
                continue
            self.conn.flush()
            if not items:
                return  # idle: nothing holds a greenlet until the next put
            item = items.popleft()
            kind = item[0]
            if kind == "events":
                entries = item[1]
                while items and items[0][0] == "events":
                    entries = entries + items.popleft()[1]
                entries = [entry for entry in entries if entry[0] > self.sent]
                if entries and entries[0][0] != self.sent + 1:
                    self._replay()  # a gap: never skip a seq
                    continue
                self._send(entries)
            elif kind == "check":
                # Periodic catch-up check: behind the session's last seq with nothing queued -> replay.
                if item[1] > self.sent and not items:
                    self._replay()
            elif kind == "replay":
                self.replaying = True
            elif kind == "close":
                return self._finish(item[1], item[2])
            elif kind == "gone":
                return self._finish()
            elif kind == "pong":
                self.conn.pong(item[1])

    def _replay(self):
        self.replaying = True
        self.handle.go_replay()

    def _send(self, entries):
        if not entries:
            return
        self.conn.send(self.conn.encode(entries, self.batch_size))
        self.sent = entries[-1][0]

    def _finish(self, code=None, reason=""):
        close_watchers(self.watchers)
        if self.handle is not None:
            self.handle.close()
        self.conn.close(code, reason)
        self.outbox.detach()
        forget(self.registry, self, self.node)

    # -- hub callbacks (never block) ------------------------------------------

    def _readable(self):
        data = received(self)
        if not data:
            if data == b"":  # the peer has gone
                self.outbox.put(("gone",))
            return
        for item in self.conn.inbound(data):
            self.outbox.put(item)
            if item[0] == "close":
                self.watchers[0].stop()
                return

    def tend(self, now: float, every_s: float):
        """The keeper's visit (hub context, never blocks): after ``every_s`` without a write, a
        keep-alive; a peer that left one unanswered (nothing at all came back) for ``every_s``
        is gone. A busy tail gets no keep-alive: a peer that stops reading it stalls its
        writes, and the socket's stall timeout ends it."""
        if self.sent != self.spoke_seq:
            self.spoke_seq, self.spoke_at = self.sent, now
        conn = self.conn
        if conn.keepalive_answered and self.pinged_at > self.heard_at and now - self.pinged_at >= every_s:
            self.node.connections.timed_out["tail_ping"] += 1
            self.pinged_at = float("inf")  # once: the pump ends it
            self.outbox.put(("gone",))
            return
        if now - self.spoke_at >= every_s and self.write_idle(conn.keepalive):
            self.spoke_at = now
            if conn.keepalive_answered and self.pinged_at <= self.heard_at:
                self.pinged_at = now  # the first unanswered one counts

    def _arm_expiry(self, loop):
        """Close with 4001 once the token is expired by the wall clock (timers may fire early)."""
        timer = loop.timer(max(0.0, self.expires_at - time.time()) + 0.001)
        self.watchers.append(timer)

        def fire():
            if time.time() < self.expires_at:
                self.watchers.remove(timer)
                timer.close()
                return self._arm_expiry(loop)
            self.outbox.put(("close", CLOSE_TOKEN_EXPIRED, "token_expired"))

        timer.start(fire)
