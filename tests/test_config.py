"""Tests of `starcite.config`: defaults, the TOML file, environment overrides and validation.

Owns: temporary TOML files and explicit ``environ`` dicts (never the process
environment). Must not: depend on the machine's environment variables.
"""

import json
import os
import pathlib
import re
import tomllib

import pytest

from starcite import config as cfg
from starcite.config import SETTINGS, Config, ConfigError, load_config

CONF_DIR = pathlib.Path(__file__).resolve().parent.parent / "conf"
KiB, MiB, GiB = 1024, 1024**2, 1024**3


def toml_text(values: dict) -> str:
    """``{"http.port": 1}`` -> TOML with one table per dotted prefix (JSON literals are valid TOML here)."""
    tables = {}
    for dotted, value in values.items():
        table, _, leaf = dotted.rpartition(".")
        tables.setdefault(table, []).append(f"{leaf} = {json.dumps(value)}")
    return "\n".join(f"[{table}]\n" + "\n".join(lines) + "\n" if table else "\n".join(lines) + "\n"
                     for table, lines in tables.items())


@pytest.fixture
def load(tmp_path):
    """``load(toml=None, **env)``: write ``toml`` (str, or dict for `toml_text`) and load it with ``env``."""

    def _load(toml=None, **env):
        path = None
        if toml is not None:
            path = tmp_path / "starcite.toml"
            path.write_text(toml if isinstance(toml, str) else toml_text(toml), encoding="utf-8")
        return load_config(str(path) if path else None, env)

    return _load


def config_error(load, toml=None, **env) -> str:
    with pytest.raises(ConfigError) as info:
        load(toml, **env)
    return str(info.value)


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


# -- TOML file and environment -------------------------------------------------------


def test_toml_file_with_nested_tables_and_dotted_keys(load):
    config = load("""
        archive.adapter = "local"
        [node]
        name = "n1"
        data_dir = "/var/lib/starcite"
        [http]
        port = 8080
        max_body_size = "2MB"
        [raft]
        num_groups = 4
        fsync = false
        [cluster]
        nodes = ["n1@10.0.0.1:4400", "n2@10.0.0.2:4400", "n3@10.0.0.3:4400"]
        write_node_ids = ["n1", "n2", "n3"]
        secret = "0123456789abcdef0123"
        [storage]
        event_store_max_size = "64MB"
    """)
    assert (config.node_name, config.port, config.max_body_bytes, config.num_groups, config.raft_fsync) == (
        "n1", 8080, 2 * MiB, 4, False)
    assert config.write_node_ids == ["n1", "n2", "n3"]
    assert config.event_store_max_bytes == 64 * MiB
    assert config.raft_data_dir == "/var/lib/starcite/raft"


# Two valid, distinct samples per parser: (TOML value, env text, parsed), for the file and for the env.
SAMPLES = {
    cfg._int: ((77, "77", 77), (88, "88", 88)),
    cfg._float: ((0.5, "0.5", 0.5), (0.75, "0.75", 0.75)),
    cfg._str: (("x", "x", "x"), ("y", "y", "y")),
    cfg.parse_size: (("3MB", "3MB", 3 * MiB), (5120, "5kb", 5 * KiB)),
    cfg.parse_bool: ((False, "false", False), (True, "yes", True)),
    cfg.parse_list: ((["a", "b"], "a,b", ["a", "b"]), (["c"], " c , d ", ["c", "d"])),
}
FIELD_SAMPLES = {
    "archive_adapter": (("s3", "s3", "s3"), ("postgres", "postgres", "postgres")),
    "auth_mode": (("jwt", "jwt", "jwt"), ("none", "none", "none")),
    "log_level": (("debug", "debug", "debug"), ("ERROR", "ERROR", "ERROR")),
    "log_format": (("json", "json", "json"), ("text", " JSON ", "json")),
    "cluster_nodes": ((["a@h:1", "b@h:2"], "a@h:1,b@h:2", ["a@h:1", "b@h:2"]),
                      (["a@h:3"], " a@h:3 , c@h:4 ", ["a@h:3", "c@h:4"])),
    "write_node_ids": ((["a", "b"], "a,b", ["a", "b"]), (["c"], " c , a ", ["c", "a"])),
    "auth_jwks_refetch_ms": ((1500, "1500", 1500), (250, "250", 250)),  # at least 100
}
_SECRET = {"STARCITE_CLUSTER_SECRET": "0123456789abcdef"}
FIELD_COMPANIONS = {
    "cluster_nodes": {"NODE_NAME": "a", "STARCITE_WRITE_REPLICATION_FACTOR": "1", **_SECRET},
    "write_node_ids": {"CLUSTER_NODES": "a@h:1,b@h:2,c@h:3", "NODE_NAME": "a",
                       "STARCITE_WRITE_REPLICATION_FACTOR": "1", **_SECRET},
}
# Settings the restricted samples above need (explicit, so they are never the value under test).
COMPANIONS = {"STARCITE_S3_BUCKET": "b", "DATABASE_URL": "postgres://db", "STARCITE_AUTH_JWKS_URL": "http://jwks",
              "STARCITE_AUTH_JWT_ISSUER": "iss", "STARCITE_AUTH_JWT_AUDIENCE": "aud", "SECRET_KEY_BASE": "k"}
