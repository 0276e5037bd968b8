"""The node: one Starcite node's data plane, assembled from named parts.

Owns: `Node` (`node.node`: the actor system, this node's Raft groups, the
archiver, the timers, appends and shutdown) and its parts, each with a narrow
interface: `reads` (cold then hot events, gap-free; the events page and its
long-poll hold), `tails` (opening tails and the catch-up tick), `views`
(readiness, the ops status, the metrics snapshot), `long_poll` (held
``wait_ms`` requests), `tier_reads` (the pure merge of archive and hot tier)
and `local_replicas` (what the router may ask of this node's replicas);
`backup` (`starcite backup`/`restore`: a consistent copy of the Raft
directory and local archive, taken by the running node or under its lock).
Must not: parse HTTP or know about auth (`starcite.api` does), or decide
session rules (`starcite.core.rules` does).
"""

from starcite.node.node import Node

__all__ = ["Node"]
