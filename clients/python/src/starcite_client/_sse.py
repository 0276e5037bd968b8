"""The SSE tail without I/O: the event-stream parser and what a tail does with its messages.

Owns: `SseParser` (an incremental parser of the WHATWG ``text/event-stream``
format: lines ended by CRLF, LF or CR, even split across chunks; ``:``
comments ignored; ``data`` lines joined with ``\\n``; ``event``, ``id``,
``retry``; a blank line dispatches) and `SseTail` (the request of each
connection, the refusal or acceptance of its answer, its messages turned
into events through `_core.TailPosition`, ``event: error`` turned into
`TokenExpired` or a reconnect, and the delay before the next connection).
Must not: do I/O or sleep: `client` and `aio` open the stream, feed its
bytes here, and wait the delay this module names.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import httpx

from starcite_client import _core
from starcite_client._core import Event
from starcite_client.errors import SessionDeleted, StarciteError, TokenExpired

EVENT_STREAM = "text/event-stream"
SSE_READ_TIMEOUT = 45.0  # seconds without a byte before a stream counts as dead (keep-alives come every 15 s)

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SseMessage:
    """One dispatched message: its ``event`` type ("message" unless named), ``data``, and the last event id."""

    event: str
    data: str
    id: str


class SseParser:
    """Bytes of an event stream in, dispatched `SseMessage`s out (WHATWG HTML, "event stream interpretation").

    ``retry`` is the last reconnection time the stream asked for (milliseconds),
    ``last_event_id`` the last ``id`` it named; both outlive `reset`, which a new
    connection calls to drop what the old one left half-sent.
    """

    def __init__(self) -> None:
        self.retry: int | None = None
        self.last_event_id = ""
        self.reset()

    def reset(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._scanned = 0  # how much of the buffer holds no line end
        self._skip_lf = False  # the last chunk ended in CR: an LF starting the next one ends no line
        self._at_start = True  # a BOM may open the stream
        self._data: list[str] = []
        self._event = ""
        self._id = self.last_event_id

    def feed(self, chunk: bytes) -> list[SseMessage]:
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if self._skip_lf and text.startswith("\n"):
            text = text[1:]
        self._skip_lf = False
        if self._at_start:
            text = text.removeprefix("\ufeff")
            self._at_start = False
        self._buffer += text
        messages = []
        start = 0
        for match in _LINE_END.finditer(self._buffer, self._scanned):
            message = self._line(self._buffer[start:match.start()])
            if message is not None:
                messages.append(message)
            start = match.end()
            self._skip_lf = match.group() == "\r" and start == len(self._buffer)
        self._buffer = self._buffer[start:]
        self._scanned = len(self._buffer)
        return messages

    def _line(self, line: str) -> SseMessage | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id = value
        elif field == "retry":
            if value.isascii() and value.isdigit():
                self.retry = int(value)
        return None  # any other field is ignored

    def _dispatch(self) -> SseMessage | None:
        self.last_event_id = self._id
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SseMessage(event or "message", "\n".join(data), self.last_event_id)


class SseTail:
    """One following SSE tail of a session: where it is (``position``), how long to wait, what each message means.

    Per connection: `request` (the arguments of ``httpx`` ``stream``), then
    `opened` with the answer's status, headers and (for a refusal) body, then
    `feed` with each chunk of the body. A `_core.TailReconnect` raised by
    these, a transport error, or the stream's end means: wait `next_delay`,
    connect again from ``position.last_seq``.
    """

    def __init__(self, session_id: str, cursor: int, timeout: float):
        self.path = _core.session_path(session_id, "/tail")
        self.timeout = httpx.Timeout(timeout, read=SSE_READ_TIMEOUT)
        self.position = _core.TailPosition(cursor)
        self.backoff = _core.Backoff(maximum=_core.TAIL_BACKOFF_MAX)
        self.parser = SseParser()
        self.retry_after: float | None = None

    def request(self) -> dict[str, Any]:
        """``http.stream(**tail.request())``: from the last delivered seq (the cursor; no Last-Event-ID needed)."""
        self.parser.reset()
        return {"method": "GET", "url": self.path, "params": {"cursor": self.position.last_seq},
                "headers": {"Accept": EVENT_STREAM, "Cache-Control": "no-cache"}, "timeout": self.timeout}

    def opened(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """Raise the typed error of a refusal (`TailReconnect` when it is retryable); pass a stream."""
        if status >= 400:
            error = _core.handshake_error(status, body, headers)
            if not _core.is_retryable(error):
                raise error
            self.retry_after = error.retry_after
            raise _core.TailReconnect(str(error)) from error
        content_type = headers.get("content-type", "")
        if status != 200 or not content_type.startswith(EVENT_STREAM):
            raise StarciteError(status, "not_an_event_stream",
                                f"the tail answered {status} {content_type or 'without a content type'}")

    def feed(self, chunk: bytes) -> Iterator[Event]:
        """The new events of ``chunk``, one at a time, in order (what precedes a bad message is yielded first)."""
        for message in self.parser.feed(chunk):
            if message.event == "error":
                raise self._stream_error(message.data)
            if message.event != "message":
                continue  # a type this client does not know of
            for event in self.position.accept(message.data):
                self.backoff.reset()
                yield event

    @staticmethod
    def _stream_error(data: str) -> Exception:
        try:
            body = json.loads(data)
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {"message": data}
        code, text = str(body.get("error") or "stream_error"), str(body.get("message") or "")
        if code == "token_expired":
            return TokenExpired(401, code, text or "token expired", body)
        if code == "session_deleted":
            return SessionDeleted(404, code, text or "session deleted", body)
        return _core.TailReconnect(f"{code}: {text}")  # archive_read_unavailable, tail_unavailable...

    def next_delay(self) -> float:
        """The backoff's next delay, at least the stream's ``retry`` (or a refusal's Retry-After), at most its cap."""
        floor = self.retry_after if self.retry_after is not None else (self.parser.retry or 0) / 1000.0
        self.retry_after = None
        return max(self.backoff.next_delay(), min(floor, self.backoff.maximum))
