"""Starcite: durable, ordered session streams.

This package owns the whole node: the edge (`starcite.api`), the data plane
(`starcite.actors`, `starcite.adapters`, `starcite.rules`) and the control
plane (`starcite.placement`, the Observer, `starcite.ops`). It must not hold
process-wide state at import time: everything is built by `starcite.node`.
"""

__version__ = "0.1.0"
