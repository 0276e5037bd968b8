"""Test helper: a real cluster of `starcite serve` processes on loopback.

Owns: choosing free API and peer ports, the shared environment every node
gets (CLUSTER_NODES, the cluster secret, one shared local archive), starting,
killing and restarting nodes, and bounded waits on the cluster's state
(readiness, group leaders from each node's ops console). Must not: assert anything
about behaviour; tests do.
"""

import os
import secrets
import time


from tests.server import StarciteServer, free_listen_port


class Cluster:
    def __init__(self, root, size=3, env=None, write_nodes=None, names=None):
        self.root = str(root)
        self.names = names or [f"n{i + 1}" for i in range(size)]
        self.peer_ports = {name: free_listen_port() for name in self.names}
        shared = {
            "CLUSTER_NODES": self.cluster_nodes(),
            "STARCITE_CLUSTER_SECRET": secrets.token_hex(16),
            "STARCITE_ARCHIVE_DIR": os.path.join(self.root, "archive"),
            "STARCITE_RAFT_TIMEOUT_MS": "4000",
            **({"STARCITE_WRITE_NODE_IDS": ",".join(write_nodes)} if write_nodes else {}),
            **(env or {}),
        }
        self.nodes = {name: StarciteServer(os.path.join(self.root, name), env={**shared, "NODE_NAME": name})
                      for name in self.names}

    def cluster_nodes(self, **ports) -> str:
        """The CLUSTER_NODES value; ``name=port`` dials that node at another port (a proxy)."""
        return ",".join(f"{name}@127.0.0.1:{ports.get(name, self.peer_ports[name])}" for name in self.names)

    def __iter__(self):
        return iter(self.nodes.values())

    def __getitem__(self, name) -> StarciteServer:
        return self.nodes[name]

    def start(self, timeout=40.0):
        for node in self:
            node.start(wait=False)
        for node in self:
            node.wait_ready(timeout)
        return self

    def stop(self):
        for node in self:
            node.stop()

    def running(self):
        return [node for node in self if node.proc is not None and node.proc.poll() is None]

    # -- cluster state ---------------------------------------------------------

    def status(self, name) -> dict:
        return self[name].ops_status()

    def leaders(self) -> dict:
        """``{group: node name}`` as each running node's own replicas see themselves."""
        out = {}
        for name in self.names:
            node = self[name]
            if node.proc is None or node.proc.poll() is not None:
                continue
            try:
                for group in self.status(name)["groups"]:
                    if group["is_leader"]:
                        out[group["group"]] = name
            except (OSError, ValueError, AssertionError):
                continue
        return out

    def wait_leaders(self, groups, timeout=20.0, exclude=()):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = self.leaders()
            if all(g in leaders and leaders[g] not in exclude for g in groups):
                return leaders
            time.sleep(0.1)
        raise TimeoutError(f"groups {groups} have no leader after {timeout}s: {self.leaders()}")

    def group_of(self, session_id):
        from starcite.cluster.placement import group_for
        return group_for(session_id, int(self[self.names[0]].env.get("STARCITE_NUM_GROUPS", "16")))
