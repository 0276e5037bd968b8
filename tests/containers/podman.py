"""Test helper: Debian's podman, driven for the container tests.

Owns: the podman command line (always with CONTAINERS_CONF naming
ops/containers/containers.conf: runc, the sandbox's ulimits), whether podman
can run here (`unavailable_reason`), the images the tests need (the stand-in
base from ops/containers/build-base.sh, cached across runs; the Starcite image
built from the Dockerfile once per session; the S3 stand-in image, cached),
containers, networks and volumes named uniquely per run and labelled with the
run, their removal even after a failure (`Podman.cleanup`), and bounded waits
on a published node. Must not: assert behaviour (the tests do), touch a
container, network, volume or image it did not create, or bind a host port
other than on 127.0.0.1.
"""

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time

import requests

from tests.server import StarciteServer, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTAINERS_CONF = os.path.join(ROOT, "ops", "containers", "containers.conf")
BASE_IMAGE = os.environ.get("STARCITE_BASE_IMAGE", "")  # e.g. python:3.11-slim-bookworm where a registry works
STANDIN_BASE = "localhost/starcite-base:bookworm-python3"

def _standin_tag() -> str:
    """The S3 stand-in's tag, named by what it is built from (a changed file builds a new one)."""
    digest = hashlib.sha256()
    for name in ("s3-standin.Containerfile", "s3_standin.py"):
        with open(os.path.join(ROOT, "ops", "containers", name), "rb") as fh:
            digest.update(fh.read())
    return f"localhost/starcite-s3-standin:moto-5.2.5-{digest.hexdigest()[:10]}"


S3_STANDIN_IMAGE = _standin_tag()
LABEL = "starcite.test.run"
REPORT = []  # one line per drill: its measured figures, printed in the test summary


def podman_env() -> dict:
    path = os.environ.get("PATH", "/usr/bin:/bin")
    sbin = [d for d in ("/usr/local/sbin", "/usr/sbin", "/sbin") if d not in path.split(os.pathsep)]
    return {**os.environ, "CONTAINERS_CONF": CONTAINERS_CONF, "PATH": os.pathsep.join([path, *sbin])}


def which(program):
    """``program`` on PATH, /usr/sbin and /sbin included (haproxy, debootstrap live there)."""
    return shutil.which(program, path=podman_env()["PATH"])


def podman(*args, timeout=120.0, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *map(str, args)], env=podman_env(), capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(map(str, args))[:300]}: exit {result.returncode}: "
                           f"{result.stderr.strip()[-2000:]}")
    return result


def unavailable_reason():
    """None when podman can run containers here, else why not (one line)."""
    if which("podman") is None:
        return "podman is not installed (Debian: apt-get install podman runc)"
    if which("runc") is None:
        return "runc is not installed (ops/containers/containers.conf names it)"
    if os.geteuid() != 0:
        return "the container tests run rootful podman: run them as root"
    try:
        info = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"podman info failed: {exc}"
    if info.returncode != 0:
        return f"podman info failed: {info.stderr.strip()[-300:]}"
    if which("debootstrap") is None and not BASE_IMAGE and not image_exists(STANDIN_BASE):
        return "no base image: install debootstrap (ops/containers/build-base.sh) or set STARCITE_BASE_IMAGE"
    return None


def image_exists(tag) -> bool:
    return podman("image", "exists", tag, check=False).returncode == 0


