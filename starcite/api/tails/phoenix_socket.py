"""One Phoenix Channels V2 socket (`GET /v1/socket/websocket`): its reader, its topics, its writer.

Owns: `PhoenixSocket`: an io watcher reads the client's frames on the hub
and queues what they ask; one worker greenlet, spawned while the queue has
work, answers them in order: ``heartbeat`` (topic ``phoenix``), ``phx_join``
(a second join of a topic first closes the one it replaces), ``phx_leave``,
Phoenix's ``unmatched topic`` error for a topic not joined, and writes what
the lifecycle channels queue. Channels write their own frames through the
shared connection (`SharedWebSocket`: blocking writes take turns). The
token's expiry ends every channel (``token_expired``, then ``phx_close``)
and refuses later joins; the keeper (`tend`) pings a silent socket and
closes one that stays silent (Phoenix clients heartbeat every 30 s).

Must not: check a join's session or auth itself (`starcite.api.tails.phoenix_channels`
does), send events (the channels' streams do), or block the hub (the reader,
the timers, `tend` and `put` only queue or write what the kernel takes at once).
"""

import collections
import logging
import time

import gevent

from starcite.api.tails.keeper import forget
from starcite.api.tails.phoenix_channels import (LIFECYCLE_TOPIC, TAIL_PREFIX, UNMATCHED_TOPIC, JoinRefused,
                                                 LifecycleChannel, TailChannel)
from starcite.api.tails.phoenix_wire import MAX_MESSAGE_BYTES, PHOENIX_TOPIC, BadMessage, decode, reply_frame
from starcite.api.tails.tail_socket import CLOSE_NORMAL, CLOSE_TOKEN_EXPIRED, close_watchers, received, watch
from starcite.api.tails.ws_wire import OP_CLOSE, OP_PING, OP_TEXT, OP_TOO_BIG, InboundFrames

log = logging.getLogger("starcite.phoenix")

CLOSE_GOING_AWAY = 1001    # the node is shutting down (the client reconnects and rejoins)
CLOSE_INVALID_DATA = 1007  # a text frame that is not a V2 message
CLOSE_TOO_BIG = 1009       # a message past MAX_MESSAGE_BYTES
CLOSE_BEHIND = 1008        # the queue of work passed MAX_QUEUED: a client that floods, or reads too slowly
MAX_CHANNELS = 100         # topics one socket may have joined at once
MAX_QUEUED = 10000         # inbound messages and lifecycle pushes waiting for the worker


