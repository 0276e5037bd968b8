"""Routing: which node serves a command or a read of a group, from any node.

Owns: the leader-hint cache per group, sending a command to the group's
leader (a local call when this node leads, a peer call otherwise), retrying
on not-leader with the new hint, on a lost link, or when leadership changed
before the commit, all within one deadline (`STARCITE_RAFT_TIMEOUT_MS`, then
503; a retried command is exactly-once: `starcite.core.rules.same_request`),
and reads: the local replica when there is one, else a connected remote
replica, each made fresh first (`read_barrier`: the leader's read index, then
a wait until the serving replica has applied it), so that a read sees every
write acknowledged before it began.

It sees this node only through `starcite.node.local_replicas.LocalReplicas`
(its replica of a group, a command or a read on it), and the cluster's drain
state through the `ControlPlane` it is given once that exists.

Forwarding never loops: a peer that receives a forwarded command runs it on
its own replica or answers not-leader with its hint; it never forwards again.
Must not: touch Raft state or session rules; the local replicas run what arrives.
"""

import time

import gevent

from starcite.actors.control import CONTROL_GROUP
from starcite.actors.raft_errors import NotLeader, RaftUnavailable
from starcite.peers.link import PeerUnavailable
from starcite.cluster.placement import replicas_for

RETRY_PAUSE = 0.05  # between attempts while a group elects a leader


