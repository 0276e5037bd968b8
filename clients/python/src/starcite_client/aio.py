"""The asyncio client: `AsyncStarcite`, its `AsyncSession` handles and their `AsyncProducer`.

Owns: HTTP over one `httpx.AsyncClient`, the retry loops of appends and page
reads (awaiting between attempts), and the following tails over a
WebSocket (`websockets.asyncio`) or SSE (an `httpx` stream fed to
`_sse.SseTail`), reconnecting from the last delivered seq. The same
decisions as the sync client (`_core`, `_sse`), awaited. Must not:
decide what to retry or which events to keep, or interleave two appends of
one producer (an `asyncio.Lock` orders them).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Callable, Mapping

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from starcite_client import _core, _sse
from starcite_client._core import AppendResult, Event, EventPage
from starcite_client.errors import Conflict, StarciteError


class AsyncStarcite(_core.ClientSettings):
    """`Starcite` for asyncio: the same calls, awaited (iterators are async iterators)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = _core.DEFAULT_TIMEOUT,
                 retry_for: float = _core.DEFAULT_RETRY_FOR):
        super().__init__(base_url, token, timeout, retry_for)
        self.http = httpx.AsyncClient(base_url=self.base_url, headers=self.headers, timeout=timeout)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> "AsyncStarcite":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def request(self, method: str, path: str, *, json: Any = None,
                      params: Mapping[str, Any] | None = None, timeout: float | None = None) -> Any:
        try:
            response = await self.http.request(method, path, json=json, params=params,
                                               timeout=timeout if timeout is not None else self.timeout)
        except httpx.TransportError as exc:
            raise _core.transport_error(exc) from exc
        return _core.result_of(response)

    async def request_retrying(self, method: str, path: str, *,
                         settled: Callable[[StarciteError], Any] | None = None, **kwargs: Any) -> Any:
        backoff, deadline = _core.Backoff(), time.monotonic() + self.retry_for
        retried = False
        while True:
            try:
                return await self.request(method, path, **kwargs)
            except StarciteError as exc:
                answer = settled(exc) if retried and settled is not None else None
                if answer is not None:
                    return answer
                delay = _core.retry_delay(exc, backoff, deadline)
                if delay is None:
                    raise
            retried = True
            await asyncio.sleep(delay)

    def session(self, session_id: str) -> "AsyncSession":
        return AsyncSession(self, session_id)

    async def create_session(self, id: str | None = None, title: str | None = None,
                             metadata: Mapping[str, Any] | None = None, ttl_seconds: int | None = None,
                             expires_at: str | None = None) -> "AsyncSession":
        body = _core.create_body(id, title, metadata, ttl_seconds, expires_at)
        record = await self.request("POST", "/v1/sessions", json=body)
        return AsyncSession(self, record["id"], record)

    async def delete_session(self, session_id: str) -> dict:
        """`Starcite.delete_session` for asyncio."""
        return await self.request_retrying("DELETE", _core.session_path(session_id),
                                           settled=_core.deleted_by_earlier_try(session_id))

    async def get_session(self, session_id: str) -> "AsyncSession":
        return AsyncSession(self, session_id, await self.request("GET", _core.session_path(session_id)))

    async def list_sessions(self, metadata: Mapping[str, str] | None = None, page_size: int = 100,
                            archived: bool | str = False) -> AsyncIterator["AsyncSession"]:
        cursor = None
        while True:
            page = await self.request("GET", "/v1/sessions", params=_core.list_params(page_size, cursor, metadata,
                                                                                      archived))
            for record in page["sessions"]:
                yield AsyncSession(self, record["id"], record)
            cursor = page["next_cursor"]
            if not cursor:
                return