ENV_CASES = [(name, env) for name, (_key, envs, *_rest) in SETTINGS.items() for env in envs]


def samples(name):
    return FIELD_SAMPLES.get(name) or SAMPLES[SETTINGS[name][2]]


def companions(name):
    return FIELD_COMPANIONS.get(name) or (COMPANIONS if name in FIELD_SAMPLES else {})


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_setting_loads_from_its_toml_key(load, name):
    (toml_value, _env, parsed), _ = samples(name)
    assert getattr(load({SETTINGS[name][0]: toml_value}, **companions(name)), name) == parsed


@pytest.mark.parametrize("name, env", ENV_CASES)
def test_every_env_var_overrides_the_file(load, name, env):
    (toml_value, *_), (_toml, env_text, parsed) = samples(name)
    assert getattr(load({SETTINGS[name][0]: toml_value}, **{env: env_text}, **companions(name)), name) == parsed


@pytest.mark.parametrize("name, first, second", [(n, *SETTINGS[n][1]) for n in SETTINGS if len(SETTINGS[n][1]) == 2])
def test_first_env_var_wins_over_its_fallback(name, first, second):
    assert getattr(load_config(None, {first: "primary", second: "fallback"}), name) == "primary"


@pytest.mark.parametrize("name, env", [
    ("s3_access_key_id", "AWS_ACCESS_KEY_ID"),
    ("s3_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
    ("s3_session_token", "AWS_SESSION_TOKEN"),
    ("s3_region", "AWS_REGION"),
])
def test_aws_variables_are_s3_fallbacks(name, env):
    assert getattr(load_config(None, {env: "from-aws"}), name) == "from-aws"


@pytest.mark.parametrize("env, expected", [
    ({"DATABASE_URL": "postgres://a", "STARCITE_POSTGRES_URL": "postgres://b"}, "postgres://a"),
    ({"STARCITE_POSTGRES_URL": "postgres://b"}, "postgres://b"),
    ({"DATABASE_URL": "", "STARCITE_POSTGRES_URL": "postgres://b"}, "postgres://b"),
])
def test_database_url_precedence(env, expected):
    assert load_config(None, {"STARCITE_ARCHIVE_ADAPTER": "postgres", **env}).postgres_url == expected


def test_empty_env_var_is_ignored(load):
    assert load({"http.port": 5000}, PORT="").port == 5000


# -- value parsers ---------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("2GB", 2 * GiB),
    ("64MB", 64 * MiB),
    ("512kb", 512 * KiB),
    ("512KiB", 512 * KiB),
    ("10k", 10 * KiB),
    ("1.5k", 1536),
    (" 10 mb ", 10 * MiB),
    ("7b", 7),
    ("1t", 1024**4),
    ("1048576", MiB),
    (1048576, MiB),
])
def test_parse_size(text, expected):
    assert cfg.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-1", "10 XB", "1e3", "mb", "5ib", "5 i", "1,5MB", True])
def test_parse_size_rejects_garbage(text):
    with pytest.raises(ValueError):
        cfg.parse_size(text)


@pytest.mark.parametrize("text, expected", [
    *[(t, True) for t in ("1", "true", "TRUE", " yes ", "on", True)],
    *[(t, False) for t in ("0", "false", "No", "off", False)],
])
def test_parse_bool(text, expected):
    assert cfg.parse_bool(text) is expected


@pytest.mark.parametrize("text", ["", "maybe", "2", "truthy"])
def test_parse_bool_rejects_garbage(text):
    with pytest.raises(ValueError):
        cfg.parse_bool(text)


