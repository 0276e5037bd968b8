"""Placement: which Raft group holds a session, and which nodes replicate a group.

Owns: the stable hash of a session id to a group and the deterministic score
that ranks write nodes per group (top N replicate it). Every node computes
the same answer with no coordination. Must not: look at liveness; the
Observer filters candidates, placement never changes with it.
"""

import hashlib


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def group_for(session_id: str, num_groups: int) -> int:
    return _hash64(session_id) % num_groups


def replicas_for(group_id: int, write_nodes, replication_factor: int) -> list:
    """The top ``replication_factor`` write nodes by score for ``group_id`` (stable order)."""
    ranked = sorted(write_nodes, key=lambda node: (_hash64(f"{group_id}\x00{node}"), node), reverse=True)
    return ranked[:max(1, min(replication_factor, len(ranked)))]
