"""Test helper: a minimal blocking Phoenix Channels V2 client on a raw socket.

Owns: opening `/v1/socket/websocket` (`PhoenixClient.open`: the 101, or the
refusal's status and error code as `Refused`), sending V2 messages (masked
text frames), reading the server's messages in order (`next`, `wait_for`),
the join/leave/heartbeat calls and their replies, and collecting a tail
channel's events (`events_until`). Every read is bounded by the socket
timeout and by an overall deadline.

Must not: reach anything but 127.0.0.1, or wait without a bound.
"""

import base64
import collections
import json
import os
import re
import socket
import struct
import time
import urllib.parse

from tests.raw_tail import read_head, server_frame

_MASK = b"\x00\x00\x00\x00"  # a zero key: the payload goes as is (the server must unmask anyway)


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return head + _MASK + payload


class Refused(Exception):
    def __init__(self, status: int, code, head: bytes):
        super().__init__(f"{status} {code}")
        self.status, self.code, self.head = status, code, head


def upgrade_request(port, query="vsn=2.0.0", headers=None) -> bytes:
    fields = {"Host": "127.0.0.1", "Upgrade": "websocket", "Connection": "Upgrade",
              "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(), "Sec-WebSocket-Version": "13",
              **(headers or {})}
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items() if value is not None)
    return f"GET /v1/socket/websocket?{query} HTTP/1.1\r\n{lines}\r\n".encode()


class PhoenixClient:
    def __init__(self, sock, buf: bytes, timeout: float):
        self.sock, self.buf, self.timeout = sock, buf, timeout
        self.ref = 0
        self.messages = collections.deque()  # read but not yet taken
        self.closed = None  # (code, reason) once the server sent a close frame

    @classmethod
    def open(cls, port, token=None, vsn="2.0.0", headers=None, timeout=10.0, receive_buffer=None):
        """receive_buffer: a small SO_RCVBUF set before connecting (a client that reads slowly)."""
        query = "&".join(part for part in (f"vsn={vsn}" if vsn else "",
                                           f"token={urllib.parse.quote(token)}" if token else "") if part)
        sock = socket.socket()
        try:
            if receive_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.settimeout(timeout)
            sock.connect(("127.0.0.1", port))
            sock.sendall(upgrade_request(port, query, headers))
            data = read_head(sock)
            head, _, rest = data.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            if status != 101:
                length = re.search(rb"(?im)^content-length: *(\d+)", head)
                body = rest
                while length and len(body) < int(length.group(1)):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                try:
                    code = json.loads(body)["error"]
                except ValueError:
                    code = None
                raise Refused(status, code, head)
            return cls(sock, rest, timeout)
        except BaseException:
            sock.close()
            raise

    def close(self):
        try:
            self.sock.sendall(client_frame(struct.pack("!H", 1000), 0x8))
        except OSError:
            pass
        self.sock.close()

    def send(self, join_ref, topic, event, payload, ref=None) -> str:
        self.ref += 1
        ref = str(self.ref) if ref is None else ref
        self.send_raw(json.dumps([join_ref, ref, topic, event, payload]).encode())
        return ref

    def send_raw(self, payload: bytes, opcode: int = 0x1):
        self.sock.sendall(client_frame(payload, opcode))

    def _read_one(self, deadline):
        while True:
            parsed = server_frame(self.buf)
            if parsed is not None:
                opcode, payload, self.buf = parsed
                if opcode == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    self.closed = (code, payload[2:].decode())
                    raise ConnectionError(f"closed by the server: {self.closed}")
                if opcode == 0x9:
                    self.sock.sendall(client_frame(payload, 0xA))
                    continue
                if opcode == 0x1:
                    return json.loads(payload)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no message from the server in time")
            self.sock.settimeout(min(remaining, self.timeout))
            try:
                data = self.sock.recv(65536)
            finally:
                self.sock.settimeout(self.timeout)
            if not data:
                raise ConnectionError("connection closed without a close frame")
            self.buf += data

    def next(self, timeout=None):
        if self.messages:
            return self.messages.popleft()
        return self._read_one(time.monotonic() + (timeout or self.timeout))

    def wait_for(self, predicate, timeout=None):
        """The first message (kept ones first) matching ``predicate``; the others are kept, in order."""
        for message in list(self.messages):
            if predicate(message):
                self.messages.remove(message)
                return message
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            message = self._read_one(deadline)
            if predicate(message):
                return message
            self.messages.append(message)

    def reply(self, ref, timeout=None) -> dict:
        """The ``phx_reply`` payload to the message ``ref``."""
        return self.wait_for(lambda m: m[1] == ref and m[3] == "phx_reply", timeout)[4]

    def join(self, topic, payload=None, join_ref=None) -> tuple:
        """``(join_ref, reply payload)`` of a join."""
        self.ref += 1
        join_ref = join_ref or str(self.ref)
        ref = self.send(join_ref, topic, "phx_join", payload or {}, ref=join_ref)
        return join_ref, self.reply(ref)

    def leave(self, topic, join_ref) -> dict:
        return self.reply(self.send(join_ref, topic, "phx_leave", {}))

    def heartbeat(self) -> dict:
        return self.reply(self.send(None, "phoenix", "heartbeat", {}))

    def events_until(self, topic, join_ref, count, timeout=None) -> list:
        """Events pushed on ``topic`` (this join) until ``count`` have come."""
        events = []
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(events) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(events)} of {count} events in time")
            message = self.wait_for(lambda m: m[2] == topic and m[0] == join_ref and m[3] == "events", remaining)
            events.extend(message[4]["events"])
        return events
