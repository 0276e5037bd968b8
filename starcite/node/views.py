"""What a node shows about itself: readiness, the ops status, drain, and the metrics snapshot.

Owns: `NodeViews`, the node's part that reads its groups, peer links,
observer, tails and actor system for `/health/ready`, `starcite ops status`
and `/metrics`. It reads the whole node (a view of everything) and is the
only part that does. Must not: change data-plane state (drain only flips
routing flags through the Observer).
"""

import gc
import time

import gevent
from gevent.event import AsyncResult

from starcite.actors import messages as m
from starcite.core.errors import StarciteError
from starcite.peers.link import PeerUnavailable

STATUS_SEVERITY = ("ready", "draining", "suspect", "lost")  # the worst of a node's workers is the node's
NODE_TOTALS = ("tails", "long_polls", "hot_bytes", "forwarded_commands")  # the ops status sums them over workers
SIBLING_TIMEOUT = 2.0  # seconds a worker waits for a sibling's readiness or metrics


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
    """Readiness, the ops status, drain and the metrics snapshot of ``node``."""

    READY_TTL = 0.25  # seconds a readiness answer is reused: a load balancer's probe stays cheap

    def __init__(self, node):
        self.node = node
        self._readiness_cache = None

    def readiness(self):
        """``(ready, reason)``, computed at most every `READY_TTL` seconds (a drain or a shutdown
        refreshes it at once)."""
        now = time.monotonic()
        cached = self._readiness_cache
        if cached is None or cached[0] < now or cached[2] != (self.node.draining, self.node.stopping):
            answer = self._compute_readiness()
            # Only a ready answer is reused: a worker that was not ready a moment ago must not say so
            # after a sibling has answered ready for the whole node.
            cached = (now + self.READY_TTL if answer[0] else 0.0, answer, (self.node.draining, self.node.stopping))
            self._readiness_cache = cached
        return cached[1]

    def _compute_readiness(self):
        """``(ready, reason)``. A write node is ready once every local group has a leader and has
        applied what that leader said was committed; a router once it reaches a quorum of write nodes.
        A node of several workers is ready when every worker is."""
        ready, reason = self.own_readiness()
        if ready:
            for sibling in self.node.siblings:
                try:
                    sibling_ready, sibling_reason = self.node.peer_hub.call(sibling, "own_readiness", (),
                                                                            SIBLING_TIMEOUT)
                except (PeerUnavailable, StarciteError):
                    return False, "raft_sync"  # a worker is starting (or restarting after a crash)
                if not sibling_ready:
                    return False, sibling_reason
        return ready, reason

    def own_readiness(self):
        """``(ready, reason)`` of this process alone (one worker of the node)."""
        node = self.node
        if node.draining or node.stopping:
            return False, "draining"
        if not all(group.ready() for group in node.groups.values()):
            return False, "raft_sync"
        if node.control.group is not None and not node.control.group.ready():
            return False, "raft_sync"  # the drain state is not known yet: it may say "draining"
        if node.mode == "router_node" and node.peer_hub is not None:
            reachable = sum(1 for name in node.write_nodes if node.peer_hub.connected(name))
            if reachable <= len(node.write_nodes) // 2:
                return False, "router_sync"
        return True, None

    def _sibling_views(self, method):
        """``{sibling: what it answers to method}`` (or the reason it did not) of every other worker."""
        views = {}
        for sibling in self.node.siblings:
            try:
                views[sibling] = self.node.peer_hub.call(sibling, method, (), SIBLING_TIMEOUT)
            except (PeerUnavailable, StarciteError) as exc:
                views[sibling] = {"error": str(exc)}
        return views

    def status(self) -> dict:
        """The ops status of the whole node: with several workers, every worker's groups, the totals
summed, and ``workers`` naming each worker's groups (or why it did not answer)."""
        out = self.own_status()
        if not self.node.siblings:
            return out
        out["node"], out["worker"] = self.node.host_name, out["node"]
        out["observer"] = self.observer_statuses()
        workers = self._sibling_views("own_status")
        out["workers"] = {out["node"]: [group["group"] for group in out["groups"]]}
        for name, view in workers.items():
            if "error" in view:
                out["workers"][name] = view
                continue
            out["workers"][name] = [group["group"] for group in view["groups"]]
            out["groups"] = sorted(out["groups"] + view["groups"], key=lambda g: g["group"])
            for key in NODE_TOTALS:
                out[key] += view[key]
        return out

    def own_status(self) -> dict:
        node = self.node
        groups = [node.ask(node.group_actors[group_id], m.GroupStatus(AsyncResult())) for group_id in node.groups]
        ready, reason = self.readiness()
        out = {"node": node.name, "mode": node.mode, "ready": ready, "reason": reason,
               "write_nodes": node.write_nodes, "observer": self.observer_statuses(),
               "groups": sorted(groups, key=lambda g: g["group"]), "tails": len(node.tails.handles), "long_polls": node.long_polls.count(),
               "hot_bytes": node.cap.hot_bytes(), "forwarded_commands": node.router.forwarded}
        out["control"] = node.control.status()
        if node.peer_hub is not None:
            out["peers"] = node.peer_hub.status()
            out["remote_tails"] = node.remote_tails.counts()
            out["digests"] = node.digests.status()
        return out

    def observer_statuses(self) -> dict:
        """``{node: status}`` as the Observer sees them; a node of several workers is one entry (ready when
        every worker is, else the worst of theirs)."""
        by_member = self.node.ask(self.node.observer, m.ObserverQuery(AsyncResult()))
        if not self.node.siblings:
            return by_member
        by_host = {}
        for member, status in by_member.items():
            by_host.setdefault(self.node.config.host_of(member), []).append(status)
        return {host: max(statuses, key=STATUS_SEVERITY.index) for host, statuses in by_host.items()}

    def set_drain(self, target, draining):
        """Drain or undrain ``target`` cluster-wide (a control-group command; every worker of a node of
        several); the Observer's view after it."""
        host_of = self.node.config.host_of
        for member in [m for m in self.node.write_nodes if host_of(m) == target and m != target] or [target]:
            self.node.control.set_drain(member, draining)
        return self.observer_statuses()

    def metrics_text(self) -> bytes:
        """`/metrics`: this worker's metrics with every reachable sibling's added."""
        node = self.node
        others = []
        for sibling in node.siblings:
            try:
                others.append(node.peer_hub.call(sibling, "metric_samples", (), SIBLING_TIMEOUT))
            except (PeerUnavailable, StarciteError):
                continue  # a restarting worker: its counters start again from zero anyway
        return node.metrics.render(others)

    def serve_siblings(self):
        """The calls a sibling worker makes on this one."""
        hub = self.node.peer_hub
        hub.methods["own_readiness"] = lambda peer: self.own_readiness()
        hub.methods["metric_samples"] = lambda peer: self.node.metrics.samples()
        hub.methods["own_status"] = lambda peer: self.own_status()

    def snapshot(self) -> dict:
        node = self.node
        pending_rows = pending_sessions = lag = hot_events = 0
        for group in node.groups.values():
            for state in group.state.sessions.values():
                behind = state.last_seq - state.archived_seq
                if behind:
                    pending_rows += behind
                    pending_sessions += 1
                    lag = max(lag, behind)
                hot_events += len(state.hot)
        peer_links = {} if node.peer_hub is None else {peer: node.peer_hub.connected(peer)
                                                       for peer in node.peer_hub.peers}
        snap = {"pending_rows": pending_rows, "pending_sessions": pending_sessions, "lag": lag,
                "hot_events": hot_events, "raft_log_bytes": node.cap.raft_log_bytes(),
                "store_bytes": node.cap.event_store_bytes(),
                "cache_bytes": node.cold.size_bytes, "tails": len(node.tails.handles), "long_polls": node.long_polls.count(),
                "peer_links": peer_links,
                "groups_led": sum(1 for group in node.groups.values() if group.is_leader()),
                "leader_changes": sum(group.leader_changes for group in node.groups.values()),
                **node.tails.counts(), **actor_counts(node.asys),
                "connections": node.connections.gauges(node.long_polls.count()),
                "connections_refused": node.connections.refused,
                "connections_timed_out": node.connections.timed_out, "connection_cap": node.connections.cap,
                "event_loop_watchers": getattr(gevent.get_hub().loop, "activecnt", -1),
                "gc_collected_objects": sum(generation["collected"] for generation in gc.get_stats())}
        for source in node.gauge_sources:
            snap.update(source())
        return snap
