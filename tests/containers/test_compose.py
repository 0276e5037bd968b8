"""The compose files run: docker-compose.yml, and docker-compose.cluster.yml with the S3 stand-in
override (docker-compose.standin.yml), brought up with Debian's podman-compose.

Each: `up -d` (the image under test through STARCITE_IMAGE, host ports free ones on 127.0.0.1),
every node ready, a create, append and read (across nodes in the cluster), then `down -v`; the
session's `Podman.cleanup` removes whatever a failed `down` left. Owns no helper beyond the
podman-compose call.
"""

import secrets
import subprocess

import pytest

from tests.containers.podman import ROOT, create, free_ports, podman_env, which
from tests.tail_client import TailClient

EVENTS = 10


@pytest.fixture
def compose(podman):
    """``compose(files, env, suffix)``: `up -d` a project of this run; returns ``run(*args)``."""
    if which("podman-compose") is None:
        pytest.fail("podman-compose is not installed (Debian: apt-get install podman-compose)")
    downs = []

    def up(files, env, suffix):
        project = podman.name(suffix)
        podman.projects.append(project)
        base = ["podman-compose", "-p", project] + [arg for f in files for arg in ("-f", f)]
        full_env = {**podman_env(), **env}

        def run(*args, timeout=600):
            result = subprocess.run(base + list(args), cwd=ROOT, env=full_env, capture_output=True, text=True,
                                    timeout=timeout)
            assert result.returncode == 0, f"{' '.join(args)}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
            return result

        downs.append(run)
        run("up", "-d")
        return run

    yield up
    for run in downs:
        run("down", "-v", timeout=180)


def exercise(create_on, append_on, read_on, session_id):
    create(create_on, session_id)
    for n in range(1, EVENTS + 1):
        response = append_on.append(session_id, n)
        assert response.status_code == 201 and response.json()["seq"] == n, response.text
    tail = TailClient(read_on, session_id, cursor=0, batch_size=100)
    try:
        assert [e["seq"] for e in tail.read_until(EVENTS, timeout=30)] == list(range(1, EVENTS + 1))
    finally:
        tail.close()


def test_single_node_compose_file(podman, image, compose):
    port, = free_ports(1)
    compose(["docker-compose.yml"], {"STARCITE_IMAGE": image, "STARCITE_PORT": str(port)}, "single")
    node = podman.wait_ready(f"{podman.name('single')}_starcite_1", port)
    exercise(node, node, node, "compose-single")


def test_cluster_compose_file_with_the_s3_stand_in(podman, image, s3_image, compose):
    ports = free_ports(3)
    env = {"STARCITE_IMAGE": image, "S3_STANDIN_IMAGE": s3_image,
           "STARCITE_CLUSTER_SECRET": secrets.token_hex(24), "MINIO_ROOT_PASSWORD": secrets.token_hex(24),
           **{f"STARCITE_N{i}_PORT": str(port) for i, port in enumerate(ports, 1)}}
    compose(["docker-compose.cluster.yml", "docker-compose.standin.yml"], env, "cluster")
    project = podman.name("cluster")
    n1, n2, n3 = (podman.wait_ready(f"{project}_n{i}_1", port, timeout=150) for i, port in enumerate(ports, 1))
    bucket_job = podman.state(f"{project}_minio-bucket_1")
    assert not bucket_job["Running"] and bucket_job["ExitCode"] == 0, podman.logs(f"{project}_minio-bucket_1")
    exercise(n1, n2, n3, "compose-cluster")
