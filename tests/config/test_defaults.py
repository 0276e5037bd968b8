"""Tests of `starcite.config.settings` with no file and small environments: defaults and cluster settings.

Owns: every setting's default (and the derived ones: node name, Raft and
archive directories), single-node and cluster membership from
``CLUSTER_NODES`` / write node ids, and the one-line refusals of inconsistent
cluster settings. Must not: depend on the machine's environment variables,
or write files.
"""

import os
import re

import pytest

from starcite.config.settings import SETTINGS, ConfigError, load_config
from tests.config.helpers import GiB, MiB


# -- defaults -------------------------------------------------------------------


@pytest.mark.parametrize("field, expected", [
    ("port", 4000),
    ("host", "127.0.0.1"),
    ("archive_adapter", "local"),
    ("auth_mode", "none"),
    ("data_dir", "./data"),
    ("raft_data_dir", os.path.join("./data", "raft")),
    ("archive_dir", os.path.join("./data", "archive")),
    ("max_body_bytes", MiB),
    ("event_store_max_bytes", 2 * GiB),
    ("read_cache_max_bytes", 512 * MiB),
    ("write_node_ids", []),
    ("num_groups", 16),
    ("replication_factor", 3),
    ("raft_fsync", True),
    ("s3_region", "us-east-1"),
    ("s3_path_style", True),
    ("s3_bucket", None),
    ("postgres_url", None),
    ("log_level", "info"),
    ("log_format", "text"),
])
def test_default(field, expected):
    assert getattr(load_config(None, {}), field) == expected


def test_every_setting_has_its_declared_default_except_derived_ones():
    values = load_config(None, {}).values
    derived = {"node_name", "raft_data_dir", "archive_dir"}
    assert set(values) == set(SETTINGS)
    assert {name: values[name] for name in SETTINGS if name not in derived} == {
        name: spec[3] for name, spec in SETTINGS.items() if name not in derived}


def test_default_node_name_is_random_and_single_node():
    config = load_config(None, {})
    assert re.fullmatch(r"starcite-[0-9a-f]{6}", config.node_name)
    assert config.single_node


def test_single_write_node_names_the_node():
    config = load_config(None, {"STARCITE_WRITE_NODE_IDS": "n1"})
    assert (config.node_name, config.write_node_ids, config.single_node) == ("n1", ["n1"], True)


CLUSTER = {"CLUSTER_NODES": "n1@127.0.0.1:4401,n2@127.0.0.1:4402,n3@127.0.0.2:4403", "NODE_NAME": "n2",
           "STARCITE_CLUSTER_SECRET": "s" * 32}


def test_cluster_nodes_name_every_node_and_default_the_write_nodes():
    config = load_config(None, CLUSTER)
    assert (config.node_name, config.single_node, config.write_node_ids) == ("n2", False, ["n1", "n2", "n3"])
    assert config.peers == {"n1": ("127.0.0.1", 4401), "n2": ("127.0.0.1", 4402), "n3": ("127.0.0.2", 4403)}


def test_one_cluster_entry_is_a_single_node():
    config = load_config(None, {"CLUSTER_NODES": "solo@127.0.0.1:4400"})
    assert (config.node_name, config.single_node) == ("solo", True)


@pytest.mark.parametrize("env, message", [
    ({**CLUSTER, "STARCITE_CLUSTER_SECRET": ""}, "STARCITE_CLUSTER_SECRET (cluster.secret): required"),
    ({**CLUSTER, "STARCITE_CLUSTER_SECRET": "short"}, "STARCITE_CLUSTER_SECRET (cluster.secret): must be at least"),
    ({**CLUSTER, "NODE_NAME": "n9"}, "NODE_NAME (node.name): n9 is not one of CLUSTER_NODES"),
    ({**CLUSTER, "NODE_NAME": ""}, "NODE_NAME (node.name): required"),
    ({**CLUSTER, "CLUSTER_NODES": "n1@127.0.0.1,n2@127.0.0.1:1"}, "'n1@127.0.0.1' is not name@host:peer_port"),
    ({**CLUSTER, "CLUSTER_NODES": "n2@h:1,n2@h:2"}, "n2 is named twice"),
    ({**CLUSTER, "STARCITE_WRITE_NODE_IDS": "n1,n4"}, "n4 not in CLUSTER_NODES"),
    ({**CLUSTER, "STARCITE_WRITE_NODE_IDS": "n1,n2"}, "(raft.replication_factor): 3 is more than the 2 write nodes"),
    ({"STARCITE_WRITE_NODE_IDS": "n1,n2,n3", "NODE_NAME": "n2"}, "does not give the peer address"),
])
def test_cluster_settings_refused_with_one_line(env, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, env)


def test_router_only_node_and_smaller_replication():
    config = load_config(None, {**CLUSTER, "STARCITE_WRITE_NODE_IDS": "n1,n3",
                                "STARCITE_WRITE_REPLICATION_FACTOR": "2"})
    assert (config.write_node_ids, config.replication_factor) == (["n1", "n3"], 2)


@pytest.mark.parametrize("env, raft_dir, archive_dir", [
    ({"STARCITE_DATA_DIR": "/srv/sc"}, "/srv/sc/raft", "/srv/sc/archive"),
    ({"STARCITE_DATA_DIR": "/srv/sc", "STARCITE_RAFT_DATA_DIR": "/fast/raft"}, "/fast/raft", "/srv/sc/archive"),
    ({"STARCITE_ARCHIVE_DIR": "/cold"}, os.path.join("./data", "raft"), "/cold"),
])
def test_derived_directories_follow_data_dir(env, raft_dir, archive_dir):
    config = load_config(None, env)
    assert (config.raft_data_dir, config.archive_dir) == (raft_dir, archive_dir)
