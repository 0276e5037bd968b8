"""The errors a Raft group answers with: every one is a 503 the router may retry elsewhere.

Owns: `RaftUnavailable` (no leader, lost leadership, timed out), `NotLeader`
(this replica does not lead; it names the leader it knows) and `raft_error`,
the mapping from pysyncobj's failure reasons.

Must not: decide when to retry (`starcite.cluster.routing` does) or know
about sessions.
"""

from pysyncobj import FAIL_REASON

from starcite.core.errors import StarciteError


class RaftUnavailable(StarciteError):
    """The group could not commit: no leader, lost leadership, or timed out (503; retry)."""

    def __init__(self, code: str, message: str):
        super().__init__(503, code, message, {"Retry-After": "1"})


class NotLeader(RaftUnavailable):
    """This replica is not the group's leader; ``hint`` names the leader it knows (or None)."""

    def __init__(self, group_id, hint):
        super().__init__("raft_unavailable", f"No Raft leader for group {group_id} on this node")
        self.hint = hint


def raft_error(reason: int) -> RaftUnavailable:
    if reason == FAIL_REASON.MISSING_LEADER:
        return RaftUnavailable("raft_unavailable", "No Raft leader for this session's group")
    if reason == FAIL_REASON.QUEUE_FULL:
        return RaftUnavailable("raft_unavailable", "Raft command queue is full")
    return RaftUnavailable("raft_unavailable", f"Raft leadership changed before commit (reason {reason})")


def raft_timeout(what: str) -> RaftUnavailable:
    return RaftUnavailable("raft_timeout", what)
