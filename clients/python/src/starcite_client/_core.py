"""What the sync and asyncio clients share: requests as data, answers as results, retry and tail state.

Owns: building paths, query parameters and bodies; turning an `httpx`
response (or transport error) into a result or a typed error; the retry
policy (`Backoff`: bounded exponential delays with jitter; `retry_delay`:
whether an error is retried and after how long); the producer's sequence
(`ProducerSequence`); and the tail's position (`TailPosition`: never an
event twice, never a skipped one; `TailReconnect`: connect again from
there). The SSE stream's parsing and handling are `_sse`'s. Must not: do
I/O or sleep, so both flavours (`client`, `aio`) run the same decisions
with their own I/O.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypedDict
from urllib.parse import quote, urlencode

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus

from starcite_client.errors import (ConnectionFailed, ProducerReplayConflict, ProducerSeqConflict, RequestTimeout,
                                    SessionDeleted, SessionNotFound, StarciteError, TokenExpired, Unavailable,
                                    error_for)

DEFAULT_TIMEOUT = 10.0  # seconds per HTTP request
DEFAULT_RETRY_FOR = 30.0  # seconds an append (or a page read) keeps retrying
TAIL_BACKOFF_MAX = 5.0  # seconds: the longest wait between two tail reconnects
LONG_POLL_SLACK = 5.0  # seconds added to a long-poll's wait_ms for its HTTP timeout


class Event(TypedDict, total=False):
    seq: int
    cursor: int  # = seq (absent from the events of a server older than PATCH)
    type: str
    payload: dict[str, Any]
    actor: str | None
    producer_id: str
    producer_seq: int
    source: str | None  # absent when the append had none
    metadata: dict[str, Any]
    refs: dict[str, Any]
    idempotency_key: str | None
    inserted_at: str


class EventPage(TypedDict):
    events: list[Event]
    next_cursor: int
    last_seq: int


@dataclass(frozen=True)
class AppendResult:
    seq: int
    last_seq: int
    deduped: bool
    producer_id: str
    producer_seq: int


# -- requests as data ---------------------------------------------------------------------------

def session_path(session_id: str, tail: str = "") -> str:
    """The path of a session (its id percent-encoded as one path segment)."""
    return f"/v1/sessions/{quote(session_id, safe='')}{tail}"


def headers_for(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def create_body(session_id: str | None, title: str | None, metadata: Mapping[str, Any] | None,
                ttl_seconds: int | None = None, expires_at: str | None = None) -> dict:
    """``expires_at``: an RFC 3339 time with an offset; with ``ttl_seconds`` too, the earlier wins."""
    return given(id=session_id, title=title, metadata=None if metadata is None else dict(metadata),
                 ttl_seconds=ttl_seconds, expires_at=expires_at)


def given(**fields: Any) -> dict[str, Any]:
    """A request body of the fields that are not None."""
    return {name: value for name, value in fields.items() if value is not None}


def deleted_by_earlier_try(session_id: str) -> Callable[[StarciteError], Any]:
    """What a DELETE's error means after a retry: its 404 says an earlier try, whose answer was lost,
    deleted the session (``deleted_at`` then unknown); anything else is raised."""
    def settled(exc: StarciteError) -> Any:
        if isinstance(exc, SessionNotFound):
            return {"id": session_id, "deleted": True, "deleted_at": None}
        return None
    return settled


UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()  # "not given", where None means "clear"


def patch_body(title: Any, metadata: Mapping[str, Any] | None, expected_version: int | None) -> dict:
    """A PATCH body: ``title`` unless `UNSET` (None clears it), ``metadata`` (merged shallowly) unless None."""
    body = given(metadata=None if metadata is None else dict(metadata), expected_version=expected_version)
    if title is not UNSET:
        body["title"] = title
    return body


ARCHIVED = {False: "false", True: "true", "all": "all"}  # list_sessions(archived=...) -> the query value


def list_params(limit: int, cursor: str | None, metadata: Mapping[str, str] | None,
                archived: bool | str = False) -> dict[str, Any]:
    if archived not in ARCHIVED:
        raise ValueError(f"archived must be False, True or 'all', not {archived!r}")
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    if archived is not False:
        params["archived"] = ARCHIVED[archived]
    for key, value in (metadata or {}).items():
        params[f"metadata.{key}"] = value
    return params


def events_params(cursor: int, limit: int, wait_ms: int) -> dict[str, int]:
    return {"cursor": cursor, "limit": limit, "wait_ms": wait_ms}


def events_timeout(wait_ms: int, timeout: float) -> float:
    return timeout + wait_ms / 1000.0 + (LONG_POLL_SLACK if wait_ms else 0.0)


def tail_url(base_url: str, session_id: str, cursor: int, batch_size: int) -> str:
    """The WebSocket URL of a tail from ``cursor`` (http -> ws, https -> wss)."""
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://"):]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://"):]
    query = urlencode({"cursor": cursor, "batch_size": batch_size})
    return f"{base}{session_path(session_id, '/tail')}?{query}"


# -- answers as results -------------------------------------------------------------------------

def result_of(response: httpx.Response) -> Any:
    """The decoded JSON of a 2xx answer; the typed error of any other."""
    if response.status_code < 400:
        return response.json()
    try:
        body = response.json()
    except ValueError:
        body = None
    raise error_for(response.status_code, body, response.headers)


def transport_error(exc: httpx.TransportError) -> ConnectionFailed:
    """A request that got no answer, as a typed (retryable) error."""
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeout(None, "timeout", f"no answer in time: {exc!r}")
    return ConnectionFailed(None, "connection_failed", f"no answer: {exc!r}")


def handshake_error(status: int, body: bytes, headers: Mapping[str, str]) -> StarciteError:
    """The typed error of a refused WebSocket handshake."""
    try:
        decoded = json.loads(body or b"null")
    except ValueError:
        decoded = None
    return error_for(status, decoded, headers)


# -- retry policy -------------------------------------------------------------------------------

class Backoff:
    """Exponential delays from ``initial`` up to ``maximum`` seconds, each jittered to 50..100 %."""

    def __init__(self, initial: float = 0.05, maximum: float = 2.0, rng: Callable[[], float] = random.random):
        self.initial, self.maximum, self.rng = initial, maximum, rng
        self.attempts = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * (2 ** self.attempts))
        self.attempts += 1
        return delay * (0.5 + 0.5 * self.rng())

    def reset(self) -> None:
        self.attempts = 0


def is_retryable(exc: BaseException) -> bool:
    """503s and requests that got no answer: the same request again is safe (appends dedupe)."""
    return isinstance(exc, (Unavailable, ConnectionFailed))


def websocket_tail_ended(exc: InvalidStatus | ConnectionClosed) -> None:
    """A WebSocket tail's connection ended with ``exc``: raise the typed error that ends the tail
    (a refusal that a retry cannot change, or the 4001 close of an expired token), or return, and
    the caller reconnects from the last delivered seq."""
    if isinstance(exc, InvalidStatus):
        error = handshake_error(exc.response.status_code, exc.response.body, exc.response.headers)
        if not is_retryable(error):
            raise error from None
    elif exc.rcvd is not None and exc.rcvd.code == 4001:
        raise TokenExpired(401, "token_expired", exc.rcvd.reason or "token expired") from None
    elif exc.rcvd is not None and exc.rcvd.code == 4410:
        raise SessionDeleted(404, "session_deleted", exc.rcvd.reason or "session deleted") from None


def retry_delay(exc: BaseException, backoff: Backoff, deadline: float) -> float | None:
    """Seconds to wait before retrying after ``exc``, or None when it must be raised."""
    if not is_retryable(exc):
        return None
    delay = backoff.next_delay()
    if isinstance(exc, StarciteError) and exc.retry_after:
        delay = max(delay, min(exc.retry_after, backoff.maximum))
    if time.monotonic() + delay > deadline:
        return None
    return delay


# -- producer and tail state --------------------------------------------------------------------

class ProducerSequence:
    """The producer_seq of the next append. One append at a time per producer.

    ``resume``: a restarted producer does not know where it stopped; its first
    `producer_seq_conflict` moves it to the ``expected_producer_seq`` the
    session names (a `producer_replay_conflict`: to the number after the one
    sent), once, and the append is sent again with it. Only for
    producers whose unacknowledged last event may be sent again as a new one.
    """

    def __init__(self, producer_id: str, next_seq: int = 1, resume: bool = False):
        self.producer_id = producer_id
        self.next_seq = next_seq
        self.resume = resume

    def body(self, event_type: str, payload: Mapping[str, Any], fields: Mapping[str, Any]) -> dict:
        return {**fields, "type": event_type, "payload": dict(payload), "producer_id": self.producer_id,
                "producer_seq": self.next_seq}

    def adopt(self, exc: StarciteError) -> bool:
        """True when a resuming producer moved on from ``exc`` (send again with `next_seq`): a
        `ProducerSeqConflict` names the expected number; a `ProducerReplayConflict` says the
        number sent is the last one used, so the next follows it."""
        if not self.resume:
            return False
        if isinstance(exc, ProducerSeqConflict) and exc.expected_producer_seq is not None:
            self.next_seq = exc.expected_producer_seq
        elif isinstance(exc, ProducerReplayConflict):
            self.next_seq += 1
        else:
            return False
        self.resume = False
        return True

    def committed(self, answer: Mapping[str, Any]) -> AppendResult:
        result = AppendResult(answer["seq"], answer["last_seq"], answer["deduped"], self.producer_id,
                              self.next_seq)
        self.next_seq += 1
        self.resume = False
        return result


class TailReconnect(Exception):
    """The tail must connect again from the last delivered seq (a gap, a retryable refusal or stream error)."""


class TailGap(TailReconnect):
    """A frame skipped a seq: reconnect from the last delivered one rather than skip it."""


class TailPosition:
    """The last seq delivered; `accept` keeps only the events that follow it, in order."""

    def __init__(self, cursor: int):
        self.last_seq = cursor

    def accept(self, message: str | bytes) -> list[Event]:
        """The new events of one frame (an event or a list of them). A frame with a gap delivers
        none of them, so the reconnect from `last_seq` replays them all."""
        decoded = json.loads(message)
        events = decoded if isinstance(decoded, list) else [decoded]
        fresh: list[Event] = []
        last_seq = self.last_seq
        for event in events:
            seq = event["seq"]
            if seq <= last_seq:
                continue  # already delivered (a replay overlapping what was seen)
            if seq != last_seq + 1:
                raise TailGap(f"expected seq {last_seq + 1}, got {seq}")
            fresh.append(event)
            last_seq = seq
        self.last_seq = last_seq
        return fresh


def page_until(page: EventPage, end: int) -> tuple[list[Event], bool]:
    """The events of a `follow=False` page up to ``end``, and whether the end is reached."""
    events = [event for event in page["events"] if event["seq"] <= end]
    return events, not events or events[-1]["seq"] >= end


TRANSPORTS = ("websocket", "sse")  # of a following tail; `follow=False` reads pages either way


# -- what the sync and asyncio classes share (their I/O differs, their state does not) ----------

class ClientSettings:
    """Where the service is and how long to wait: the part of both clients that does no I/O."""

    def __init__(self, base_url: str, token: str | None, timeout: float, retry_for: float):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retry_for = retry_for

    @property
    def headers(self) -> dict[str, str]:
        return headers_for(self.token)


class SessionHandle:
    """``id`` and ``data`` (the session's record as last read; empty for a bare handle)."""

    def __init__(self, client: Any, session_id: str, data: Mapping[str, Any] | None = None):
        self.client = client
        self.id = session_id
        self.data: dict[str, Any] = dict(data or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"

    @staticmethod
    def check_transport(transport: str) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r} (one of {', '.join(TRANSPORTS)})")


class ProducerHandle:
    """A session and the `ProducerSequence` of one producer_id."""

    def __init__(self, session: Any, sequence: ProducerSequence):
        self.session = session
        self.sequence = sequence

    @property
    def producer_id(self) -> str:
        return self.sequence.producer_id

    @property
    def next_seq(self) -> int:
        return self.sequence.next_seq
