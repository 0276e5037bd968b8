"""Placement: which Raft group holds a session, and which nodes replicate a group.

Owns: the stable hash of a session id to a group and the deterministic score
that ranks write nodes per group (top N replicate it). Every node computes
the same answer with no coordination. Must not: look at liveness; the
Observer filters candidates, placement never changes with it.
"""

import functools
import hashlib


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@functools.lru_cache(maxsize=65536)
def group_for(session_id: str, num_groups: int) -> int:
    # Memoised: a tail open asks several times for its session (context, reads, the tail), and a
    # reconnect storm is thousands of opens of a few sessions; a blake2b each time was ~2.5% of one.
    return _hash64(session_id) % num_groups


def replicas_for(group_id: int, write_nodes, replication_factor: int, host_of=None) -> list:
    """The top ``replication_factor`` write nodes by score for ``group_id`` (stable order), never two
    on one host (``host_of(member)``: a node's workers are members on one host)."""
    if host_of is not None and len({host_of(node) for node in write_nodes}) == 1:
        members = sorted(write_nodes)  # one host's workers: groups dealt round, so each gets its share
        slot = group_id if isinstance(group_id, int) else _hash64(str(group_id))
        return [members[slot % len(members)]]
    ranked = sorted(write_nodes, key=lambda node: (_hash64(f"{group_id}\x00{node}"), node), reverse=True)
    if host_of is not None:
        hosts = set()
        ranked = [node for node in ranked if not (host_of(node) in hosts or hosts.add(host_of(node)))]
    return ranked[:max(1, min(replication_factor, len(ranked)))]
