"""Typed exceptions of the Starcite SDK: one class per error code the service answers.

Owns: `StarciteError` (status, code, message, the response body) and its
subclasses, `error_for(status, body, headers)` which picks the class of an
error response, and the transport errors (`ConnectionFailed`,
`RequestTimeout`) raised when no answer came. Must not: do I/O or retry.
"""

from __future__ import annotations

from typing import Any, Mapping


class StarciteError(Exception):
    """An error answered by the service (``status`` set) or met on the way there (``status`` None)."""

    def __init__(self, status: int | None, code: str, message: str, body: Mapping[str, Any] | None = None,
                 retry_after: float | None = None):
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body: dict[str, Any] = dict(body or {})
        self.retry_after = retry_after


# -- by status ---------------------------------------------------------------------------------

class BadRequest(StarciteError):
    """400: the request is invalid (its ``code`` says which rule: invalid_event, invalid_cursor...)."""


class Unauthorized(StarciteError):
    """401: missing or invalid token."""


class TokenExpired(Unauthorized):
    """401 token_expired, or a tail closed with 4001."""


class Forbidden(StarciteError):
    """403: scope, session, tenant or actor refused."""


class NotFound(StarciteError):
    """404."""


class SessionNotFound(NotFound):
    """404 session_not_found."""


class MethodNotAllowed(StarciteError):
    """405."""


class Conflict(StarciteError):
    """409."""


class SessionExists(Conflict):
    """409 session_exists."""


class SessionDeleted(Conflict):
    """409 session_deleted: the id belongs to a deleted session whose archive copy is not gone yet (a
    create can use it again later); or a tail ended because its session was deleted (WebSocket close
    4410, SSE ``event: error``; ``status`` 404 then)."""


class ProducerSeqConflict(Conflict):
    """409 producer_seq_conflict: ``expected_producer_seq`` is the number the session expects next."""

    @property
    def expected_producer_seq(self) -> int | None:
        value = self.body.get("expected_producer_seq")
        return value if isinstance(value, int) else None


class ProducerReplayConflict(Conflict):
    """409 producer_replay_conflict: the producer_seq was used with different content."""


class ExpectedSeqConflict(Conflict):
    """409 expected_seq_conflict: the session's last_seq is not the expected_seq sent."""


class ExpectedVersionConflict(Conflict):
    """409 expected_version_conflict: the session's version is not the expected_version sent;
    ``current_version`` is the one it has."""

    @property
    def current_version(self) -> int | None:
        value = self.body.get("current_version")
        return value if isinstance(value, int) else None


class PayloadTooLarge(StarciteError):
    """413."""


class UpgradeRequired(StarciteError):
    """426."""


class Backpressure(StarciteError):
    """429 event_store_backpressure: ``retry_after`` seconds (from Retry-After) before trying again."""


class Unavailable(StarciteError):
    """503: no quorum, timeout, node stopping or archive unreadable; safe to retry."""


class RaftUnavailable(Unavailable):
    """503 raft_unavailable."""


class RaftTimeout(Unavailable):
    """503 raft_timeout."""


class ArchiveReadUnavailable(Unavailable):
    """503 archive_read_unavailable: cold events cannot be read now (never a gap)."""


class NodeStopping(Unavailable):
    """503 node_stopping."""


class ServerError(StarciteError):
    """Any other 5xx."""


class ConnectionFailed(StarciteError):
    """No answer: connection refused, reset or broken mid-request (``status`` None); retryable."""


class RequestTimeout(ConnectionFailed):
    """No answer within the client's timeout (``status`` None); retryable."""


BY_CODE: dict[str, type[StarciteError]] = {
    "token_expired": TokenExpired, "session_not_found": SessionNotFound, "session_exists": SessionExists,
    "session_deleted": SessionDeleted,
    "producer_seq_conflict": ProducerSeqConflict, "producer_replay_conflict": ProducerReplayConflict,
    "expected_seq_conflict": ExpectedSeqConflict, "expected_version_conflict": ExpectedVersionConflict,
    "event_store_backpressure": Backpressure,
    "raft_unavailable": RaftUnavailable, "raft_timeout": RaftTimeout,
    "archive_read_unavailable": ArchiveReadUnavailable, "node_stopping": NodeStopping,
}
BY_STATUS: dict[int, type[StarciteError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed, 409: Conflict,
    413: PayloadTooLarge, 426: UpgradeRequired, 429: Backpressure, 503: Unavailable,
}


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers.get("retry-after") or headers.get("Retry-After") or "")
    except ValueError:
        return None


def error_for(status: int, body: Any, headers: Mapping[str, str]) -> StarciteError:
    """The typed error of an error response (``body`` its decoded JSON, or anything else)."""
    body = body if isinstance(body, dict) else {}
    code = str(body.get("error") or f"http_{status}")
    message = str(body.get("message") or f"HTTP {status}")
    cls = BY_CODE.get(code) or BY_STATUS.get(status) or (ServerError if status >= 500 else StarciteError)
    return cls(status, code, message, body, _retry_after(headers))