@pytest.mark.parametrize("value, expected", [
    ("a,b,c", ["a", "b", "c"]),
    (" a , b ,, c ,", ["a", "b", "c"]),
    ("", []),
    ("solo", ["solo"]),
    (["a", " b ", ""], ["a", "b"]),
])
def test_parse_list(value, expected):
    assert cfg.parse_list(value) == expected


@pytest.mark.parametrize("env, text", [
    ("STARCITE_EVENT_STORE_MAX_SIZE", "lots"),
    ("STARCITE_MAX_BODY_SIZE", "1 XB"),
    ("STARCITE_ARCHIVE_READ_CACHE_MAX_SIZE", "-5MB"),
    ("PORT", "abc"),
    ("PORT", "4000.5"),
    ("STARCITE_NUM_GROUPS", "sixteen"),
    ("STARCITE_RAFT_FSYNC", "maybe"),
    ("STARCITE_ACCESS_LOG", "2"),
    ("STARCITE_GRACEFUL_TIMEOUT_SECONDS", "soon"),
])
def test_unparsable_env_value_names_the_variable(load, env, text):
    assert config_error(load, **{env: text}).startswith(f"{env}: ")


@pytest.mark.parametrize("key, value", [
    ("storage.event_store_max_size", "lots"),
    ("http.port", "abc"),
    ("http.port", True),
    ("raft.fsync", "maybe"),
    ("raft.num_groups", [1]),
])
def test_unparsable_toml_value_names_the_key(load, key, value):
    assert config_error(load, {key: value}).startswith(f"{key}: ")


@pytest.mark.parametrize("key", ["http.port", "raft.num_groups"])
@pytest.mark.parametrize("value", [10.5, 4000.0])
def test_toml_float_for_integer_setting_is_rejected(load, key, value):
    assert config_error(load, {key: value}).startswith(f"{key}: ")


# -- file errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("toml, unknown", [
    ("[http]\nprot = 1\n", "http.prot"),
    ("colour = 'blue'\n", "colour"),
    ("[http.port]\nvalue = 1\n", "http.port.value"),
    ("[s3]\nbucket = 'b'\n[archive]\nadapter = 's3'\nflush_ms = 5\n", "archive.flush_ms"),
])
def test_unknown_toml_key_is_named(load, toml, unknown):
    message = config_error(load, toml)
    assert message.startswith(f"{unknown}: unknown key")
    assert "starcite.toml" in message


@pytest.mark.parametrize("toml", ["[http\nport = 1\n", "port = \n", "[http]\nport = 1\nport = 2\n", "= 3\n"])
def test_invalid_toml_is_config_error(load, toml):
    assert "invalid TOML" in config_error(load, toml)


def test_non_utf8_file_is_config_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[node]\nname = "n\xe9ud"\n')
    with pytest.raises(ConfigError, match="latin1.toml.*not UTF-8"):
        load_config(str(path), {})


@pytest.mark.parametrize("make_path", [lambda d: d / "missing.toml", lambda d: d])
def test_unreadable_file_is_config_error(tmp_path, make_path):
    path = str(make_path(tmp_path))
    with pytest.raises(ConfigError, match=re.escape(path)):
        load_config(path, {})


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize("env, key, value", [
    ("PORT", "http.port", "0"),
    ("PORT", "http.port", "65536"),
    ("PORT", "http.port", "-1"),
    ("STARCITE_ARCHIVE_ADAPTER", "archive.adapter", "ftp"),
    ("STARCITE_AUTH_MODE", "auth.mode", "foo"),
    ("STARCITE_NUM_GROUPS", "raft.num_groups", "0"),
    ("STARCITE_NUM_GROUPS", "raft.num_groups", "1025"),
    ("STARCITE_WRITE_REPLICATION_FACTOR", "raft.replication_factor", "0"),
    ("STARCITE_ARCHIVE_FLUSH_INTERVAL_MS", "archive.flush_interval_ms", "5"),
    ("STARCITE_EVENT_STORE_MAX_SIZE", "storage.event_store_max_size", "0"),
    ("STARCITE_MAX_BODY_SIZE", "http.max_body_size", "0kb"),
    ("STARCITE_RAFT_TIMEOUT_MS", "raft.command_timeout_ms", "9"),
    ("STARCITE_AUTH_JWKS_UNKNOWN_KID_REFETCH_MS", "auth.jwks_unknown_kid_refetch_ms", "99"),
    ("STARCITE_ARCHIVE_READ_CACHE_RECLAIM_FRACTION", "archive.read_cache_reclaim_fraction", "0"),
    ("STARCITE_ARCHIVE_READ_CACHE_RECLAIM_FRACTION", "archive.read_cache_reclaim_fraction", "1.5"),
    ("STARCITE_LOG_LEVEL", "node.log_level", "loud"),
    ("STARCITE_LOG_FORMAT", "node.log_format", "xml"),
])
@pytest.mark.parametrize("source", ["env", "toml"])
def test_invalid_value_names_env_var_and_key(load, source, env, key, value):
    message = config_error(load, {key: value}) if source == "toml" else config_error(load, **{env: value})
    assert message.startswith(f"{env} ({key}): ")
    assert ", got " in message


