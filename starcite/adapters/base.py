"""The `ArchiveAdapter` interface every archive back end implements.

Owns: the contract (method names, argument shapes, idempotency and ordering
guarantees) and the shared error types. Must not: contain back-end code,
caching, or anything about Raft and actors.

Shapes
------
An *event* is the dict the API emits: ``seq`` (int >= 1), ``type``,
``payload`` (dict), ``actor``, ``producer_id``, ``producer_seq``, ``source``,
``metadata`` (dict), ``refs`` (dict), ``idempotency_key``, ``inserted_at``
(ISO-8601 UTC string). An *event line* is ``(seq, line)``: ``line`` is the
event's JSON (UTF-8 bytes, one line, ``seq`` its first key: the encoding the
hot tier holds and tails send). Adapters store lines and return them byte for
byte, keyed by ``(session_id, seq)``, so a cold read sends the archive's bytes
as they are; `write_events`/`read_events` are the same calls on dicts.

A *session record* is ``{id, title, metadata, last_seq, created_at,
updated_at, creator_principal?}``; ``metadata.tenant_id`` (when present) is
the tenant used for fencing.
"""

import abc

from starcite.adapters import chunks


class ArchiveUnavailable(Exception):
    """The archive could not be reached or answered with an error; retry later."""


class ArchiveConfigError(Exception):
    """The adapter's configuration is unusable (missing bucket, bad URL...)."""


class ArchiveAdapter(abc.ABC):
    """Durable archive of committed events and of session records.

    Every method may raise `ArchiveUnavailable`; none may raise anything else
    for I/O trouble. All methods are safe to call from several greenlets.

    ``blocking_io``: True when calls block their OS thread (disk I/O); the node
    then runs every call in gevent's hub threadpool, so the adapter must be
    thread-safe with real OS locks. False (network adapters): calls run on the
    hub and must yield cooperatively (monkey-patched sockets, a wait callback).
    ``flush_concurrency``: how many sessions the archiver flushes at once.
    """

    blocking_io = False
    flush_concurrency = 4

    @abc.abstractmethod
    def write_lines(self, session_id: str, lines: list) -> int:
        """Store ``[(seq, line)]`` (ascending, contiguous seqs) idempotently, each line as it is.

        Re-writing events already stored changes nothing and is not an error
        (the stored line wins). Returns how many of ``lines`` were newly stored.
        """

    @abc.abstractmethod
    def read_lines(self, session_id: str, from_seq: int, to_seq: int) -> list:
        """``[(seq, line)]`` with ``from_seq <= seq <= to_seq``, ascending by seq (missing ones omitted).

        Stored bytes that are torn or do not belong where they are stored raise
        `ArchiveUnavailable`: a wrong event is never returned.
        """

    def write_events(self, session_id: str, events: list) -> int:
        """`write_lines` of event dicts (encoded the one way events are)."""
        return self.write_lines(session_id, chunks.event_lines(events))

    def read_events(self, session_id: str, from_seq: int, to_seq: int) -> list:
        """`read_lines`, each line decoded to its event dict."""
        return chunks.decode_lines(self.read_lines(session_id, from_seq, to_seq))

    @abc.abstractmethod
    def upsert_session(self, record: dict) -> None:
        """Insert or replace the session record ``record['id']``."""

    @abc.abstractmethod
    def get_session(self, session_id: str):
        """The session record, or None."""

    @abc.abstractmethod
    def list_sessions(self, limit: int, cursor=None, tenant_id=None, metadata_filters=None):
        """One page of session records ordered by id.

        Returns ``(records, next_cursor)``; ``next_cursor`` is an opaque string or
        None when there are no more. ``cursor`` is a value previously returned.
        Walking the cursors yields every matching session exactly once.
        """

    @abc.abstractmethod
    def delete_session(self, session_id: str) -> None:
        """Remove every event and the record of ``session_id``; afterwards no read returns anything for
        it and no list shows it. Idempotent: deleting a missing or already deleted session succeeds. An
        outage raises `ArchiveUnavailable` and may leave part of it deleted (a retry finishes the job)."""

    def check(self) -> None:
        """Raise `ArchiveConfigError`/`ArchiveUnavailable` if the archive is unusable at start-up."""

    def close(self) -> None:
        """Release connections."""
