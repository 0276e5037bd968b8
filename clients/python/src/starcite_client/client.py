"""The synchronous client: `Starcite`, its `Session` handles and their `Producer`.

Owns: HTTP over one `httpx.Client` (keep-alive), the retry loops of
appends and page reads (sleeping between attempts), and the following
tails, reconnecting from the last delivered seq: over a WebSocket
(`websockets.sync`) or SSE (an `httpx` stream fed to `_sse.SseTail`). Must
not: decide what to retry or which events to keep (`_core` and `_sse` do),
or be used from several threads on one `Producer` at once (a lock refuses
to interleave its appends).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator, Mapping

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import connect

from starcite_client import _core, _sse
from starcite_client._core import AppendResult, Event, EventPage
from starcite_client.errors import Conflict, StarciteError


class Starcite(_core.ClientSettings):
    """A Starcite service at ``base_url`` (e.g. ``http://127.0.0.1:4000``), with an optional bearer token."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = _core.DEFAULT_TIMEOUT,
                 retry_for: float = _core.DEFAULT_RETRY_FOR):
        super().__init__(base_url, token, timeout, retry_for)
        self.http = httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Starcite":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- HTTP ------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
                timeout: float | None = None) -> Any:
        """One request: its decoded JSON, or a typed `StarciteError`."""
        try:
            response = self.http.request(method, path, json=json, params=params,
                                         timeout=timeout if timeout is not None else self.timeout)
        except httpx.TransportError as exc:
            raise _core.transport_error(exc) from exc
        return _core.result_of(response)

    def request_retrying(self, method: str, path: str, *,
                         settled: Callable[[StarciteError], Any] | None = None, **kwargs: Any) -> Any:
        """`request`, retried on 503s and missing answers for up to `retry_for` seconds. ``settled(error)``: after a
        retry, what an error means instead (`_core.deleted_by_earlier_try`), or None to go on as usual."""
        backoff, deadline = _core.Backoff(), time.monotonic() + self.retry_for
        retried = False
        while True:
            try:
                return self.request(method, path, **kwargs)
            except StarciteError as exc:
                answer = settled(exc) if retried and settled is not None else None
                if answer is not None:
                    return answer
                delay = _core.retry_delay(exc, backoff, deadline)
                if delay is None:
                    raise
            retried = True
            time.sleep(delay)

    # -- sessions --------------------------------------------------------------------------------

    def session(self, session_id: str) -> "Session":
        """A handle on a session (no request is made)."""
        return Session(self, session_id)

    def create_session(self, id: str | None = None, title: str | None = None,
                       metadata: Mapping[str, Any] | None = None, ttl_seconds: int | None = None,
                       expires_at: str | None = None) -> "Session":
        """A new session; ``ttl_seconds`` / ``expires_at`` (RFC 3339): when it expires and is deleted."""
        body = _core.create_body(id, title, metadata, ttl_seconds, expires_at)
        record = self.request("POST", "/v1/sessions", json=body)
        return Session(self, record["id"], record)

    def delete_session(self, session_id: str) -> dict:
        """Delete a session and all its events: ``{id, deleted, deleted_at}``. Retried on 503s and missing
        answers; `SessionNotFound` when there was no such session (a 404 after a retry is taken as this
        call's own earlier try having deleted it)."""
        return self.request_retrying("DELETE", _core.session_path(session_id),
                                     settled=_core.deleted_by_earlier_try(session_id))

    def get_session(self, session_id: str) -> "Session":
        return Session(self, session_id, self.request("GET", _core.session_path(session_id)))

    def list_sessions(self, metadata: Mapping[str, str] | None = None, page_size: int = 100,
                      archived: bool | str = False) -> Iterator["Session"]:
        """Every session matching ``metadata`` (exact match), walking every page. ``archived``: False
        (default) the active sessions, True the archived ones, ``"all"`` both."""
        cursor = None
        while True:
            page = self.request("GET", "/v1/sessions", params=_core.list_params(page_size, cursor, metadata,
                                                                                archived))
            for record in page["sessions"]:
                yield Session(self, record["id"], record)
            cursor = page["next_cursor"]
            if not cursor:
                return