def base_image() -> str:
    """STARCITE_BASE_IMAGE, else the stand-in (built once per machine; ops/containers/build-base.sh)."""
    if BASE_IMAGE:
        return BASE_IMAGE
    result = subprocess.run([os.path.join(ROOT, "ops", "containers", "build-base.sh"), STANDIN_BASE],
                            env=podman_env(), capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        raise RuntimeError(f"build-base.sh failed: {result.stderr[-2000:]}")
    return STANDIN_BASE


def build(tag, base, containerfile="Dockerfile", cache=True, timeout=900.0):
    """`podman build --format docker` (keeps HEALTHCHECK) from the repository root.

    ``cache=False`` for the Starcite image: podman 4.3's layer cache does not see a change in what
    a ``RUN --mount=type=bind,from=build`` mounts, so a cached final stage would keep stale wheels;
    ``--layers=false`` also leaves no intermediate image behind."""
    podman("build", "--format", "docker", *([] if cache else ["--layers=false"]), "--build-arg",
           f"PYTHON_IMAGE={base}", "-f", containerfile, "-t", tag, ROOT, timeout=timeout)
    return tag


def s3_standin_image(base) -> str:
    """moto's S3 server in a container (MinIO's image cannot be pulled here); built once per machine."""
    if not image_exists(S3_STANDIN_IMAGE):
        build(S3_STANDIN_IMAGE, base, os.path.join(ROOT, "ops", "containers", "s3-standin.Containerfile"))
    return S3_STANDIN_IMAGE


def published(port: int, data_dir=os.devnull, name="") -> StarciteServer:
    """The test helpers' node object for a node (or load balancer) reached at 127.0.0.1:``port``;
    ``data_dir``: the host directory mounted on its /data (where its ops socket is)."""
    node = StarciteServer(data_dir, env={"NODE_NAME": name})
    node.port, node.base, node.ws_base = port, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    return node


def create(node, session_id, timeout=30.0):
    """Create a session, retrying a 503 (a group's leadership settling just after ready) as a client
    would; a retried create may find the session its first try made (409)."""
    deadline, retried = time.monotonic() + timeout, False
    while True:
        try:
            response = node.request("POST", "/v1/sessions", {"id": session_id})
            if response.status_code == 201 or (retried and response.status_code == 409):
                return
            if response.status_code not in (502, 503, 504) or time.monotonic() >= deadline:
                raise AssertionError(f"create {session_id}: {response.status_code} {response.text}")
        except requests.RequestException:
            if time.monotonic() >= deadline:
                raise
        retried = True
        time.sleep(0.2)


class Podman:
    """This run's containers, networks and volumes: unique names, one label, removed by `cleanup`."""

    def __init__(self):
        self.run_id = f"sct{os.getpid()}{secrets.token_hex(3)}"
        self.containers, self.networks, self.volumes, self.images, self.projects = [], [], [], [], []

    def name(self, suffix) -> str:
        return f"{self.run_id}-{suffix}"

    def network(self, suffix="net") -> str:
        name = self.name(suffix)
        podman("network", "create", "--label", f"{LABEL}={self.run_id}", name)
        self.networks.append(name)
        return name

    def volume(self, suffix) -> str:
        name = self.name(suffix)
        podman("volume", "create", "--label", f"{LABEL}={self.run_id}", name)
        self.volumes.append(name)
        return name

    def run(self, suffix, image, env=None, ports=None, volumes=None, network=None, aliases=(), args=()):
        """Start a detached container; ``ports`` ``{host_port: container_port}`` on 127.0.0.1 only."""
        name = self.name(suffix)
        command = ["run", "-d", "--name", name, "--label", f"{LABEL}={self.run_id}"]
        for key, value in (env or {}).items():
            command += ["-e", f"{key}={value}"]
        for host_port, container_port in (ports or {}).items():
            command += ["-p", f"127.0.0.1:{host_port}:{container_port}"]
        for volume, target in (volumes or {}).items():
            command += ["-v", f"{volume}:{target}"]
        if network:
            command += ["--network", network] + [f"--network-alias={alias}" for alias in aliases]
        self.containers.append(name)
        podman(*command, image, *args)
        return name

    def inspect(self, name) -> dict:
        return json.loads(podman("inspect", name).stdout)[0]

    def state(self, name) -> dict:
        return self.inspect(name)["State"]

    def logs(self, name, lines=60) -> str:
        result = podman("logs", "--tail", lines, name, check=False)
        return result.stdout + result.stderr

    def exec(self, name, *command, timeout=60.0, check=True):
        return podman("exec", name, *command, timeout=timeout, check=check)

    def wait_ready(self, name, port, timeout=90.0) -> StarciteServer:
        """Bounded wait until the container's node answers 200 on /health/ready at 127.0.0.1:``port``."""
        node = published(port)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(node.base + "/health/ready", timeout=2).status_code == 200:
                    return node
            except requests.RequestException:
                pass
            state = self.state(name)
            if not state.get("Running"):
                raise RuntimeError(f"{name} is not running (exit {state.get('ExitCode')}):\n{self.logs(name)}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{name} not ready after {timeout:.0f}s:\n{self.logs(name)}")
            time.sleep(0.5)

    def cleanup(self):
        """Remove every container, network, volume and image of this run (best effort, bounded)."""
        labelled = podman("ps", "-aq", "--filter", f"label={LABEL}={self.run_id}", check=False).stdout.split()
        for project in self.projects:  # what a compose `down` left (or never reached)
            labelled += podman("ps", "-aq", "--filter", f"label=io.podman.compose.project={project}",
                               check=False).stdout.split()
            self.networks.append(f"{project}_default")
            self.volumes += [v for v in podman("volume", "ls", "-q", check=False).stdout.split()
                             if v.startswith(f"{project}_")]
        for container in dict.fromkeys(labelled + self.containers):
            podman("rm", "-f", "-v", "-t", "2", container, check=False, timeout=90)
        for network in self.networks:
            podman("network", "rm", "-f", network, check=False)
        for volume in self.volumes:
            podman("volume", "rm", "-f", volume, check=False)
        for image in self.images:
            podman("rmi", "-f", image, check=False)


def free_ports(count) -> list:
    ports = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)
