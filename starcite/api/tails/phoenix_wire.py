"""The Phoenix Channels V2 wire: messages as JSON arrays in WebSocket text frames, one socket shared.

Owns: encoding and decoding V2 messages (``[join_ref, ref, topic, event,
payload]``), the reply and push frames the socket and its channels send
(an event goes as the store renders it, `starcite.core.records`: with
``cursor``), `SharedWebSocket` (the Phoenix
socket's connection: one lock serialises the blocking writes of every
channel and of the socket itself) and `ChannelConn`, the `TailSocket` face
one channel's `TailStream` writes through: its frames go out on the shared
connection, its close ends the channel (``phx_close``, ``phx_error``,
``token_expired``), never the socket.

Must not: know about sessions, auth or the node; read the socket
(`starcite.api.tails.phoenix_socket` does).
"""

import json

import gevent.lock

from starcite.api.tails.tail_socket import CLOSE_NORMAL, CLOSE_TOKEN_EXPIRED
from starcite.api.tails.ws_wire import OP_TEXT, WebSocketConn, frame

PHOENIX_TOPIC = "phoenix"  # the socket's own topic (heartbeats)
MAX_MESSAGE_BYTES = 64 * 1024  # an inbound message past this closes the socket (1009)


class BadMessage(ValueError):
    """An inbound text frame that is not a V2 message."""


def decode(payload: bytes):
    """``(join_ref, ref, topic, event, payload)`` of an inbound V2 message, or BadMessage."""
    try:
        message = json.loads(payload)
    except ValueError:
        raise BadMessage("not JSON") from None
    if (not isinstance(message, list) or len(message) != 5 or not isinstance(message[2], str)
            or not isinstance(message[3], str) or not all(ref is None or isinstance(ref, str) for ref in message[:2])):
        raise BadMessage("not a [join_ref, ref, topic, event, payload] array")
    return tuple(message)


def message_frame(join_ref, ref, topic: str, event: str, payload) -> bytes:
    """One V2 message as a server text frame."""
    return frame(OP_TEXT, json.dumps([join_ref, ref, topic, event, payload], separators=(",", ":"),
                                     ensure_ascii=False).encode())


def reply_frame(join_ref, ref, topic: str, status: str, response: dict) -> bytes:
    """``phx_reply {status, response}`` to the message ``ref``."""
    return message_frame(join_ref, ref, topic, "phx_reply", {"status": status, "response": response})


class SharedWebSocket(WebSocketConn):
    """The Phoenix socket's connection: every channel writes on it; blocking writes take turns."""

    kind = "phoenix_socket"

    def __init__(self, sock, stall_s=None):
        super().__init__(sock, stall_s)
        self.lock = gevent.lock.Semaphore()

    def busy(self) -> bool:
        return super().busy() or self.lock.locked()

    def send(self, data: bytes):
        with self.lock:
            super().send(data)


class ChannelConn:
    """What one channel's `TailStream` writes through: `TailSocket`'s face on a shared socket.

    ``on_end(conn, code, reason)``: the socket's hook, called once when the channel has closed. The channel
    never claims the live fan-out (its socket is shared), so ``in_flight`` stays None.
    """

    kind = None  # the socket is the connection (`SharedWebSocket.kind`); channels are counted apart
    keepalive = None
    keepalive_answered = False
    in_flight = None

    def __init__(self, shared: SharedWebSocket, topic: str, join_ref, on_end):
        self.shared, self.topic, self.join_ref, self.on_end = shared, topic, join_ref, on_end
        self.sock = shared.sock
        self.closed = False
        self._events_head = "[%s,null,%s,\"events\",{\"events\":[" % (json.dumps(join_ref), json.dumps(topic))

    @property
    def unsent(self):
        return self.shared.unsent

    def encode(self, entries, batch_size) -> bytes:
        """``events {events: [...]}`` pushes of at most ``batch_size`` events each."""
        head = self._events_head
        return b"".join(
            frame(OP_TEXT, (head + ",".join(event_json for _seq, event_json in entries[i:i + batch_size])
                            + "]}]").encode())
            for i in range(0, len(entries), batch_size))

    def wire_key(self, batch_size):
        return ("phoenix", self.topic, self.join_ref, batch_size)

    def busy(self) -> bool:
        return self.closed or self.shared.busy()

    def wait_in_flight(self):
        """Nothing to wait for: a channel never hands its socket to the fan-out."""

    def send(self, data: bytes):
        self.shared.send(data)

    def flush(self):
        self.shared.send(b"")

    def send_now(self, data: bytes) -> bool:
        return self.shared.send_now(data)

    def pong(self, payload: bytes):
        """The socket answers pings, not its channels."""

    def push(self, event: str, payload) -> bytes:
        """A push on this channel (the server's message, no ref)."""
        return message_frame(self.join_ref, None, self.topic, event, payload)

    def goodbye(self, code, reason: str) -> bytes:
        """What the channel sends as it ends: nothing when the socket is gone or closing,
        ``token_expired`` then ``phx_close`` at the token's expiry, ``phx_close`` on a leave or a
        replacing join, ``phx_error`` when the tail failed (the client rejoins)."""
        if code is None or reason == "server_shutdown":
            return b""
        close = message_frame(self.join_ref, self.join_ref, self.topic, "phx_close", {})
        if code == CLOSE_TOKEN_EXPIRED:
            return self.push("token_expired", {"reason": "token_expired"}) + close
        if code == CLOSE_NORMAL:
            return close
        return message_frame(self.join_ref, self.join_ref, self.topic, "phx_error", {"reason": reason})

    def close(self, code=None, reason=""):
        if self.closed:
            return
        self.closed = True
        goodbye = self.goodbye(code, reason)
        if goodbye and not self.shared.closed:
            self.shared.send_quietly(goodbye)
        self.on_end(self, code, reason)
