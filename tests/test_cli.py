"""`starcite serve` start-up errors and the ops console against a real node."""

import json
import os
import subprocess

from tests.server import STARCITE


def serve_error(tmp_path, env, args=()):
    full = {**os.environ, "STARCITE_DATA_DIR": str(tmp_path / "data"), "PORT": "1", **env}
    result = subprocess.run([STARCITE, "serve", *args], env=full, capture_output=True, text=True, timeout=30)
    return result.returncode, result.stderr.strip()


def test_invalid_config_is_one_clear_line(tmp_path):
    for env, needle in [({"PORT": "0"}, "PORT"), ({"STARCITE_ARCHIVE_ADAPTER": "ftp"}, "STARCITE_ARCHIVE_ADAPTER"),
                        ({"STARCITE_EVENT_STORE_MAX_SIZE": "lots"}, "STARCITE_EVENT_STORE_MAX_SIZE"),
                        ({"STARCITE_ARCHIVE_ADAPTER": "s3"}, "STARCITE_S3_BUCKET"),
                        ({"NODE_NAME": "a", "STARCITE_WRITE_NODE_IDS": "a,b,c"}, "STARCITE_WRITE_NODE_IDS")]:
        code, err = serve_error(tmp_path, env)
        assert code == 2 and needle in err and len(err.splitlines()) == 1, (env, err)


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[http]\nnope = 1\n")
    code, err = serve_error(tmp_path, {}, ["--config", str(bad)])
    assert code == 2 and "http.nope" in err
    code, err = serve_error(tmp_path, {}, ["--config", str(tmp_path / "missing.toml")])
    assert code == 2 and "missing.toml" in err


def test_num_groups_cannot_change_under_existing_data(make_server, tmp_path):
    server = make_server({"STARCITE_NUM_GROUPS": "4"}, data_dir=tmp_path / "d")
    server.create("s")
    server.stop()
    code, err = serve_error(tmp_path, {"STARCITE_DATA_DIR": str(tmp_path / "d"), "STARCITE_NUM_GROUPS": "8"})
    assert code == 2 and "STARCITE_NUM_GROUPS" in err


def test_ops_console(server):
    def ops(*args):
        result = subprocess.run([STARCITE, "ops", *args], capture_output=True, text=True, timeout=30,
                                env=server.env)  # finds the node from the same environment as `serve`
        return result.returncode, json.loads(result.stdout)

    code, status = ops("status", "--json")
    assert code == 0 and status["ready"] and len(status["groups"]) == 16
    summary = subprocess.run([STARCITE, "ops", "status", "--socket", server.ops_socket], capture_output=True,
                             text=True, timeout=30)
    assert summary.returncode == 0 and f"node {status['node']} (write_node): ready" in summary.stdout
    assert len([line for line in summary.stdout.splitlines() if line.split()[0].isdigit()]) == 16
    assert all(group["is_leader"] for group in status["groups"])
    code, ready = ops("ready-nodes")
    assert code == 0 and ready["ready_nodes"] == [status["node"]]
    code, drained = ops("drain")
    assert code == 0 and drained["statuses"][status["node"]] == "draining"
    assert ops("wait-drained", "2000")[0] == 0
    assert server.request("GET", "/health/ready").json()["reason"] == "draining"
    assert ops("wait-ready", "300")[0] == 1
    assert ops("undrain")[0] == 0
    assert ops("wait-ready", "5000")[0] == 0


def test_the_public_port_refuses_ops_and_the_socket_is_private(server):
    for method, path in (("GET", "/ops/status"), ("POST", "/ops/drain"), ("GET", "/ops/ready-nodes")):
        response = server.request(method, path)
        assert response.status_code == 404 and response.json()["error"], (method, path, response.text)
    assert oct(os.stat(server.ops_socket).st_mode & 0o777) == "0o600"
    assert server.ops("GET", "/ops/status")[0] == 200
    assert server.request("GET", "/health/ready").status_code == 200  # nothing drained through the API port


def test_ops_without_a_running_node_exits_2(tmp_path):
    result = subprocess.run([STARCITE, "ops", "status"], capture_output=True, text=True, timeout=30,
                            env={**os.environ, "STARCITE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2 and "ops socket" in result.stderr


def test_a_cluster_member_with_a_loopback_api_and_a_routable_peer_address_is_warned():
    from starcite.cli import api_reach_warning
    from starcite.config.settings import load_config
    cluster = {"CLUSTER_NODES": "n1@10.0.0.1:4400,n2@10.0.0.2:4400,n3@10.0.0.3:4400", "NODE_NAME": "n1",
               "STARCITE_CLUSTER_SECRET": "s" * 16}
    warning = api_reach_warning(load_config(environ=cluster))
    assert "STARCITE_HOST" in warning and "10.0.0.1" in warning and len(warning.splitlines()) == 1
    assert api_reach_warning(load_config(environ={**cluster, "STARCITE_HOST": "0.0.0.0"})) is None
    loopback = {**cluster, "CLUSTER_NODES": "n1@127.0.0.1:4400,n2@127.0.0.1:4401,n3@127.0.0.1:4402"}
    assert api_reach_warning(load_config(environ=loopback)) is None  # the local cluster
    assert api_reach_warning(load_config(environ={})) is None  # one node


def test_data_in_a_format_this_version_does_not_know_is_refused(tmp_path):
    raft = tmp_path / "d" / "raft"
    raft.mkdir(parents=True)
    (raft / "layout.json").write_text(json.dumps({"num_groups": 16, "data_format": 3}))
    code, err = serve_error(tmp_path, {"STARCITE_DATA_DIR": str(tmp_path / "d")})
    assert code == 2 and "data format 3" in err and "reads format 2" in err and len(err.splitlines()) == 1, err
