"""What the edge reads from a session's stream: committed events, cold then hot, gap-free.

Owns: `SessionReads`, the node's read part behind the tail's replay
(`read_events`) and the events endpoint (`read_page`, `events_page` with its
long-poll hold), and `ColdMemo`. It sees the node only through what it is
handed: a hot read (local replica or remote), a cold read (the read cache,
through the node's archive I/O slots), the long-poll registry, and whether
this node holds the session's group. Every event it reads leaves in today's
shape (`records.event_json_of`: events an earlier build stored are rendered
again). The merge of archived lines and hot
events is `starcite.node.tier_reads`; cold events that cannot be read are a
503 (`ArchiveReadError`), never a gap.

Must not: parse HTTP, know about auth, or change any state (the long-poll
registry, `starcite.node.long_poll`, only holds waiters).
"""

import collections
import time

from gevent.event import AsyncResult

from starcite.adapters import ArchiveUnavailable
from starcite.node.long_poll import wait_for_events
from starcite.core.records import event_json_of
from starcite.core.rules import RuleError
from starcite.node.tier_reads import ArchiveReadError, merge_cold_hot


class ColdMemo:
    """The last cold read of each of the `SESSIONS` most recently read sessions, when it held at most
    `LINES` lines: ``(from_seq, to_seq, lines)``; a read within that range is answered from it.

    Archived events never change, so lines read for a range stay right for any part of it (a gap
    the archive had then is served, and refused by `merge_cold_hot`, the same way). Bounded: at most
    SESSIONS x LINES event lines (a few MiB), dropped least recently used first."""

    SESSIONS = 64
    LINES = 256
    MAX_AGE_S = 10.0  # a storm's resumes come within seconds; a tombstone outlives it (`node.deletions`)

    def __init__(self, clock=time.monotonic):
        self.entries = collections.OrderedDict()  # session_id -> (from_seq, to_seq, lines, stored_at)
        self.clock = clock

    def get(self, session_id, from_seq, to_seq):
        entry = self.entries.get(session_id)
        if entry is None or from_seq < entry[0] or to_seq > entry[1]:
            return None
        if self.clock() - entry[3] > self.MAX_AGE_S:
            del self.entries[session_id]
            return None
        self.entries.move_to_end(session_id)
        if entry[0] == from_seq and entry[1] == to_seq:
            return entry[2]
        return [line for line in entry[2] if from_seq <= line[0] <= to_seq]

    def put(self, session_id, from_seq, to_seq, lines):
        if len(lines) > self.LINES:
            return
        self.entries[session_id] = (from_seq, to_seq, lines, self.clock())
        self.entries.move_to_end(session_id)
        while len(self.entries) > self.SESSIONS:
            self.entries.popitem(last=False)


class SessionReads:
    """The node's reads of committed events.

    ``read_hot(session_id, after_seq, limit, fresh)``: ``(archived_seq, last_seq, entries)`` or None for
    an unknown session (``fresh``: reflecting every write acknowledged before the call); ``read_cold_lines(session_id, from_seq, to_seq)``: archived ``[(seq, bytes)]``
    (may raise `ArchiveUnavailable`); ``long_polls``: the `LongPolls` registry; ``holds_group(session_id)``:
    whether a commit on this node's replica wakes a hold; ``stopping()``: the node is stopping."""

    def __init__(self, read_hot, read_cold_lines, long_polls, holds_group, stopping):
        self.read_hot, self.read_cold_lines = read_hot, read_cold_lines
        self.long_polls, self.holds_group, self.stopping = long_polls, holds_group, stopping
        self._cold_flights = {}  # (session, from, to) -> AsyncResult of the archive read in flight
        self._cold_memo = ColdMemo()  # the last small cold read per recently read session

    def forget(self, session_id):
        """Drop the cold memo of ``session_id`` (deleted)."""
        self._cold_memo.entries.pop(session_id, None)

    def read_events(self, session_id: str, after_seq: int, limit: int) -> list:
        """Up to ``limit`` committed ``(seq, json)`` after ``after_seq``, cold then hot, gap-free."""
        return self.read_page(session_id, after_seq, limit)[0]

    def read_page(self, session_id: str, after_seq: int, limit: int, fresh=False):
        """``(events, last_seq)``: `read_events` and the session's last_seq as that read saw it.
        ``fresh``: the page holds every event acknowledged before the call (a tail's replay reads
        without it: its open read the session fresh, and a tail never misses what comes later)."""
        hot = self.read_hot(session_id, after_seq, limit, fresh)
        if hot is None:
            raise RuleError(404, "session_not_found", f"Session {session_id} not found")
        archived_seq, last_seq, entries = hot
        if after_seq >= archived_seq:
            return [(seq, event_json_of(event_json)) for seq, event_json, _n in entries], last_seq
        upto = min(archived_seq, after_seq + limit)
        try:
            cold = self._read_cold(session_id, after_seq + 1, upto)
        except ArchiveUnavailable as exc:
            raise ArchiveReadError(f"Archive unavailable: {exc}") from None
        out = merge_cold_hot(session_id, after_seq, limit, last_seq, cold, entries)
        return [(seq, event_json_of(event_json)) for seq, event_json in out], last_seq

    def _read_cold(self, session_id, from_seq, to_seq) -> list:
        """Archived event lines ``[(seq, bytes)]`` ``from_seq..to_seq``. Identical reads in flight share one archive read:
        after a restart every tail resumes from the same seq, and the events committed while they
        were away are archived by then (the archive's last, partial chunk, which is not cached).
        The last small read of each of a few sessions is also kept (`ColdMemo`): a storm's later
        resumes ask for the same range once the first read is done, and get it without the archive
        (measured: every one of 10,000 resumes read cold, 417 of them from the disk)."""
        lines = self._cold_memo.get(session_id, from_seq, to_seq)
        if lines is not None:
            return lines
        key = (session_id, from_seq, to_seq)
        flight = self._cold_flights.get(key)
        if flight is not None:
            return flight.get()  # what the first reader got, or what it raised
        flight = self._cold_flights[key] = AsyncResult()
        try:
            events = self.read_cold_lines(session_id, from_seq, to_seq)
        except BaseException as exc:
            flight.set_exception(exc if isinstance(exc, Exception) else ArchiveUnavailable("read abandoned"))
            raise
        finally:
            del self._cold_flights[key]
        flight.set(events)
        self._cold_memo.put(session_id, from_seq, to_seq, events)
        return events

    def events_page(self, session_id: str, after_seq: int, limit: int, wait_ms: int = 0):
        """`read_page`, fresh, then held up to ``wait_ms`` while nothing follows ``after_seq`` (long-poll).

        A commit on this node's replica of the session's group wakes the hold at once; a
        node without a replica re-reads through the router (see `starcite.node.long_poll`)."""
        page = self.read_page(session_id, after_seq, limit, fresh=True)
        if page[0] or wait_ms <= 0 or self.stopping():
            return page

        def read():
            return self.read_page(session_id, after_seq, limit)
        return wait_for_events(self.long_polls, read, session_id, wait_ms / 1000.0, self.holds_group(session_id))
