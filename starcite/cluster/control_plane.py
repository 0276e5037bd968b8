"""The control plane of a node: drain state agreed by the cluster, and what draining does.

Owns: starting this node's replica of the control group (on the write nodes
that replicate it), the drain commands (`set_drain`, a Raft command of the
control group routed to its leader like any command), keeping the Observer
and the node's own flags in step with the agreed drain state (on every
change, and every `REFRESH` seconds, which also covers a snapshot load and
router-only nodes, which read it from a replica), moving this node's
leaderships away while it is drained (pysyncobj's `transferLeadership`, so a
drain costs no election timeout) and otherwise handing each group it leads to
the group's preferred leader (leaders spread over the nodes), and asking every reachable node whether it
sees a target as drained (`agreement`, for `wait-drained`).

Must not: change Raft membership (liveness and drain only change routing),
or touch sessions.
"""

import logging

import gevent

from starcite.actors import messages as m
from starcite.actors.control import CONTROL_GROUP, CONTROL_REPLICAS, ControlStateMachine
from starcite.actors.group_actor import RaftGroupActor
from starcite.actors.raft_group import RaftGroup
from starcite.peers.link import PeerUnavailable
from starcite.core.errors import StarciteError
from starcite.cluster.placement import replicas_for

log = logging.getLogger("starcite.control")

REFRESH = 0.5  # seconds between re-reads of the agreed drain state


class ControlPlane:
    def __init__(self, node):
        self.node = node
        self.drained = frozenset()
        self.group = None
        self.replicas = replicas_for(CONTROL_GROUP, node.write_nodes, min(CONTROL_REPLICAS, len(node.write_nodes)),
                                     node.config.host_of)
        if node.name in self.replicas:
            self._start_group()
        if node.peer_hub is not None:
            node.peer_hub.methods["observer"] = lambda peer: node.views.observer_statuses()
            node.peer_hub.methods["control_state"] = lambda peer: sorted(self.read_drained())
        self.timer = gevent.spawn(self._loop)

    def _start_group(self):
        node = self.node
        run_callback = gevent.get_hub().loop.run_callback
        machine = ControlStateMachine(lambda drained: run_callback(self._apply, drained))
        peers = [p for p in self.replicas if p != node.name]
        self.group = RaftGroup(CONTROL_GROUP, node.name, peers, node.config.raft_data_dir, node.config,
                               raft_hub=node.raft_hub, machine=machine)
        address = node.asys.createActor(RaftGroupActor)
        node.tell(address, m.StartGroup(self.group, CONTROL_GROUP))
        node.group_actors[CONTROL_GROUP] = address

    # -- commands --------------------------------------------------------------

    def set_drain(self, target, draining):
        """Drain or undrain ``target`` cluster-wide; returns the drained set once committed."""
        if target not in self.node.write_nodes:
            raise StarciteError(400, "unknown_node", f"{target} is not a write node")
        drained = self.node.router.command(CONTROL_GROUP, "control", ("set_drain", (target, draining)))
        self._apply(frozenset(drained))
        return drained

    def read_drained(self):
        if self.group is not None:
            return frozenset(self.group.machine.drained)
        return frozenset(self.node.router.remote(
            CONTROL_GROUP, lambda peer: self.node.peer_hub.call(peer, "control_state", (), self.node.router.timeout)))

    # -- keeping in step ---------------------------------------------------------

    def _loop(self):
        while not self.node.stopping:
            gevent.sleep(REFRESH)
            try:
                self._apply(self.read_drained())
                self._move_leaderships()
            except Exception as exc:  # no control replica reachable: keep the last known state
                log.debug("control state refresh failed: %s", exc)

    def _apply(self, drained):
        node = self.node
        if drained != self.drained:
            log.info("drained nodes: %s", ", ".join(sorted(drained)) or "none")
            self.drained = drained
        node.draining = node.name in drained
        node.tell(node.observer, m.DrainState(drained))
        self._move_leaderships()

    def _move_leaderships(self):
        """While drained, hand every leadership away. Otherwise give each group this node leads
        back to its preferred leader (the first of its replicas by placement score) once that
        node is routable and has been leading nothing for it: elections all start at once, so
        one node tends to win them all, and one leader for every group is one core's worth of
        throughput for the whole cluster."""
        node = self.node
        groups = list(node.groups.items()) + ([(CONTROL_GROUP, self.group)] if self.group else [])
        for group_id, group in groups:
            if not group.is_leader():
                continue
            if node.draining:
                group.request_transfer()
                continue
            preferred = node.router.replicas(group_id)[0]
            if preferred != node.name and node.router.routable(preferred):
                group.request_transfer(preferred)

    def stop(self):
        self.timer.kill(block=False)
        if self.group is not None:
            self.group.stop()

    # -- views -------------------------------------------------------------------

    def agreement(self, target):
        """``{node: status of target}`` as every reachable node's Observer sees it."""
        node = self.node
        views = {node.name: node.views.observer_statuses().get(target)}
        if node.peer_hub is None:
            return views
        for peer in node.peer_hub.peers:
            try:
                views[peer] = node.peer_hub.call(peer, "observer", (), 2.0).get(target)
            except PeerUnavailable:
                continue
        return views

    def status(self):
        return {"drained": sorted(self.drained), "replicas": self.replicas,
                "group": None if self.group is None else self.group.status()}
