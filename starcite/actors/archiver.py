"""`ArchiverActor` and its flush cycle: committed events -> archive -> `ack_archived`.

Owns: when a flush runs (one at a time, every flush interval) and what a
cycle does: for every group this node leads, take the unarchived hot events
of each pending session (at most `archive_batch_size` per session), write
them to the archive adapter idempotently, upsert the session record, then
commit `ack_archived` through Raft so every replica evicts them.

Must not: block the actor handler (a cycle runs in its own greenlet and
reports back with `FlushDone`), or ever make an append wait on the archive:
an archive outage only delays eviction.
"""

import json
import logging
import time

import gevent
from thespian.actors import Actor

from starcite.actors import messages as m
from starcite.adapters import ArchiveUnavailable

log = logging.getLogger("starcite.archiver")


class ArchiverActor(Actor):
    """Messages: StartArchiver, ArchiveTick (from the node's timer), FlushDone (from its cycle)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.node = None
        self.running = False
        self.last_stats = {}

    def receiveMessage(self, msg, sender):
        if isinstance(msg, m.StartArchiver):
            self.node = msg.node
        elif isinstance(msg, m.ArchiveTick) and self.node is not None and not self.running:
            self.running = True
            me = self.myAddress
            node = self.node
            gevent.spawn(lambda: node.tell(me, m.FlushDone(flush_cycle(node))))
        elif isinstance(msg, m.FlushDone):
            self.running = False
            self.last_stats = msg.stats


def flush_cycle(node) -> dict:
    """One archive pass over every group this node leads. Returns counters for logs and tests."""
    started = time.perf_counter()
    stats = {"sessions": 0, "rows": 0, "errors": 0}
    try:
        for group_id in node.local_groups():
            for session_id, archived_seq, last_seq in node.pending_archive(group_id):
                try:
                    stats["rows"] += flush_session(node, session_id, archived_seq, last_seq)
                    stats["sessions"] += 1
                except ArchiveUnavailable as exc:
                    stats["errors"] += 1
                    node.metrics.archive_errors.inc()
                    log.warning("archive write failed for %s: %s", session_id, exc)
                    return stats  # the archive is down: try again next tick
                except Exception:
                    stats["errors"] += 1
                    log.exception("archive flush failed for %s", session_id)
    finally:
        node.metrics.flush_duration.observe((time.perf_counter() - started) * 1000.0)
    return stats


def flush_session(node, session_id, archived_seq, last_seq) -> int:
    upto = min(last_seq, archived_seq + node.config.archive_batch_size)
    hot = node.read_hot(session_id, archived_seq, upto - archived_seq)
    if hot is None:
        return 0
    _archived, _last, entries = hot
    entries = [entry for entry in entries if entry[0] <= upto]
    if not entries:
        return 0
    events = [json.loads(entry[1]) for entry in entries]
    nbytes = sum(entry[2] for entry in entries)
    metrics = node.metrics
    metrics.archive_attempted.inc(len(events))
    metrics.archive_bytes_attempted.inc(nbytes)
    adapter = node.adapter
    inserted = node.run_io(adapter.write_events, session_id, events) or 0
    metrics.archive_inserted.inc(inserted)
    metrics.archive_bytes_inserted.inc(nbytes * inserted // len(events))
    record = node.get_session(session_id)
    if record is not None:
        node.run_io(adapter.upsert_session, record)
    node.ack_archived(session_id, entries[-1][0])
    return len(events)
