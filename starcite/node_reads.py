"""What the edge reads from a session's stream: committed events, cold then hot, gap-free.

Owns: `NodeReads`, the mixin of `Node` behind the tail's replay
(`read_events`) and the events endpoint (`read_page`, `events_page` with its
long-poll hold). The merge of archived lines and hot events is
`starcite.tier_reads`; cold events that cannot be read are a 503
(`ArchiveReadError`), never a gap.

Must not: parse HTTP, know about auth, or change any state (the long-poll
registry, `starcite.long_poll`, only holds waiters).
"""

from gevent.event import AsyncResult

from starcite.adapters import ArchiveUnavailable
from starcite.long_poll import wait_for_events
from starcite.rules import RuleError
from starcite.tier_reads import ArchiveReadError, merge_cold_hot


class NodeReads:
    def read_events(self, session_id: str, after_seq: int, limit: int) -> list:
        """Up to ``limit`` committed ``(seq, json)`` after ``after_seq``, cold then hot, gap-free."""
        return self.read_page(session_id, after_seq, limit)[0]

    def read_page(self, session_id: str, after_seq: int, limit: int):
        """``(events, last_seq)``: `read_events` and the session's last_seq as that read saw it."""
        hot = self.read_hot(session_id, after_seq, limit)
        if hot is None:
            raise RuleError(404, "session_not_found", f"Session {session_id} not found")
        archived_seq, last_seq, entries = hot
        if after_seq >= archived_seq:
            return [(seq, event_json) for seq, event_json, _n in entries], last_seq
        upto = min(archived_seq, after_seq + limit)
        try:
            cold = self._read_cold(session_id, after_seq + 1, upto)
        except ArchiveUnavailable as exc:
            raise ArchiveReadError(f"Archive unavailable: {exc}") from None
        out = merge_cold_hot(session_id, after_seq, limit, last_seq, cold, entries)
        return out, last_seq

    def _read_cold(self, session_id, from_seq, to_seq) -> list:
        """Archived event lines ``[(seq, bytes)]`` ``from_seq..to_seq``. Identical reads in flight share one archive read:
        after a restart every tail resumes from the same seq, and the events committed while they
        were away are archived by then (the archive's last, partial chunk, which is not cached)."""
        key = (session_id, from_seq, to_seq)
        flight = self._cold_flights.get(key)
        if flight is not None:
            return flight.get()  # what the first reader got, or what it raised
        flight = self._cold_flights[key] = AsyncResult()
        try:
            events = self.run_io(self.cold.read_lines, session_id, from_seq, to_seq)
        except BaseException as exc:
            flight.set_exception(exc if isinstance(exc, Exception) else ArchiveUnavailable("read abandoned"))
            raise
        finally:
            del self._cold_flights[key]
        flight.set(events)
        return events

    def events_page(self, session_id: str, after_seq: int, limit: int, wait_ms: int = 0):
        """`read_page`, held up to ``wait_ms`` while nothing follows ``after_seq`` (long-poll).

        A commit on this node's replica of the session's group wakes the hold at once; a
        node without a replica re-reads through the router (see `starcite.long_poll`)."""
        def read():
            return self.read_page(session_id, after_seq, limit)
        if wait_ms <= 0 or self.stopping:
            return read()
        local = self.group_of(session_id) in self.groups
        return wait_for_events(self.long_polls, read, session_id, wait_ms / 1000.0, local)