class Router:
    """``local``: this node's `LocalReplicas`; ``hub``: the `PeerHub` (None on a single node);
    ``forwarded_by_kind``: the counter of commands forwarded to a peer, labelled by kind.
    ``control`` (the `ControlPlane`: drain state, the control group's replicas) is set by the
    node once it is built."""

    def __init__(self, local, hub, config, forwarded_by_kind):
        self.local = local
        self.control = None
        self.forwarded_by_kind = forwarded_by_kind
        self.hub = hub
        self.name = config.node_name
        self.write_nodes = config.write_node_ids
        self.replication_factor = config.replication_factor
        self.host_of = getattr(config, "host_of", None)
        self._replicas = {}         # group id -> its replicas (placement never changes while running)
        self.timeout = config.raft_timeout_ms / 1000.0
        self.hints = {}             # group id -> node name believed to lead it
        self.forwarded = 0
        if hub is not None:
            hub.methods["command"] = self._serve_command
            hub.methods["read"] = self._serve_read

    def replicas(self, group_id):
        if group_id == CONTROL_GROUP:
            return self.control.replicas
        replicas = self._replicas.get(group_id)
        if replicas is None:
            replicas = self._replicas[group_id] = replicas_for(group_id, self.write_nodes, self.replication_factor,
                                                               self.host_of)
        return replicas

    def routable(self, peer) -> bool:
        """Another node may be sent routed work: linked, and not drained (liveness and drain
        change routing only)."""
        return peer == self.name or (self.hub is not None and self.hub.connected(peer)
                                     and peer not in self.control.drained)

    # -- commands (to the leader) ---------------------------------------------

    def command(self, group_id, kind, args, deadline=None):
        """Run ``kind`` on the group's leader; retried on not-leader, a lost link or a leadership
        change before the commit, until the deadline (`STARCITE_RAFT_TIMEOUT_MS` from now by default)."""
        deadline = deadline or time.monotonic() + self.timeout
        replicas = self.replicas(group_id)
        target = self._first_target(group_id, replicas)
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RaftUnavailable("raft_timeout", f"No leader of group {group_id} answered in time")
            if target != self.name and not self._may_forward(target, deadline):
                gevent.sleep(min(RETRY_PAUSE, remaining))  # a drained leader: its leadership is moving
                target = self._first_target(group_id, replicas)
                continue
            hint = None
            try:
                if target == self.name:
                    return self.local.command(group_id, kind, args, remaining)
                self.forwarded += 1
                self.forwarded_by_kind.labels(kind).inc()
                outcome, value = self.hub.call(target, "command", (group_id, kind, args), remaining)
                if outcome == "ok":
                    self.hints[group_id] = target
                    return value
                if outcome == "not_leader":
                    hint = value
                # "retry": the target lost its leadership before the commit; the outcome is unknown
                # and a retry is safe (the command's request token), as below
            except NotLeader as exc:
                hint = exc.hint
            except PeerUnavailable:
                hint = None
            except RaftUnavailable as exc:
                if exc.code == "raft_timeout":
                    raise
                # leadership changed before the commit: the outcome is unknown, and a retry
                # is safe (producer dedupe), so try again at whoever leads now
            attempt += 1
            if hint is not None and hint != target and self._may_forward(hint, deadline):
                target = hint
                self.hints[group_id] = hint
                continue
            self.hints.pop(group_id, None)
            gevent.sleep(min(RETRY_PAUSE, max(0.0, deadline - time.monotonic())))
            known = self._local_leader(group_id)
            target = known if known is not None and known != target else self._rotate(replicas, attempt)

    def _may_forward(self, peer, deadline):
        """A drained leader gets no routed commands while its leadership moves away (it hands
        it over at once); only past half the deadline is it used anyway, rather than failing."""
        if self.routable(peer):
            return True
        return (self.hub is not None and self.hub.connected(peer)
                and deadline - time.monotonic() < self.timeout / 2)

    def _local_leader(self, group_id):
        """The leader this node's own replica of the group knows, or None."""
        local = self.local.replica(group_id)
        return None if local is None else local.leader_name()

    def _first_target(self, group_id, replicas):
        leader = self._local_leader(group_id)
        if leader is not None:
            return leader
        hint = self.hints.get(group_id)
        if hint is not None:
            return hint
        return self._rotate(replicas, 0)

    def _rotate(self, replicas, attempt):
        reachable = [r for r in replicas if self.routable(r)]
        pool = reachable or replicas
        return pool[attempt % len(pool)]

    def _serve_command(self, peer, group_id, kind, args):
        """A command forwarded by ``peer``: ``("ok", value)``, ``("not_leader", hint)``, or ``("retry",
        why)`` when leadership changed before the commit (the sender retries at the new leader; a
        node of an earlier version reads "retry" as not-leader without a hint, and retries too)."""
        try:
            value = self.local.command(group_id, kind, args, self.timeout)
        except NotLeader as exc:
            return "not_leader", exc.hint
        except RaftUnavailable as exc:
            if exc.code == "raft_timeout":
                raise
            return "retry", exc.message
        if kind == "read_index":
            self.local.replica(group_id).hasten_commit_news()  # the reader's replica waits for that index
        return "ok", value

    # -- reads (any ready replica) --------------------------------------------

    def read(self, group_id, kind, args, fresh=True):
        """``kind`` from the local replica, or from a connected remote replica when there is none here.

        ``fresh``: the answer reflects every write acknowledged before this call (`read_barrier`; a
        remote replica always makes its read fresh). Without it, whatever this replica has applied:
        for the session list and the tails' periodic catch-up checks, which may lag."""
        if self.local.replica(group_id) is not None:
            if fresh:
                self.read_barrier(group_id)
            return self.local.read(group_id, kind, args)
        return self.remote(group_id, lambda peer: self.hub.call(peer, "read", (group_id, kind, args), self.timeout))

    def read_barrier(self, group_id):
        """Wait until this node's replica of the group has applied every write acknowledged before
        this call: the leader's read index (`starcite.actors.read_index`; this replica's own when it
        leads), then the wait to apply it. A group of one node needs neither: its replica applies a
        write before acknowledging it. 503 when no leader confirms within the deadline."""
        if self.hub is None or len(self.replicas(group_id)) == 1:  # one replica: a lone node's, or a worker's
            return
        deadline = time.monotonic() + self.timeout
        index = self.command(group_id, "read_index", (), deadline)
        self.local.replica(group_id).wait_applied(index, max(0.0, deadline - time.monotonic()))

    def remote(self, group_id, attempt):
        """``attempt(peer)`` on the first replica that answers (leader hint first)."""
        replicas = self.replicas(group_id)
        hint = self.hints.get(group_id)
        ordered = ([hint] if hint in replicas else []) + [r for r in replicas if r != hint]
        failures = []
        ordered.sort(key=lambda peer: not self.routable(peer))  # a drained replica only as a last resort
        for peer in ordered:
            if peer == self.name or not self.hub.connected(peer):
                continue
            try:
                return attempt(peer)
            except PeerUnavailable as exc:
                failures.append(str(exc))
        raise RaftUnavailable("raft_unavailable", f"No replica of group {group_id} is reachable"
                              + (f" ({'; '.join(failures)})" if failures else ""))

    def _serve_read(self, peer, group_id, kind, args):
        replica = self.local.replica(group_id)
        if replica is None:
            raise PeerUnavailable(f"{self.name} holds no replica of group {group_id}")
        self.read_barrier(group_id)
        value = self.local.read(group_id, kind, args)
        if value is None and replica.catching_up():
            # Just restarted, the replica has not applied its journal yet: the asking node would answer
            # 404 for a session that exists (a tail's open, a record read). 503: the client retries.
            raise RaftUnavailable("raft_unavailable", f"{self.name}'s replica of group {group_id} is still "
                                                      f"catching up; retry")
        return value
