"""Test helper: minimal blocking tail clients on a raw socket, for many short tails.

Owns: opening a WebSocket tail (`open_tail`), one open, read-the-replay,
close cycle of one (`tail_cycle`), ending in one of three ways (a close frame answered by the
server, a close frame without waiting, or an abrupt close with no frame), the
same for an SSE tail (`sse_cycle`: an SSE client can only hang up). Cheaper per tail than `tests.tail_client` (no library
handshake machinery), so tens of thousands of cycles fit in a test. Every
socket operation is bounded by the socket timeout.
"""

import base64
import json
import os
import re
import socket

CLOSE_ANSWERED, CLOSE_SENT, CLOSE_ABRUPT = "answered", "sent", "abrupt"
_CLOSE_FRAME = bytes([0x88, 0x82]) + b"\x00\x00\x00\x00" + b"\x03\xe8"  # masked (zero key), code 1000


def server_frame(buf: bytes):
    """``(opcode, payload, rest)`` of the first complete server frame in ``buf``, or None."""
    if len(buf) < 2:
        return None
    size, pos = buf[1] & 0x7F, 2
    if size == 126:
        if len(buf) < 4:
            return None
        size, pos = int.from_bytes(buf[2:4], "big"), 4
    elif size == 127:
        if len(buf) < 10:
            return None
        size, pos = int.from_bytes(buf[2:10], "big"), 10
    if len(buf) < pos + size:
        return None
    return buf[0] & 0x0F, buf[pos:pos + size], buf[pos + size:]


def read_head(sock) -> bytes:
    """Bytes from ``sock`` until the end of an HTTP head (or the close)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def open_tail(port: int, session_id: str, cursor: int, batch_size: int = 100, timeout: float = 10.0):
    """A WebSocket tail's socket after its 101, and the bytes read past the 101's head."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /v1/sessions/{session_id}/tail?cursor={cursor}&batch_size={batch_size} HTTP/1.1\r\n"
                      f"Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += _recv(sock)
        head, buf = buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"upgrade refused: {head[:200]!r}")
        return sock, buf
    except BaseException:
        sock.close()
        raise


def tail_cycle(port: int, session_id: str, cursor: int, expect: int, batch_size: int = 100,
               ending: str = CLOSE_ANSWERED, timeout: float = 10.0) -> list:
    """Open a tail, read ``expect`` events, end it; returns their seqs."""
    sock, buf = open_tail(port, session_id, cursor, batch_size, timeout)
    try:
        seqs = []
        while len(seqs) < expect:
            parsed = server_frame(buf)
            if parsed is None:
                buf += _recv(sock)
                continue
            opcode, payload, buf = parsed
            if opcode == 0x8:
                raise ConnectionError(f"closed by the server: {payload!r}")
            decoded = json.loads(payload)
            seqs.extend(event["seq"] for event in (decoded if isinstance(decoded, list) else [decoded]))
        if ending != CLOSE_ABRUPT:
            sock.sendall(_CLOSE_FRAME)
        if ending == CLOSE_ANSWERED:
            while sock.recv(65536):  # the server's close frame, then EOF
                pass
        return seqs
    finally:
        sock.close()


_SSE_MESSAGE = re.compile(rb"id: (\d+)\ndata: [^\n]*\n\n")


def sse_cycle(port: int, session_id: str, cursor: int, expect: int, timeout: float = 10.0) -> list:
    """Open an SSE tail, read ``expect`` events (their ``id:`` lines), hang up; returns their seqs."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall((f"GET /v1/sessions/{session_id}/tail?cursor={cursor} HTTP/1.1\r\n"
                      f"Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += _recv(sock)
        if b" 200 " not in buf.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"stream refused: {buf[:200]!r}")
        while len(seqs := [int(seq) for seq in _SSE_MESSAGE.findall(buf)]) < expect:
            buf += _recv(sock)
        return seqs
    finally:
        sock.close()


def _recv(sock) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("connection closed")
    return data
