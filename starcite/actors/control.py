"""The control group's replicated state: which write nodes an operator has drained.

Owns: `ControlStateMachine`, the state machine of one small Raft group
replicated on the write nodes (`CONTROL_GROUP`), so every node agrees on the
drain state and it survives restarts (it is in the Raft journal and
snapshots like any group's state). Its apply hook tells the node when the
drained set changes (the node also re-reads it every second, which covers
a snapshot load). Must not: route, or decide liveness (that is the
Observer's, and liveness is never replicated).
"""

from pysyncobj import SyncObjConsumer, replicated

CONTROL_GROUP = "control"
CONTROL_REPLICAS = 5  # at most: the control group is replicated on this many write nodes


class ControlStateMachine(SyncObjConsumer):
    def __init__(self, on_change):
        self.on_change = on_change   # set before SyncObjConsumer.__init__: local, never replicated
        super().__init__()
        self.drained = set()

    @replicated
    def set_drain(self, node, draining):
        (self.drained.add if draining else self.drained.discard)(node)
        self.on_change(frozenset(self.drained))
        return sorted(self.drained)
