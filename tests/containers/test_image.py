"""The image as a user runs it: one container, the embedded default, a named volume on /data.

Built from the Dockerfile (podman, `--format docker` so HEALTHCHECK is kept) on the stand-in base
(or STARCITE_BASE_IMAGE). Checks: ready, then create, append and a tail over WebSocket and over SSE;
the HEALTHCHECK passes; it runs as uid 10001; SIGTERM stops it gracefully within the grace period;
the data survives the container being replaced on the same volume. Owns no helper: tests/ has them.
"""

import pytest

from tests.containers.podman import free_ports
from tests.containers.podman import podman as run_podman
from tests.sse_client import SseTail
from tests.tail_client import TailClient

EVENTS = 5
GRACE_S = 30  # `podman stop --time`: well over STARCITE_GRACEFUL_TIMEOUT_SECONDS
NODE = {"NODE_NAME": "single-1"}


@pytest.fixture(scope="module")
def single(podman, image):
    """The container the module's tests share, in file order: the last one stops it."""
    volume, network = podman.volume("single-data"), podman.network("single-net")
    port, = free_ports(1)
    name = podman.run("single", image, env=NODE, ports={port: 4000}, volumes={volume: "/data"}, network=network)
    node = podman.wait_ready(name, port)
    return {"name": name, "node": node, "volume": volume, "network": network}


def test_ready_then_create_append_and_tail_over_websocket_and_sse(single):
    node = single["node"]
    node.create("image-check")
    for n in range(1, EVENTS + 1):
        response = node.append("image-check", n)
        assert response.status_code == 201 and response.json()["seq"] == n, response.text
    ws = TailClient(node, "image-check", cursor=0, batch_size=10)
    try:
        assert [e["seq"] for e in ws.read_until(EVENTS, timeout=30)] == list(range(1, EVENTS + 1))
    finally:
        ws.close()
    sse = SseTail(node, "image-check", cursor=0, timeout=30)
    try:
        assert sse.status == 200
        assert [e["seq"] for e in sse.read_until(EVENTS, timeout=30)] == list(range(1, EVENTS + 1))
    finally:
        sse.close()


def test_the_healthcheck_passes(podman, single):
    config = podman.inspect(single["name"])["Config"]
    assert config["Healthcheck"]["Test"] == ["CMD", "starcite-healthcheck", "/health/ready"]
    check = run_podman("healthcheck", "run", single["name"], check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_it_runs_as_a_non_root_user(podman, single):
    assert podman.exec(single["name"], "id", "-u").stdout.strip() == "10001"
    assert podman.inspect(single["name"])["Config"]["User"] == "10001:10001"


def test_sigterm_stops_it_gracefully_and_the_data_survives_on_the_volume(podman, image, single):
    run_podman("stop", "--time", GRACE_S, single["name"], timeout=GRACE_S + 60)
    state = podman.state(single["name"])
    # Exit 0 is the node's own graceful exit; SIGKILL after the grace period would be 137.
    assert not state["Running"] and state["ExitCode"] == 0, (state, podman.logs(single["name"]))
    port, = free_ports(1)
    again = podman.run("single-again", image, env=NODE, ports={port: 4000}, volumes={single["volume"]: "/data"},
                       network=single["network"])
    node = podman.wait_ready(again, port)
    ws = TailClient(node, "image-check", cursor=0, batch_size=10)
    try:
        events = ws.read_until(EVENTS, timeout=30)
    finally:
        ws.close()
    assert [(e["seq"], e["payload"]["n"]) for e in events] == [(n, n) for n in range(1, EVENTS + 1)]
