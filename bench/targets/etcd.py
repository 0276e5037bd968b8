"""The replicated peer: a 3-member etcd cluster (Debian `etcd-server`) on
loopback, each member with its own temp data directory and free client and
peer ports, started together and stopped by the supervisor.

Owns: the member command lines, cluster readiness (every member's
`GET /health` says `"health":"true"`, which needs an elected leader), the
version probe and the JSON-gateway PUT body. Must not: send workload traffic.
"""

import base64
import json
import shutil
import subprocess
import tempfile

from bench.procs import StartError, free_port
from bench.targets import http_get

EXECUTABLE = "etcd"
MEMBERS = 3
READY_TIMEOUT_S = 30.0
PUT_PATH = "/v3/kv/put"


def version() -> str:
    out = subprocess.run([EXECUTABLE, "--version"], capture_output=True, text=True, timeout=10).stdout
    return out.splitlines()[0].split(":", 1)[1].strip() if out else "unknown"


def put_body(key: bytes, value: bytes) -> bytes:
    """The gateway's PutRequest: key and value base64-encoded."""
    return json.dumps({"key": base64.b64encode(key).decode(),
                       "value": base64.b64encode(value).decode()}).encode()


def _healthy(port: int) -> bool:
    status, body = http_get(port, "/health", timeout=2)
    return status == 200 and json.loads(body).get("health") == "true"


def start(sup, work_dir: str) -> tuple:
    """Start the members together and wait until each is healthy; returns ``(children, client_ports)``."""
    if shutil.which(EXECUTABLE) is None:
        raise StartError("etcd is not installed (apt-get install etcd-server)")
    names = [f"e{i + 1}" for i in range(MEMBERS)]
    client_ports, peer_ports = [free_port() for _ in names], [free_port() for _ in names]
    initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(names, peer_ports))
    token = f"bench-{client_ports[0]}"
    children = []
    try:
        for name, client_port, peer_port in zip(names, client_ports, peer_ports):
            client_url, peer_url = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
            argv = [EXECUTABLE, "--name", name, "--data-dir", tempfile.mkdtemp(prefix=f"etcd-{name}-", dir=work_dir),
                    "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
                    "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                    "--initial-cluster", initial, "--initial-cluster-token", token,
                    "--initial-cluster-state", "new", "--logger", "zap", "--log-level", "warn"]
            children.append(sup.spawn(f"etcd-{name}", argv))
        for child, port in zip(children, client_ports):
            sup.await_ready(child, lambda port=port: _healthy(port), READY_TIMEOUT_S)
    except BaseException:
        stop(sup, children)
        raise
    return children, client_ports


def stop(sup, children: list):
    for child in reversed(children):
        sup.stop(child)
