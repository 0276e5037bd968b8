"""A Starcite cluster on loopback, started the way a user starts one: every
member gets `NODE_NAME`, the same `CLUSTER_NODES` (name@127.0.0.1:peer-port
for every member), a generated `STARCITE_CLUSTER_SECRET`, its own API port
and data directory, and one shared local archive directory.

Owns: the members' environment, booting them together, readiness (each
`/health/ready` → 200, then every member names all members as write nodes
and knows a leader for every group), leader look-up through `/ops/status`,
and stopping the members. Must not: measure anything. A build without the
cluster transport (members that run alone) raises `bench.procs.NotYetError`.
"""

import secrets
import tempfile

from bench.procs import NotYetError, StartError, free_port, wait_until
from bench.results import CLUSTER_SYSTEM
from bench.targets.starcite import READY_TIMEOUT_S, Node

LEADERS_TIMEOUT_S = 60.0


class Cluster:
    def __init__(self, sup, work_dir: str, size: int = 3, env: dict = None):
        self.sup = sup
        self.names = [f"n{i + 1}" for i in range(size)]
        peers = ",".join(f"{name}@127.0.0.1:{free_port()}" for name in self.names)
        shared = {"CLUSTER_NODES": peers, "STARCITE_CLUSTER_SECRET": secrets.token_hex(16),
                  "STARCITE_ARCHIVE_ADAPTER": "local",
                  "STARCITE_ARCHIVE_DIR": tempfile.mkdtemp(prefix="starcite-archive-", dir=work_dir), **(env or {})}
        self.nodes = [Node(sup, work_dir, {**shared, "NODE_NAME": name}, port=free_port(), name=f"starcite-{name}")
                      for name in self.names]

    @property
    def ports(self) -> list:
        return [node.port for node in self.nodes]

    def start(self):
        """Boot every member at once (a quorum must be up to elect), then wait until the cluster serves."""
        try:
            for node in self.nodes:
                node.spawn()
            for node in self.nodes:
                node.wait_ready(READY_TIMEOUT_S)
            self._check_clustered()
            self.wait_led()
        except BaseException:
            self.stop()
            raise
        return self

    def _check_clustered(self):
        for node in self.nodes:
            write_nodes = sorted(node.status().get("write_nodes") or [])
            if write_nodes != self.names:
                raise NotYetError(f"members started but {node.name} runs with write nodes {write_nodes}, "
                                  f"not {self.names}: this build has no cluster transport")

    def _led(self) -> bool:
        """Every live member knows a leader for every group."""
        return all(group.get("leader") for node in self.nodes if node.alive() for group in node.status()["groups"])

    def wait_led(self, timeout: float = LEADERS_TIMEOUT_S):
        wait_until(self._led, timeout, "cluster: a leader for every group", interval=0.1)

    def leader_of(self, group: int):
        """The live member whose `/ops/status` says it leads ``group`` (None while there is none)."""
        for node in self.nodes:
            if node.alive():
                try:
                    groups = node.status()["groups"]
                except (OSError, StartError):
                    continue
                if any(g["group"] == group and g.get("is_leader") for g in groups):
                    return node
        return None

    def restart(self, node: Node):
        """Start a stopped or killed member again (same port, data directory and peers) and wait for it."""
        node.start()
        self.wait_led()

    def stop(self):
        """Stop every member at once (SIGTERM, bounded wait, SIGKILL)."""
        running = [node for node in self.nodes if node.child is not None]
        self.sup.stop_together([node.child for node in running], timeout=30)
        for node in running:
            node.child = None


def shared(ctx) -> Cluster:
    """The run's 3-node cluster, kept running between the workloads that share it."""
    return ctx.shared_system(CLUSTER_SYSTEM, lambda: Cluster(ctx.sup, ctx.work_dir).start(), Cluster.stop)
