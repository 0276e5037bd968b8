"""`ArchiverActor` and its flush cycle: committed events -> archive -> `ack_archived`.

Owns: when a flush runs (one at a time, every flush interval) and what a
cycle does: for every group this node leads, take the unarchived hot events
of each pending session (at most `archive_batch_size` per session), write
their JSON lines, as the hot tier holds them, to the archive adapter idempotently, upsert the session record, then
commit `ack_archived` through Raft so every replica evicts them. Sessions are
flushed `adapter.flush_concurrency` at a time; when the archive looks down
(a write failed before any succeeded) the cycle stops starting new ones and
the next tick tries again. After the flushes, the cycle removes the archive
copies of the sessions deleted in the groups this node leads (`purge_deleted`:
the tombstones of the replicated state are its to-do list, so a new leader
or a restarted node resumes them; an outage leaves them for the next cycle)
and drops each tombstone, by a Raft command, once its copy is gone and the
tombstone is old enough (`SessionDeletions.tombstone_min_age_s`). A deleted
session is never flushed again: it has left the state the flush reads. Also owns the archive counters: rows and bytes (the encoded
event JSON written) attempted and newly inserted, failed writes, and the
duration of every cycle that had work.

Must not: block the actor handler (a cycle runs in its own greenlet and
reports back with `FlushDone`), or ever make an append wait on the archive:
an archive outage only delays eviction.
"""

import logging
import random
import time

import gevent
from gevent.pool import Pool
from thespian.actors import Actor

from starcite.actors import messages as m
from starcite.adapters import ArchiveUnavailable
from starcite.core.errors import StarciteError

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
            gevent.spawn(_run_cycle, self.node, self.myAddress)
        elif isinstance(msg, m.FlushDone):
            self.running = False
            self.last_stats = msg.stats


def _run_cycle(node, archiver):
    """One cycle in its own greenlet; `FlushDone` always follows, whatever happened."""
    stats = {}
    node.archiving = True  # a backup waits for this to clear before it copies
    try:
        stats = flush_cycle(node)
    except Exception:
        log.exception("archive flush cycle failed")
    finally:
        node.archiving = False
        node.tell(archiver, m.FlushDone(stats))


def flush_cycle(node) -> dict:
    """One archive pass over every group this node leads, then its deletions (`purge_deleted`). Returns
    counters for logs and tests."""
    stats = flush_pending(node)
    stats.update(purge_deleted(node))
    return stats


def purge_deleted(node, now=None) -> dict:
    """Delete the archive copy (and this node's cached chunks) of every deleted session of the groups
    this node leads; drop the tombstones of those whose copy is gone and whose delete is older than
    the tombstone's minimum age. Stops at the first archive failure (the archive is down: next cycle)."""
    stats = {"purged": 0, "purge_errors": 0, "tombstones_dropped": 0}
    deletions = node.deletions
    oldest_droppable = deletions_cutoff(deletions.tombstone_min_age_s, now)
    still_pending = set()
    for group_id in node.local_groups():
        done = []
        for session_id, deleted_at in deletions.pending(group_id):
            still_pending.add(session_id)
            droppable = deleted_at <= oldest_droppable
            if session_id in deletions.purged and not droppable:
                continue  # deleted once already; deleted again just before its tombstone goes
            try:
                node.run_io(node.cold.delete_session, session_id)
            except ArchiveUnavailable as exc:
                stats["purge_errors"] += 1
                node.metrics.archive_errors.inc()
                log.warning("archive deletion of %s failed (retried next cycle): %s", session_id, exc)
                break
            stats["purged"] += 1
            deletions.purged.add(session_id)
            if droppable:
                done.append(session_id)
        if done:
            try:
                stats["tombstones_dropped"] += deletions.forget_deleted(group_id, done)
                deletions.purged.difference_update(done)
            except StarciteError as exc:  # leadership moved: the new leader deletes again (idempotent) and drops them
                log.warning("dropping tombstones of group %s not committed: %s", group_id, exc.message)
        if stats["purge_errors"]:
            return stats
    deletions.purged &= still_pending
    return stats


def deletions_cutoff(min_age_s, now=None) -> str:
    """The newest ``deleted_at`` (the node's time format) whose tombstone may go: ``min_age_s`` ago."""
    moment = (time.time() if now is None else now) - min_age_s
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment % 1 * 1e6):06d}Z"


def flush_pending(node) -> dict:
    """The flush part of a cycle: every pending session of the groups this node leads."""
    pending = [item for group_id in node.local_groups() for item in node.pending_archive(group_id)]
    stats = {"sessions": 0, "rows": 0, "errors": 0}
    if not pending:
        return stats
    random.shuffle(pending)  # a session that keeps failing must not always go first
    concurrency = max(1, getattr(node.adapter, "flush_concurrency", 1))
    started = time.perf_counter()

    def flush_one(item):
        session_id = item[0]
        try:
            stats["rows"] += flush_session(node, *item)
            stats["sessions"] += 1
        except ArchiveUnavailable as exc:
            stats["errors"] += 1
            node.metrics.archive_errors.inc()
            log.warning("archive write failed for %s: %s", session_id, exc)
        except StarciteError as exc:  # e.g. leadership moved before ack_archived committed: next tick
            stats["errors"] += 1
            log.warning("archive ack for %s not committed: %s", session_id, exc.message)
        except Exception:
            stats["errors"] += 1
            node.metrics.archive_errors.inc()
            log.exception("archive flush failed for %s", session_id)

    pool = Pool(concurrency)
    try:
        for item in pending:
            pool.wait_available()
            if stats["errors"] and not stats["sessions"]:
                break  # nothing got through yet and something failed: the archive is down, try next tick
            pool.spawn(flush_one, item)
        pool.join()
    finally:
        pool.kill(block=False)
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
    lines = [(entry[0], entry[1].encode()) for entry in entries]  # the hot JSON is the archived line
    sizes = [len(line) for _seq, line in lines]
    metrics = node.metrics
    metrics.archive_attempted.inc(len(lines))
    metrics.archive_bytes_attempted.inc(sum(sizes))
    adapter = node.adapter
    inserted = node.run_io(adapter.write_lines, session_id, lines) or 0
    metrics.archive_inserted.inc(inserted)
    # Writes go in seq order, so the events already stored are a prefix (an earlier flush that
    # failed before its ack): the newly inserted ones are the last `inserted`.
    metrics.archive_bytes_inserted.inc(sum(sizes[len(sizes) - inserted:]) if inserted else 0)
    record = node.get_session(session_id, fresh=False)
    if record is not None:
        node.run_io(adapter.upsert_session, record)
        node.unindexed.discard(session_id)
    node.ack_archived(session_id, entries[-1][0])
    return len(lines)
