"""The channels a Phoenix socket carries: ``tail:<session_id>`` and ``lifecycle``.

Owns: the join of each (its payload's checks and its access checks, a
refusal as a `JoinRefused` with the reason the client reads), and what a
joined channel is: `TailChannel`, a `ChannelStream` (the raw tail's
`TailStream`, pump and all: replay then live, gap-free, exactly once, across
leader changes, restarts and remote replicas, writing through a
`ChannelConn`), and `LifecycleChannel`, a subscription to the cluster's
lifecycle events (``node.lifecycle_events``, `LifecycleRelay`) whose events,
fenced to the token's tenant, are pushed as ``lifecycle {event}``.

Must not: read or write the socket itself (`starcite.api.tails.phoenix_socket`
does; a channel only writes through its conn or the socket's queue), or
block in a lifecycle callback (it runs inside a Raft apply).
"""

import logging

import gevent

from starcite.api.auth import policy
from starcite.api.tails.phoenix_wire import ChannelConn
from starcite.api.tails.stream import TailStream
from starcite.core.errors import StarciteError
from starcite.core.rules import TAIL_BATCH_SIZE, TAIL_CURSOR

log = logging.getLogger("starcite.phoenix")

TAIL_PREFIX = "tail:"
LIFECYCLE_TOPIC = "lifecycle"
UNMATCHED_TOPIC = "unmatched topic"  # Phoenix's own reason for a topic no channel serves


class JoinRefused(Exception):
    """A join that fails: the client reads ``response.reason`` (and ``message``)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message

    @classmethod
    def of(cls, exc: StarciteError):
        return cls(exc.code, exc.message)

    def response(self) -> dict:
        return {"reason": self.reason, "message": self.message}


class ChannelStream(TailStream):
    """A tail whose socket is a channel's: the socket reads and tends it, and the token's expiry
    is the socket's; a batch never goes through the live fan-out's claim (other channels write
    on the same fd), so it reaches the outbox, whose hub-side delivery or pump writes it."""

    def start(self, registry: set):
        if self.open_in_node(registry):
            self.pump_here()

    def claim(self, entries, job):
        self.outbox.put(("events", entries))
        return None


def _integer(payload: dict, name: str, shape, default, code: str) -> int:
    value = payload.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not shape.minimum <= value <= shape.maximum:
        raise JoinRefused(code, f"{name} must be an integer from {shape.minimum} to {shape.maximum}")
    return value


def tail_join_params(payload: dict, last_seq) -> tuple:
    """``(cursor, batch_size)`` of a tail join. ``cursor`` absent: 0; ``live_only: true`` without
    a cursor: the session's last seq at the join (``last_seq()``), i.e. from now on.
    ``batch_size``: the most events in one ``events`` push (default 1000)."""
    if payload.get("cursor") is None and payload.get("live_only") is True:
        cursor = last_seq()
    else:
        cursor = _integer(payload, "cursor", TAIL_CURSOR, 0, "invalid_cursor")
    return cursor, _integer(payload, "batch_size", TAIL_BATCH_SIZE, TAIL_BATCH_SIZE.maximum, "invalid_batch_size")


class TailChannel:
    """A joined ``tail:<session_id>``: its stream, started in a greenlet of its own."""

    def __init__(self, node, shared, topic, join_ref, payload, access, expires_at, on_end):
        """Raises `JoinRefused`: a bad payload, a session that is not there, or one the token may not read."""
        session_id = topic[len(TAIL_PREFIX):]
        if not session_id:
            raise JoinRefused("invalid_topic", "the topic is tail:<session_id>")
        try:
            access.scope("session:read")
            record = node.require_session(session_id)
            access.session(record)
        except StarciteError as exc:
            raise JoinRefused.of(exc) from None
        cursor, batch_size = tail_join_params(payload, lambda: record.get("last_seq", 0))
        self.join_ref = join_ref
        self.conn = ChannelConn(shared, topic, join_ref, on_end)
        self.stream = ChannelStream(node, self.conn, session_id, cursor, batch_size, expires_at)

    def start(self, registry: set):
        """After the join's reply is written: replay in a greenlet of its own, then live."""
        gevent.spawn(self.stream.start, registry)

    def end(self, code=None, reason=""):
        """Ask the stream to finish (its pump writes the goodbye and calls ``on_end``)."""
        self.stream.outbox.put(("close", code, reason))


def lifecycle_event(event: dict) -> dict:
    """A feed event as the SDK reads it: ``kind`` is ``session.<kind>``."""
    kind = event.get("kind", "")
    return event if kind.startswith("session.") else {**event, "kind": f"session.{kind}"}


class LifecycleChannel:
    """A joined ``lifecycle``: the cluster's lifecycle events, fenced to the token's tenant.

    ``push(frame_bytes)`` is the socket's non-blocking queue; the feed's callback runs inside a
    Raft apply and only puts on it."""

    def __init__(self, node, shared, topic, join_ref, access, push, on_end):
        ctx = access.ctx
        try:
            policy.require_service(ctx)
            policy.require_scope(ctx, "session:read")
        except StarciteError as exc:
            raise JoinRefused.of(exc) from None
        if access.locked_sessions() is not None:
            raise JoinRefused("forbidden_session", "the lifecycle channel needs a token not locked to sessions")
        feed = getattr(node, "lifecycle_events", None)  # the cluster's, once each (`LifecycleRelay`)
        if feed is None:
            raise JoinRefused("unavailable", "this node has no lifecycle events")
        self.join_ref = join_ref
        self.conn = ChannelConn(shared, topic, join_ref, on_end)
        self.tenant = access.tenant() if access.enabled else None
        self.fenced = access.enabled
        self.push = push
        self.unsubscribe = feed.subscribe(self._on_event)

    def start(self, registry: set):
        """Joined: nothing to replay (the feed is live only)."""

    def _on_event(self, event: dict):
        if self.conn.closed or (self.fenced and event.get("tenant_id") != self.tenant):
            return
        self.push(self.conn.push("lifecycle", {"event": lifecycle_event(event)}))

    def end(self, code=None, reason=""):
        """Unsubscribe and close (in the socket's worker greenlet: the goodbye is written there)."""
        unsubscribe, self.unsubscribe = self.unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        self.conn.close(code, reason)
