"""The node's side of deleting sessions: what a replica drops when it applies a delete, the expiry timer.

Owns: `SessionDeletions`, the node's deletion part:
- `forget_locally(session_id)`: run by every replica once it has applied a
  delete (the state machine's ``on_deleted`` hook, from the hub): the
  session's tails close (WebSocket close code `CLOSE_SESSION_DELETED`, SSE
  ``event: error`` ``session_deleted``), its held long-polls wake (and answer
  404), and its chunks leave this node's read cache and cold memo;
- `expiry_tick(now)`: on each group this node leads, the sessions whose
  ``expires_at`` is at or before ``now`` are deleted by one ``expire`` Raft
  command carrying ``now`` (the decision time is in the log, as
  ``inserted_at`` is);
- the tombstones of the groups this node leads (`pending`), and how long a
  tombstone must live at least (`tombstone_min_age_s`), for the archiver,
  which deletes the archive copies and then drops the tombstones
  (`starcite.actors.archiver.purge_deleted`).

Must not: decide what a delete does to the state (`starcite.core.deletion`),
do archive I/O (the archiver does), parse HTTP, or block.
"""

import logging

from starcite.core import deletion
from starcite.core.errors import StarciteError
from starcite.core.rules import parse_result
from starcite.node.reads import ColdMemo

log = logging.getLogger("starcite.deletions")

# A WebSocket tail's close code when its session is deleted (reason "session_deleted"), one of the
# codes a tail ends with (`starcite.api.tails.tail_socket`).
CLOSE_SESSION_DELETED = 4410
EXPIRY_CHECK_INTERVAL_MS = 1000  # how often the leader of each group looks for expired sessions


class SessionDeletions:
    """``groups``: this node's replicas by group id; ``command(group_id, kind, args)``: a Raft command
    through the router; ``tails`` (`NodeTails`), ``long_polls`` (`LongPolls`), ``cold`` (the read cache),
    ``reads`` (`SessionReads`): what holds a session on this node; ``config``: the node's settings."""

    def __init__(self, groups, command, tails, long_polls, cold, reads, config):
        self.groups, self.command = groups, command
        self.tails, self.long_polls, self.cold, self.reads = tails, long_polls, cold, reads
        self.config = config
        self.purged = set()  # deleted sessions whose archive copy this node has deleted (the archiver's memo)

    def forget_locally(self, session_id):
        """This replica has deleted ``session_id``: close its tails, answer its long-polls, drop its caches."""
        self.tails.close_session(session_id, CLOSE_SESSION_DELETED, "session_deleted")
        self.long_polls.wake(session_id)
        self.cold.forget(session_id)
        self.reads.forget(session_id)

    def expiry_tick(self, now: str) -> int:
        """Delete the expired sessions of every group this node leads; returns how many were deleted."""
        deleted = 0
        for group_id, group in list(self.groups.items()):
            if not group.is_leader():
                continue
            due = deletion.expired(group.state, now)
            if not due:
                continue
            try:
                deleted += len(parse_result(self.command(group_id, "expire", (due, now)))[1])
            except StarciteError as exc:  # e.g. leadership moved: whoever leads now expires them
                log.warning("expiry of %d sessions of group %s not committed: %s", len(due), group_id, exc.message)
        return deleted

    def pending(self, group_id) -> list:
        """``[(session_id, deleted_at)]`` whose archive copies are to go, when this node leads the group."""
        group = self.groups.get(group_id)
        if group is None or not group.is_leader():
            return []
        return deletion.deletions_pending(group.state)

    def forget_deleted(self, group_id, session_ids):
        """Drop the tombstones of ``session_ids`` (their archive copies are gone)."""
        return parse_result(self.command(group_id, "forget_deleted", (list(session_ids),)))[1]

    @property
    def tombstone_min_age_s(self) -> float:
        """How long after its delete a tombstone stays, even once the archive copy is gone: longer than
        any router retry of a command sent before the delete (a create retried with its old request
        token then finds the tombstone, 409, and cannot bring the id back behind the delete's back), and
        than any read-cache entry or cold memo on any node (a session created again under the id never
        reads the deleted one's cached chunks)."""
        config = self.config
        return max(config.raft_timeout_ms, config.read_cache_ttl_ms) / 1000.0 + ColdMemo.MAX_AGE_S