@pytest.mark.parametrize("env, missing", [
    ({"STARCITE_ARCHIVE_ADAPTER": "s3"}, "STARCITE_S3_BUCKET"),
    ({"STARCITE_ARCHIVE_ADAPTER": "postgres"}, "DATABASE_URL"),
    ({"STARCITE_AUTH_MODE": "jwt"}, "STARCITE_AUTH_JWKS_URL"),
    ({"STARCITE_AUTH_MODE": "jwt", "STARCITE_AUTH_JWKS_URL": "http://j"}, "STARCITE_AUTH_JWT_ISSUER"),
    ({"STARCITE_AUTH_MODE": "jwt", "STARCITE_AUTH_JWKS_URL": "http://j", "STARCITE_AUTH_JWT_ISSUER": "i"},
     "STARCITE_AUTH_JWT_AUDIENCE"),
    ({"STARCITE_AUTH_MODE": "jwt", "STARCITE_AUTH_JWKS_URL": "http://j", "STARCITE_AUTH_JWT_ISSUER": "i",
      "STARCITE_AUTH_JWT_AUDIENCE": "a"}, "SECRET_KEY_BASE"),
])
def test_mode_without_its_required_setting_names_the_variable(env, missing):
    with pytest.raises(ConfigError, match=f"^{missing} "):
        load_config(None, env)


@pytest.mark.parametrize("env", [
    {"STARCITE_ARCHIVE_ADAPTER": "s3", "STARCITE_S3_BUCKET": "b"},
    {"STARCITE_ARCHIVE_ADAPTER": "postgres", "STARCITE_POSTGRES_URL": "postgres://db"},
    {"STARCITE_AUTH_MODE": "jwt", "STARCITE_AUTH_JWKS_URL": "http://j", "STARCITE_AUTH_JWT_ISSUER": "i",
     "STARCITE_AUTH_JWT_AUDIENCE": "a", "SECRET_KEY_BASE": "k"},
])
def test_mode_with_its_required_settings_loads(env):
    load_config(None, env)


# -- Config object and docs ------------------------------------------------------------------


def test_config_replace_and_unknown_attribute():
    config = load_config(None, {})
    changed = config.replace(port=4242)
    assert (changed.port, config.port) == (4242, 4000)
    assert isinstance(changed, Config)
    with pytest.raises(AttributeError):
        config.no_such_setting  # noqa: B018


def test_settings_table_lists_every_env_var_and_key():
    table = cfg.settings_table()
    for name, env in ENV_CASES:
        assert f"`{env}`" in table and f"`{SETTINGS[name][0]}`" in table


# -- shipped config files ----------------------------------------------------------------------


def conf_files():
    return sorted(CONF_DIR.glob("*.toml")) or [pytest.param(None, marks=pytest.mark.skip("no conf/*.toml yet"))]


@pytest.mark.parametrize("path", conf_files(), ids=lambda p: getattr(p, "name", "none"))
def test_every_key_of_shipped_config_parses(path):
    tree = tomllib.loads(path.read_text(encoding="utf-8"))
    parsers = {key: parser for key, _envs, parser, *_rest in SETTINGS.values()}
    for dotted in cfg._walk(tree):
        assert dotted in parsers, f"{path.name}: unknown key {dotted}"
        parsers[dotted](cfg._lookup(tree, dotted))


@pytest.mark.skipif(not (CONF_DIR / "starcite.toml").exists(), reason="conf/starcite.toml not written yet")
def test_default_config_file_loads_with_empty_env():
    load_config(str(CONF_DIR / "starcite.toml"), {})


def test_readme_configuration_table_matches_the_code():
    """The README's table is generated from SETTINGS; regenerate it when a setting changes."""
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert cfg.settings_table() in readme


def test_shipped_config_file_is_generated_from_the_settings():
    """conf/starcite.toml documents every setting; regenerate it with `starcite.config.documented_toml()`."""
    assert (CONF_DIR / "starcite.toml").read_text(encoding="utf-8") == cfg.documented_toml()
