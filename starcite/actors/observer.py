"""`ObserverActor`: write-node liveness as seen by this node.

Owns: each write node's routing status — ready, suspect (this node lost
visibility: the peer link is down, which includes heartbeats stopping),
lost (suspect for longer than `STARCITE_OBSERVER_LOST_AFTER_MS`, default
120 s), draining (set by an operator and agreed by the cluster through the
control group, so it is sticky across reconnects and restarts and the same
on every node). Liveness changes routing only, never Raft membership.
Must not: do I/O or touch Raft; visibility arrives as `NodeSeen`, the
agreed drain state as `DrainState`.

Messages: ConfigureObserver, NodeSeen, DrainState, ObserverQuery (replied
with ``{node: status}``).
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
        self.lost_after = LOST_AFTER

    def receiveMessage(self, msg, sender):
        if isinstance(msg, m.NodeSeen):
            self.known.add(msg.node)
            if msg.alive:
                self.suspect_since.pop(msg.node, None)
            else:
                self.suspect_since.setdefault(msg.node, time.monotonic())
        elif isinstance(msg, m.DrainState):
            self.draining = set(msg.drained)
        elif isinstance(msg, m.ConfigureObserver):
            self.lost_after = msg.lost_after
        elif isinstance(msg, m.ObserverQuery):
            msg.reply.set(self.statuses())

    def status_of(self, node, now):
        if node in self.draining:
            return "draining"
        since = self.suspect_since.get(node)
        if since is None:
            return "ready"
        return "lost" if now - since > self.lost_after else "suspect"

    def statuses(self) -> dict:
        now = time.monotonic()
        return {node: self.status_of(node, now) for node in sorted(self.known)}
