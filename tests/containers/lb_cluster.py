"""Test helper: a 3-node Starcite cluster of containers behind HAProxy, and tails that follow it.

Owns: `LbCluster` (a podman network of this run; the S3 stand-in on it as the one shared archive,
its bucket made; n1..n3 from the image under test, CLUSTER_NODES by network alias, each /data a
host directory so the host's checks reach its ops socket; HAProxy on the host running
ops/haproxy.cfg as committed, its servers the nodes' ports published on 127.0.0.1; the state
directory ops/rolling-restart.sh reads, and the environment that makes the script reach each node
with `podman exec` and restart it with `podman restart`); the tails that follow it are
`tests.following_tail.FollowingTail`. Must not: assert behaviour (the drills do) or leave a process behind
(`stop` ends HAProxy; the session's `Podman.cleanup` removes the containers).
"""

import os
import re
import secrets
import subprocess
import sys

import requests

from tests.containers.podman import ROOT, free_ports, podman_env, published, which
from tests.server import wait_until

NAMES = ["n1", "n2", "n3"]
BUCKET = "starcite-archive"
GRACE_S = 30
HAPROXY_CFG = os.path.join(ROOT, "ops", "haproxy.cfg")
# An `option httplog` line's timers, then its status, ..., then the request line of an append.
_APPEND_LINE = re.compile(r" -?\d+/-?\d+/-?\d+/-?\d+/\+?\d+ (-1|\d{3}) .*\"POST /v1/sessions/[^/ ]+/append ")


class LbCluster:
    def __init__(self, podman, image, s3_image, root):
        self.podman, self.image, self.root = podman, image, str(root)
        self.state = os.path.join(self.root, "state")  # what ops/rolling-restart.sh reads
        self.lb_port, *ports = free_ports(1 + len(NAMES))
        self.ports = dict(zip(NAMES, ports))
        self.network = podman.network()
        self.s3 = podman.run("s3", s3_image, network=self.network, aliases=["s3"])
        podman.exec(self.s3, "s3-standin", "make-bucket", "http://127.0.0.1:9000", BUCKET, timeout=90)
        self.env = {"CLUSTER_NODES": ",".join(f"{n}@{n}:4400" for n in NAMES),
                    "STARCITE_CLUSTER_SECRET": secrets.token_hex(24),
                    "STARCITE_ARCHIVE_ADAPTER": "s3", "STARCITE_S3_ENDPOINT": "http://s3:9000",
                    "STARCITE_S3_BUCKET": BUCKET, "STARCITE_S3_ACCESS_KEY_ID": "standin",
                    "STARCITE_S3_SECRET_ACCESS_KEY": secrets.token_hex(16),
                    "STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "500"}
        os.makedirs(self.state)
        with open(os.path.join(self.state, "size"), "w") as fh:
            fh.write(f"{len(NAMES)}\n")
        self.nodes = {}
        for name in NAMES:
            data = os.path.join(self.root, name)
            os.makedirs(data)
            os.chown(data, 10001, 10001)  # the image's user
            node = published(self.ports[name], data_dir=data, name=name)
            self.nodes[name] = node
            with open(os.path.join(self.state, f"{name}.url"), "w") as fh:
                fh.write(node.base + "\n")
        self.haproxy = None

    def container(self, name) -> str:
        return self.podman.name(name)

    def start(self, timeout=150.0):
        for name in NAMES:
            self.podman.run(name, self.image, env={**self.env, "NODE_NAME": name},
                            ports={self.ports[name]: 4000}, volumes={self.nodes[name].data_dir: "/data"},
                            network=self.network, aliases=[name])
        for name in NAMES:
            self.podman.wait_ready(self.container(name), self.ports[name], timeout)
        self._start_haproxy()
        self.lb = published(self.lb_port)
        wait_until(lambda: all(self._up_through_lb() for _ in range(3)), 60, "ready through HAProxy")
        return self

    def _start_haproxy(self):
        env = {**os.environ, "STARCITE_LB_BIND": f"127.0.0.1:{self.lb_port}",
               **{f"STARCITE_{name.upper()}": f"127.0.0.1:{port}" for name, port in self.ports.items()}}
        self.haproxy_log = open(os.path.join(self.root, "haproxy.log"), "ab")
        self.haproxy = subprocess.Popen([which("haproxy") or "haproxy", "-db", "-f", HAPROXY_CFG], env=env,
                                        stdout=self.haproxy_log, stderr=subprocess.STDOUT, start_new_session=True)

    def _up_through_lb(self):
        if self.haproxy.poll() is not None:
            raise RuntimeError(f"haproxy exited {self.haproxy.returncode}: see {self.root}/haproxy.log")
        try:
            return requests.get(self.lb.base + "/health/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def log_offset(self) -> int:
        return os.path.getsize(os.path.join(self.root, "haproxy.log"))

    def append_answers(self, since=0) -> dict:
        """``{status: count}`` of HAProxy's answers to appends since byte ``since`` of its log; -1: none
        (the node died mid-request and HAProxy closed the client's connection)."""
        with open(os.path.join(self.root, "haproxy.log"), "rb") as fh:
            fh.seek(since)
            text = fh.read().decode(errors="replace")
        counts = {}
        for status in _APPEND_LINE.findall(text):
            counts[int(status)] = counts.get(int(status), 0) + 1
        return dict(sorted(counts.items()))

    def __getitem__(self, name):
        return self.nodes[name]

    def running(self):
        return list(self.nodes.values())

    def script_env(self) -> dict:
        """The environment ops/rolling-restart.sh needs to roll these containers."""
        prefix = self.podman.name("")
        return {**podman_env(), "STARCITE_CLUSTER_STATE": self.state,
                "STARCITE_NODE_OPS": f"podman exec {prefix}{{node}} starcite ops",
                "STARCITE_NODE_RESTART": f"podman restart --time {GRACE_S} {prefix}{{node}}",
                "STARCITE_PY": sys.executable,
                "LB_DRAIN_WAIT_S": "3"}  # ops/haproxy.cfg takes a node out after 2 failed checks, 1 s apart

    def wait_node_ready(self, name, timeout=120.0):
        self.podman.wait_ready(self.container(name), self.ports[name], timeout)

    def stop(self):
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            try:
                self.haproxy.wait(10)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()
                self.haproxy.wait(5)
        if self.haproxy is not None:
            self.haproxy_log.close()
