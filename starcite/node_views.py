"""What a node shows about itself: readiness, the ops status, drain, and the metrics snapshot.

Owns: `NodeViews`, the mixin of `Node` that reads its groups, peer links,
observer, tails and actor system for `/health/ready`, `starcite ops status`
and `/metrics`. Must not: change data-plane state (drain only flips routing
flags through the Observer).
"""

import gc
import time

import gevent
from gevent.event import AsyncResult

from starcite.actors import messages as m


def actor_counts(asys) -> dict:
    """Actors alive in a Thespian simpleSystemBase, and the entries of its registry. The registry
    keeps an entry for every actor that ever existed (an exited one only loses its instance), so
    its size, not the live count, is what grows if actors are created per request or per tail."""
    registry = getattr(getattr(asys, "_systemBase", None), "actorRegistry", None)
    if registry is None:
        return {"actors_alive": -1, "actor_registry_entries": -1}
    return {"actors_alive": sum(1 for ref in registry.values() if ref is not None and ref.instance is not None),
            "actor_registry_entries": len(registry)}


class NodeViews:
    # -- health, ops, metrics -------------------------------------------------

    READY_TTL = 0.25  # seconds a readiness answer is reused: a load balancer's probe stays cheap

    def readiness(self):
        """``(ready, reason)``, computed at most every `READY_TTL` seconds (a drain or a shutdown
        refreshes it at once)."""
        now = time.monotonic()
        cached = getattr(self, "_readiness_cache", None)
        if cached is None or cached[0] < now or cached[2] != (self.draining, self.stopping):
            cached = (now + self.READY_TTL, self._compute_readiness(), (self.draining, self.stopping))
            self._readiness_cache = cached
        return cached[1]

    def _compute_readiness(self):
        """``(ready, reason)``. A write node is ready once every local group has a leader and has
        applied what that leader said was committed; a router once it reaches a quorum of write nodes."""
        if self.draining or self.stopping:
            return False, "draining"
        if not all(group.ready() for group in self.groups.values()):
            return False, "raft_sync"
        if self.control.group is not None and not self.control.group.ready():
            return False, "raft_sync"  # the drain state is not known yet: it may say "draining"
        if self.mode == "router_node" and self.peer_hub is not None:
            reachable = sum(1 for name in self.write_nodes if self.peer_hub.connected(name))
            if reachable <= len(self.write_nodes) // 2:
                return False, "router_sync"
        return True, None

    def status(self) -> dict:
        groups = [self._ask(self.group_actors[group_id], m.GroupStatus(AsyncResult())) for group_id in self.groups]
        ready, reason = self.readiness()
        out = {"node": self.name, "mode": self.mode, "ready": ready, "reason": reason,
               "write_nodes": self.write_nodes, "observer": self.observer_statuses(),
               "groups": sorted(groups, key=lambda g: g["group"]), "tails": len(self.tails), "long_polls": self.long_polls.count(),
               "hot_bytes": self.hot_bytes(), "forwarded_commands": self.router.forwarded}
        out["control"] = self.control.status()
        if self.peer_hub is not None:
            out["peers"] = self.peer_hub.status()
            out["remote_tails"] = self.remote_tails.counts()
            out["digests"] = self.digests.status()
        return out

    def observer_statuses(self) -> dict:
        return self._ask(self.observer, m.ObserverQuery(AsyncResult()))

    def set_drain(self, node, draining):
        """Drain or undrain ``node`` cluster-wide (a control-group command); the Observer's view after it."""
        self.control.set_drain(node, draining)
        return self.observer_statuses()

    def snapshot(self) -> dict:
        pending_rows = pending_sessions = lag = hot_events = 0
        for group in self.groups.values():
            for state in group.state.sessions.values():
                behind = state.last_seq - state.archived_seq
                if behind:
                    pending_rows += behind
                    pending_sessions += 1
                    lag = max(lag, behind)
                hot_events += len(state.hot)
        peer_links = {} if self.peer_hub is None else {peer: self.peer_hub.connected(peer)
                                                       for peer in self.peer_hub.peers}
        snap = {"pending_rows": pending_rows, "pending_sessions": pending_sessions, "lag": lag,
                "hot_events": hot_events, "raft_log_bytes": self.raft_log_bytes(),
                "store_bytes": self.event_store_bytes(),
                "cache_bytes": self.cold.size_bytes, "tails": len(self.tails), "long_polls": self.long_polls.count(),
                "peer_links": peer_links,
                "groups_led": sum(1 for group in self.groups.values() if group.is_leader()),
                "leader_changes": sum(group.leader_changes for group in self.groups.values()),
                **self.tail_counts(), **actor_counts(self.asys),
                "event_loop_watchers": getattr(gevent.get_hub().loop, "activecnt", -1),
                "gc_collected_objects": sum(generation["collected"] for generation in gc.get_stats())}
        for source in self.gauge_sources:
            snap.update(source())
        return snap
