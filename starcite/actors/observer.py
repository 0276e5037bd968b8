"""`ObserverActor`: write-node liveness as seen by this node.

Owns: each write node's routing status — ready, suspect (lost visibility),
lost (suspect for more than `LOST_AFTER` seconds), draining (operator set,
sticky until undrain). Liveness changes routing only, never Raft membership.
Must not: do I/O or touch Raft; peers' visibility arrives as `NodeSeen`.

Messages: NodeSeen, SetDrain (replied with the new status map),
ObserverQuery (replied with ``{node: status}``).
"""

import time

from thespian.actors import Actor

from starcite.actors import messages as m

LOST_AFTER = 120.0


class ObserverActor(Actor):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.suspect_since = {}   # node -> monotonic time visibility was lost
        self.known = set()
        self.draining = set()

    def receiveMessage(self, msg, sender):
        if isinstance(msg, m.NodeSeen):
            self.known.add(msg.node)
            if msg.alive:
                self.suspect_since.pop(msg.node, None)
            else:
                self.suspect_since.setdefault(msg.node, time.monotonic())
        elif isinstance(msg, m.SetDrain):
            self.known.add(msg.node)
            (self.draining.add if msg.draining else self.draining.discard)(msg.node)
            msg.reply.set(self.statuses())
        elif isinstance(msg, m.ObserverQuery):
            msg.reply.set(self.statuses())

    def status_of(self, node, now):
        if node in self.draining:
            return "draining"
        since = self.suspect_since.get(node)
        if since is None:
            return "ready"
        return "lost" if now - since > LOST_AFTER else "suspect"

    def statuses(self) -> dict:
        now = time.monotonic()
        return {node: self.status_of(node, now) for node in sorted(self.known)}
