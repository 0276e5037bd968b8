"""The control plane: where sessions live, who serves a request, drain state, and the ops channel.

Owns: `placement` (session -> group -> replicas, by hash and score),
`routing` (which node serves a command or read; it sees this node only
through `starcite.node.local_replicas.LocalReplicas`), `control_plane` (the
control Raft group: cluster-wide drain), `remote_tails` (tails fed by another
node's replica), `replica_digests` (replicas compare what they applied), and
the ops console's channel (`ops_channel`, node side; `ops_client`, what the
CLI uses). The peer transport is `starcite.peers`. Must not: decide session
rules or import the edge (`starcite.api`).
"""
