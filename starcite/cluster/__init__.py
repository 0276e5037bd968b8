"""The cluster's control-plane plumbing: the peer port, the Raft transport over it, and routing.

Owns nothing itself; see `peer_link` (authenticated connections between
nodes), `raft_transport` (pysyncobj groups multiplexed over those links) and
`routing` (which node serves a request). Must not: decide session rules.
"""