class PhoenixSocket:
    """One client's socket and the channels it has joined (``channels``: topic -> channel)."""

    def __init__(self, node, conn, access, expires_at, registries):
        """conn: the `SharedWebSocket`; registries: ``(sockets, streams)``, the resource's sets
        of open sockets (the keeper tends them) and of the channels' tail streams."""
        self.node, self.conn, self.access, self.expires_at = node, conn, access, expires_at
        self.sockets, self.streams = registries
        self.frames_in = InboundFrames(MAX_MESSAGE_BYTES)
        self.channels = {}
        self.queue = collections.deque()
        self.worker = None
        self.watchers = []
        self.expired = False
        self.finished = False
        self.heard_at = self.pinged_at = time.monotonic()

    def start(self):
        self.sockets.add(self)
        self.node.connections.moved(None, self.conn.kind)
        watch(self)
        self.worker = gevent.getcurrent()  # the request's greenlet writes the 101 and ends
        self._run()

    # -- the queue and its worker ---------------------------------------------

    def put(self, item):
        """Hub-safe: queue work for the worker (``("message", bytes)``, ``("write", bytes)``,
        ``("pong", payload)``, ``("expire",)``, ``("close", code, reason)``)."""
        if self.finished:
            return
        if len(self.queue) >= MAX_QUEUED:  # bounded memory: the client reconnects and resumes
            self.queue.clear()
            item = ("close", CLOSE_BEHIND, "too_far_behind")
        self.queue.append(item)
        if self.worker is None:
            self.worker = gevent.spawn(self._run)

    def push(self, data: bytes):
        """Hub-safe: a frame a lifecycle channel wants written."""
        self.put(("write", data))

    def _run(self):
        try:
            self.conn.flush()  # the 101 first, or what a hub-side write left
            while self.queue and not self.finished:
                self._handle(self.queue.popleft())
                self.conn.flush()
        except OSError:
            self._finish()  # the client went away, or stopped reading
        except Exception:
            log.exception("phoenix socket failed")
            self._finish(1011, "internal_error")
        finally:
            self.worker = None
        if self.queue and not self.finished:
            self.worker = gevent.spawn(self._run)  # an item queued after the loop looked

    def _handle(self, item):
        kind = item[0]
        if kind == "message":
            try:
                self._message(*decode(item[1]))
            except BadMessage as exc:
                self._finish(CLOSE_INVALID_DATA, f"invalid_message: {exc}")
        elif kind == "write":
            self.conn.send(item[1])
        elif kind == "pong":
            self.conn.pong(item[1])
        elif kind == "expire":
            self.expired = True
            for channel in list(self.channels.values()):
                channel.end(CLOSE_TOKEN_EXPIRED, "token_expired")
        elif kind == "close":
            self._finish(item[1], item[2])

    def _reply(self, join_ref, ref, topic, status="ok", response=None):
        self.conn.send(reply_frame(join_ref, ref, topic, status, response or {}))

    def _message(self, join_ref, ref, topic, event, payload):
        if topic == PHOENIX_TOPIC and event == "heartbeat":
            return self._reply(None, ref, topic)
        if event == "phx_join":
            return self._join(join_ref, ref, topic, payload if isinstance(payload, dict) else {})
        channel = self.channels.get(topic)
        if channel is None or channel.join_ref != join_ref:
            return self._reply(join_ref, ref, topic, "error", {"reason": UNMATCHED_TOPIC})
        if event == "phx_leave":
            self._reply(join_ref, ref, topic)
            return channel.end(CLOSE_NORMAL, "left")
        self._reply(join_ref, ref, topic, "error", {"reason": "unsupported_event"})

    def _join(self, join_ref, ref, topic, payload):
        old = self.channels.pop(topic, None)
        if old is not None:  # a second join replaces the first (Phoenix closes the old one)
            old.end(CLOSE_NORMAL, "rejoined")
        try:
            channel = self._channel(join_ref, topic, payload)
        except JoinRefused as refused:
            return self._reply(join_ref, ref, topic, "error", refused.response())
        self.channels[topic] = channel
        self._reply(join_ref, ref, topic)
        channel.start(self.streams)

    def _channel(self, join_ref, topic, payload):
        if self.expired:
            raise JoinRefused("token_expired", "the socket's token has expired: reconnect with a new one")
        if self.node.stopping:
            raise JoinRefused("unavailable", "this node is shutting down")
        if len(self.channels) >= MAX_CHANNELS:
            raise JoinRefused("too_many_channels", f"a socket joins at most {MAX_CHANNELS} topics at once")
        if topic.startswith(TAIL_PREFIX):
            return TailChannel(self.node, self.conn, topic, join_ref, payload, self.access, self.expires_at,
                               self._channel_ended)
        if topic == LIFECYCLE_TOPIC:
            return LifecycleChannel(self.node, self.conn, topic, join_ref, self.access, self.push,
                                    self._channel_ended)
        raise JoinRefused(UNMATCHED_TOPIC, f"no channel serves the topic {topic!r}")

    def _channel_ended(self, conn, code, reason):
        """A channel has closed (its goodbye is written): forget it, unless a new join replaced it.
        One that ended without a word while the socket lives found the socket dead or stalled
        (a write failed): the socket closes too, and the client reconnects and rejoins."""
        channel = self.channels.get(conn.topic)
        if channel is not None and channel.conn is conn:
            del self.channels[conn.topic]
        if reason == "server_shutdown":
            self.put(("close", CLOSE_GOING_AWAY, "server_shutdown"))
        elif code is None:
            self.put(("close", None, ""))

    def _finish(self, code=None, reason=""):
        if self.finished:
            return
        self.finished = True
        close_watchers(self.watchers)
        self.queue.clear()
        for channel in list(self.channels.values()):
            channel.end()  # the socket is going: the channels end without a word
        self.channels.clear()
        self.conn.close(code, reason)
        forget(self.sockets, self, self.node)

    # -- hub callbacks (never block) ------------------------------------------

    def _readable(self):
        data = received(self)
        if not data:
            if data == b"":  # the peer has gone
                self.put(("close", None, ""))
            return
        for opcode, payload in self.frames_in.feed(data):
            if opcode == OP_TEXT:
                self.put(("message", payload))
            elif opcode == OP_PING:
                self.put(("pong", payload))
            elif opcode in (OP_CLOSE, OP_TOO_BIG):
                self.watchers[0].stop()
                code = CLOSE_NORMAL if opcode == OP_CLOSE else CLOSE_TOO_BIG
                return self.put(("close", code, "" if opcode == OP_CLOSE else "message_too_big"))

    def tend(self, now: float, every_s: float):
        """The keeper's visit: a socket that sent nothing (no heartbeat, no frame) for
        ``every_s`` gets a ping; one that then stays silent for ``every_s`` more is closed."""
        if self.pinged_at > self.heard_at:
            if now - self.pinged_at >= every_s:
                self.node.connections.timed_out["tail_ping"] += 1
                self.pinged_at = float("inf")  # once: the worker closes it
                self.put(("close", None, ""))
            return
        if now - self.heard_at >= every_s and not self.conn.busy():
            if not self.conn.send_now(self.conn.keepalive):
                return self.put(("close", None, ""))
            self.pinged_at = now
            if self.conn.unsent:
                self.put(("write", b""))

    def _arm_expiry(self, loop):
        """At the token's expiry (by the wall clock: timers may fire early) the channels end."""
        timer = loop.timer(max(0.0, self.expires_at - time.time()) + 0.001)
        self.watchers.append(timer)

        def fire():
            self.watchers.remove(timer)
            timer.close()
            if time.time() < self.expires_at:
                return self._arm_expiry(loop)
            self.put(("expire",))

        timer.start(fire)
