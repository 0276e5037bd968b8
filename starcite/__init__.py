"""Starcite: durable, ordered session streams.

This package owns the whole node, in rooms by layer (docs/architecture.md
opens with the map):
- the edge: `starcite.api` (`http`, `auth`, `tails`, `server`) and `starcite.cli`;
- the data plane: `starcite.node` (the node as parts), `starcite.actors`,
  `starcite.adapters`, and the pure core `starcite.core` (rules, shapes, errors);
- the control plane: `starcite.cluster` (placement, routing, drain, the ops
  channel) and `starcite.peers` (the peer transport);
- beside every layer: `starcite.config` (settings) and `starcite.telemetry`
  (logs, metrics, redaction).

A lower layer never imports a higher one. It must not hold process-wide state
at import time: everything is built by `starcite.node.Node`.
"""

__version__ = "0.1.0"
