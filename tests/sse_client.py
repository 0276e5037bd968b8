"""Test helper: a raw SSE tail client (a socket, HTTP/1.1 or 1.0, chunked decoding, the
event-stream format parsed by hand) so that tests see exactly what the node sends.

Owns: opening `GET /v1/sessions/:id/tail` with `Accept: text/event-stream`, the status and
headers, and the messages (`id`/`event`/`data`), comments and `retry:` of the body, each wait
bounded in time. Must not: hide a malformed response (it raises)."""

import json
import socket
import time


class SseTail:
    def __init__(self, server, session_id, cursor=None, last_event_id=None, query="", headers=None,
                 protocol="HTTP/1.1", accept="text/event-stream", timeout=10.0):
        target = f"/v1/sessions/{session_id}/tail?{'' if cursor is None else f'cursor={cursor}'}{query}"
        lines = [f"GET {target} {protocol}", f"Host: 127.0.0.1:{server.port}", f"Accept: {accept}"]
        if last_event_id is not None:
            lines.append(f"Last-Event-ID: {last_event_id}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.raw = b""          # bytes received and not yet decoded
        self.body = b""         # the decoded body not yet parsed into messages
        self.ended = False      # the server ended the body (last chunk, or EOF on HTTP/1.0)
        self.events, self.messages, self.comments, self.retry = [], [], [], []
        self.status, self.headers = self._read_head(timeout)
        self.chunked = self.headers.get("transfer-encoding") == "chunked"
        if self.status != 200:
            self.error = json.loads(self._rest_of_error())

    # -- reading --------------------------------------------------------------

    def _recv(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.raw += data

    def _read_head(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.raw:
            self._recv(deadline)
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.status_line = status_line
        return int(status_line.split()[1]), headers

    def _rest_of_error(self):
        length = int(self.headers["content-length"])
        deadline = time.monotonic() + 10
        while len(self.raw) < length:
            self._recv(deadline)
        return self.raw[:length]

    def _decode(self):
        """Move complete chunks (or, unchunked, everything) from ``raw`` to ``body``."""
        if not self.chunked:
            self.body, self.raw = self.body + self.raw, b""
            return
        while b"\r\n" in self.raw:
            size_line, rest = self.raw.split(b"\r\n", 1)
            size = int(size_line, 16)
            if len(rest) < size + 2:
                return
            assert rest[size:size + 2] == b"\r\n", "malformed chunk"
            if size == 0:
                self.ended = True
            self.body, self.raw = self.body + rest[:size], rest[size + 2:]

    def _parse(self):
        """Dispatch every complete message of ``body`` (WHATWG event-stream)."""
        while b"\n\n" in self.body:
            block, self.body = self.body.split(b"\n\n", 1)
            message = {}
            for line in block.decode().split("\n"):
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "retry":
                    self.retry.append(int(value))
                elif name == "data":
                    message["data"] = message["data"] + "\n" + value if "data" in message else value
                elif name:
                    message[name] = value
            if "data" in message:
                self.messages.append(message)
                if message.get("event", "message") == "message":
                    event = json.loads(message["data"])
                    assert message["id"] == str(event["seq"]), message
                    self.events.append(event)

    def _pump(self, deadline):
        try:
            self._recv(deadline)
        except EOFError:
            self._decode()
            if self.chunked and not self.ended:
                raise ConnectionError("the connection closed before the last chunk") from None
            self.ended = True
        self._decode()
        self._parse()

    def wait_for(self, predicate, timeout=15.0, what="condition"):
        deadline = time.monotonic() + timeout
        self._decode()
        self._parse()
        while not predicate():
            if self.ended:
                raise ConnectionError(f"the stream ended before {what}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{what}: got {len(self.events)} events, {len(self.comments)} comments")
            self._pump(deadline)
        return self

    def read_until(self, count, timeout=15.0):
        self.wait_for(lambda: len(self.events) >= count, timeout, f"{count} events")
        return self.events

    def wait_end(self, timeout=15.0):
        """Read until the server ends the body (events that arrive meanwhile are kept)."""
        deadline = time.monotonic() + timeout
        while not self.ended:
            if time.monotonic() >= deadline:
                raise TimeoutError("the stream did not end")
            try:
                self._pump(deadline)
            except (EOFError, ConnectionError, OSError):
                break
        self._parse()
        return self

    def seqs(self):
        return [event["seq"] for event in self.events]

    def errors(self):
        return [json.loads(m["data"]) for m in self.messages if m.get("event") == "error"]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
