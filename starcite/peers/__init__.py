"""The peer transport (control plane): one authenticated port per node for all node-to-node traffic.

Owns: `handshake` (the secret-keyed handshake, before anything is decoded),
`link` (`PeerHub`: the links to every other node, calls and one-way sends
over them) and `raft_transport` (pysyncobj's groups multiplexed over those
links). Must not: know what a message means beyond its channel, decide
routing (`starcite.cluster.routing`) or import the node or the edge.
"""