class AsyncSession(_core.SessionHandle):
    """`Session` for asyncio."""

    client: AsyncStarcite

    async def refresh(self) -> "AsyncSession":
        self.data = await self.client.request("GET", _core.session_path(self.id))
        return self

    async def update(self, title: str | None = _core.UNSET, metadata: Mapping[str, Any] | None = None,
                     expected_version: int | None = None) -> "AsyncSession":
        """`Session.update` for asyncio."""
        self.data = await self.client.request("PATCH", _core.session_path(self.id),
                                              json=_core.patch_body(title, metadata, expected_version))
        return self

    async def archive(self) -> "AsyncSession":
        self.data = await self.client.request_retrying("POST", _core.session_path(self.id, "/archive"), json={})
        return self

    async def unarchive(self) -> "AsyncSession":
        self.data = await self.client.request_retrying("POST", _core.session_path(self.id, "/unarchive"), json={})
        return self

    async def delete(self) -> dict:
        return await self.client.delete_session(self.id)

    def producer(self, producer_id: str, next_seq: int = 1, resume: bool = False) -> "AsyncProducer":
        return AsyncProducer(self, _core.ProducerSequence(producer_id, next_seq, resume))

    async def events(self, cursor: int = 0, limit: int = 100, wait_ms: int = 0) -> EventPage:
        return await self.client.request_retrying("GET", _core.session_path(self.id, "/events"),
                                                  params=_core.events_params(cursor, limit, wait_ms),
                                                  timeout=_core.events_timeout(wait_ms, self.client.timeout))

    def tail(self, cursor: int = 0, batch_size: int = 100, follow: bool = True,
             transport: str = "websocket") -> AsyncIterator[Event]:
        """`Session.tail` as an async iterator."""
        self.check_transport(transport)
        if not follow:
            return self._read_to_end(cursor, batch_size)
        return self._follow_sse(cursor) if transport == "sse" else self._follow(cursor, batch_size)

    async def _read_to_end(self, cursor: int, limit: int) -> AsyncIterator[Event]:
        end = None
        while True:
            page = await self.events(cursor, limit)
            end = page["last_seq"] if end is None else end
            events, done = _core.page_until(page, end)
            for event in events:
                yield event
            if done:
                return
            cursor = events[-1]["seq"]

    async def _follow(self, cursor: int, batch_size: int) -> AsyncIterator[Event]:
        position, backoff = _core.TailPosition(cursor), _core.Backoff(maximum=_core.TAIL_BACKOFF_MAX)
        headers = self.client.headers
        while True:
            url = _core.tail_url(self.client.base_url, self.id, position.last_seq, batch_size)
            try:
                async with connect(url, additional_headers=headers, open_timeout=self.client.timeout,
                                   max_size=None) as socket:
                    async for message in socket:
                        events = position.accept(message)
                        backoff.reset()
                        for event in events:
                            yield event
            except (InvalidStatus, ConnectionClosed) as exc:
                _core.websocket_tail_ended(exc)
            except (OSError, TimeoutError, WebSocketException, _core.TailGap):
                pass
            await asyncio.sleep(backoff.next_delay())

    async def _follow_sse(self, cursor: int) -> AsyncIterator[Event]:
        tail = _sse.SseTail(self.id, cursor, self.client.timeout)
        while True:
            try:
                async with self.client.http.stream(**tail.request()) as response:
                    tail.opened(response.status_code, response.headers,
                                await response.aread() if response.status_code >= 400 else b"")
                    async for chunk in response.aiter_bytes():
                        for event in tail.feed(chunk):
                            yield event
            except (httpx.TransportError, _core.TailReconnect):
                pass  # reconnect from the last delivered seq (so does the stream's end)
            await asyncio.sleep(tail.next_delay())


class AsyncProducer(_core.ProducerHandle):
    """`Producer` for asyncio."""

    session: AsyncSession

    def __init__(self, session: AsyncSession, sequence: _core.ProducerSequence):
        super().__init__(session, sequence)
        self._lock = asyncio.Lock()

    async def append(self, type: str, payload: Mapping[str, Any], **fields: Any) -> AppendResult:
        """`Producer.append`, awaited."""
        path = _core.session_path(self.session.id, "/append")
        async with self._lock:
            while True:
                try:
                    answer = await self.session.client.request_retrying(
                        "POST", path, json=self.sequence.body(type, payload, fields))
                except Conflict as exc:
                    if self.sequence.adopt(exc):
                        continue
                    raise
                return self.sequence.committed(answer)
