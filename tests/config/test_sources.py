"""Tests of where `starcite.config.settings` reads settings from: the TOML file and the environment.

Owns: nested tables and dotted keys, every setting from its TOML key and
every environment variable overriding the file, fallback variables (AWS,
``DATABASE_URL``), empty variables ignored, and the file's own errors
(unknown keys, invalid TOML, non-UTF-8, unreadable paths). Must not: depend
on the machine's environment variables (explicit ``environ`` dicts only).
"""

import re

import pytest

from starcite.config import settings as cfg
from starcite.config.settings import SETTINGS, ConfigError, load_config
from tests.config.helpers import ENV_CASES, KiB, MiB, config_error


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
    cfg.parse_duration: (("30d", "30d", 30 * 86400), (5400, " 90m ", 5400)),
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
    "workers": ((3, "3", 3), (8, "8", 8)),  # 1..64
    "cors_origins": ((["https://a.example", "*"], "https://a.example,*", ["https://a.example", "*"]),
                     (["http://b:1"], " http://b:1 , https://c ", ["http://b:1", "https://c"])),
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