class Session(_core.SessionHandle):
    """One session: ``id``, and ``data`` (its record as last read; empty for a bare handle)."""

    client: Starcite

    def refresh(self) -> "Session":
        self.data = self.client.request("GET", _core.session_path(self.id))
        return self

    def update(self, title: str | None = _core.UNSET, metadata: Mapping[str, Any] | None = None,
               expected_version: int | None = None) -> "Session":
        """PATCH the session: ``title`` (None clears it), ``metadata`` (merged shallowly); its version
        goes up by one. With ``expected_version``, a session at another version raises
        `ExpectedVersionConflict` (``current_version``). Not retried: a retry after a lost answer could
        apply it twice (``expected_version`` makes that a conflict instead)."""
        self.data = self.client.request("PATCH", _core.session_path(self.id),
                                        json=_core.patch_body(title, metadata, expected_version))
        return self

    def archive(self) -> "Session":
        """Leave the session out of default listings (its events stay, appends are still taken)."""
        self.data = self.client.request_retrying("POST", _core.session_path(self.id, "/archive"), json={})
        return self

    def unarchive(self) -> "Session":
        self.data = self.client.request_retrying("POST", _core.session_path(self.id, "/unarchive"), json={})
        return self

    def delete(self) -> dict:
        """`Starcite.delete_session` of this session."""
        return self.client.delete_session(self.id)

    def producer(self, producer_id: str, next_seq: int = 1, resume: bool = False) -> "Producer":
        return Producer(self, _core.ProducerSequence(producer_id, next_seq, resume))

    def events(self, cursor: int = 0, limit: int = 100, wait_ms: int = 0) -> EventPage:
        """One page of `GET /v1/sessions/:id/events` (held up to ``wait_ms`` when nothing follows)."""
        return self.client.request_retrying("GET", _core.session_path(self.id, "/events"),
                                            params=_core.events_params(cursor, limit, wait_ms),
                                            timeout=_core.events_timeout(wait_ms, self.client.timeout))

    def tail(self, cursor: int = 0, batch_size: int = 100, follow: bool = True,
             transport: str = "websocket") -> Iterator[Event]:
        """Every event after ``cursor``, once each, in order.

        ``follow=True``: then live, forever, over a WebSocket (``transport="websocket"``,
        ``batch_size`` events a frame) or Server-Sent Events (``transport="sse"``, one
        event a message) that reconnects from the last delivered seq after any
        disconnect (bounded backoff with jitter).
        ``follow=False``: up to the session's end as it is now (read as pages, either transport).
        """
        self.check_transport(transport)
        if not follow:
            return self._read_to_end(cursor, batch_size)
        if transport == "sse":
            return self._follow_sse(cursor)
        return self._follow(cursor, batch_size)

    def _read_to_end(self, cursor: int, limit: int) -> Iterator[Event]:
        end = None
        while True:
            page = self.events(cursor, limit)
            end = page["last_seq"] if end is None else end
            events, done = _core.page_until(page, end)
            yield from events
            if done:
                return
            cursor = events[-1]["seq"]

    def _follow(self, cursor: int, batch_size: int) -> Iterator[Event]:
        position, backoff = _core.TailPosition(cursor), _core.Backoff(maximum=_core.TAIL_BACKOFF_MAX)
        headers = self.client.headers
        while True:
            url = _core.tail_url(self.client.base_url, self.id, position.last_seq, batch_size)
            try:
                with connect(url, additional_headers=headers, open_timeout=self.client.timeout,
                             max_size=None) as socket:
                    for message in socket:
                        events = position.accept(message)
                        backoff.reset()
                        yield from events
            except (InvalidStatus, ConnectionClosed) as exc:
                _core.websocket_tail_ended(exc)
            except (OSError, TimeoutError, WebSocketException, _core.TailGap):
                pass  # reconnect from the last delivered seq
            time.sleep(backoff.next_delay())

    def _follow_sse(self, cursor: int) -> Iterator[Event]:
        tail = _sse.SseTail(self.id, cursor, self.client.timeout)
        while True:
            try:
                with self.client.http.stream(**tail.request()) as response:
                    tail.opened(response.status_code, response.headers,
                                response.read() if response.status_code >= 400 else b"")
                    for chunk in response.iter_bytes():
                        yield from tail.feed(chunk)
            except (httpx.TransportError, _core.TailReconnect):
                pass  # reconnect from the last delivered seq (so does the stream's end)
            time.sleep(tail.next_delay())


class Producer(_core.ProducerHandle):
    """Appends of one ``producer_id``: each gets the next producer_seq, retried until exactly one event results."""

    session: Session

    def __init__(self, session: Session, sequence: _core.ProducerSequence):
        super().__init__(session, sequence)
        self._lock = threading.Lock()

    def append(self, type: str, payload: Mapping[str, Any], **fields: Any) -> AppendResult:
        """Append one event (``fields``: actor, source, metadata, refs, idempotency_key, expected_seq).

        503s, timeouts and refused connections are retried with the same producer_seq
        (the service dedupes), so a returned append has exactly one event."""
        path = _core.session_path(self.session.id, "/append")
        with self._lock:
            while True:
                try:
                    answer = self.session.client.request_retrying(
                        "POST", path, json=self.sequence.body(type, payload, fields))
                except Conflict as exc:
                    if self.sequence.adopt(exc):
                        continue
                    raise
                return self.sequence.committed(answer)
