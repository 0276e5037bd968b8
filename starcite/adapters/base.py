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

A *session record* is a JSON-able dict with a non-empty string ``id``: today
``{id, title, metadata, last_seq, created_at, updated_at, creator_principal?}``
and whatever else the node keeps about a session it evicts (version, the
archived flag, the producers' dedupe state...). Adapters treat it as opaque
JSON except ``id``, ``metadata.tenant_id`` (when present, the tenant used for
fencing) and ``metadata`` (the list filters). Records are listed in
`ArchiveAdapter.list_key` order of their ids.

Failures: every outage (unreachable, timed out, refused, torn bytes) is
`ArchiveUnavailable`, never another exception and never an empty answer that
would read as "no such session"; the node answers it on reads as ``503
archive_read_unavailable`` (`starcite.node.tier_reads.ArchiveReadError`).
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

    # -- session records ------------------------------------------------------

    @abc.abstractmethod
    def write_session_records(self, records: list) -> None:
        """Store each record under its ``id`` (a later write replaces an earlier one; re-writing the
        same record changes nothing). Within one call a later record of the same id wins."""

    @abc.abstractmethod
    def read_session_record(self, session_id: str):
        """The stored record of ``session_id`` (a fresh dict), or None when there is none."""

    @abc.abstractmethod
    def list_session_records(self, after_id=None, limit: int = 100, tenant_id=None, metadata_filters=None,
                             predicate=None):
        """One page of records in `list_key` order, each after ``after_id`` (None: from the start).

        Only records of ``tenant_id`` (None: any), whose metadata holds every ``metadata_filters``
        value (compared as query strings) and for which ``predicate(record)`` (None: always) is true.
        Returns ``(records, next_after_id)``: ``next_after_id`` is None only when no further record
        can match; a page may be short (a back end bounds how much it scans per call), so walk until
        it is None. Walking yields every matching record exactly once.
        """

    def list_key(self, session_id: str):
        """The sort key of the list order (ids in code-point order unless a back end says otherwise):
        the node merges its in-memory sessions into an archive page by it."""
        return session_id

    @abc.abstractmethod
    def delete_session(self, session_id: str) -> None:
        """Remove every event and the record of ``session_id``; afterwards no read returns anything for
        it. Idempotent: deleting a missing or already deleted session succeeds. An outage raises
        `ArchiveUnavailable` and may leave part of it deleted (a retry finishes the job)."""

    # The names the node used before records were batched: each is one call of the above.

    def upsert_session(self, record: dict) -> None:
        """Insert or replace the session record ``record['id']``."""
        self.write_session_records([record])

    def get_session(self, session_id: str):
        """The session record, or None."""
        return self.read_session_record(session_id)

    def list_sessions(self, limit: int, cursor=None, tenant_id=None, metadata_filters=None, predicate=None):
        """`list_session_records` behind an opaque cursor: ``(records, next_cursor)``.

        ``cursor`` is a value previously returned (`chunks.InvalidCursor` for anything a cursor
        cannot be); ``next_cursor`` is None when there are no more.
        """
        if limit < 1:
            raise ValueError("limit must be >= 1")
        after = chunks.decode_cursor(cursor) if cursor is not None else None
        records, next_after = self.list_session_records(after, limit, tenant_id, metadata_filters, predicate)
        return records, (chunks.encode_cursor(next_after) if next_after is not None else None)

    def check(self) -> None:
        """Raise `ArchiveConfigError`/`ArchiveUnavailable` if the archive is unusable at start-up."""

    def close(self) -> None:
        """Release connections."""
