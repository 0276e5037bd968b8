"""Tests of `starcite.config.settings`'s values: the parsers and the validation of what they parse.

Owns: `parse_size`, `parse_bool` and `parse_list` (accepted and refused
text), unparsable values naming the variable or key, floats refused for
integers, out-of-range values naming both the variable and the key, and the
settings an archive adapter or auth mode requires. Must not: depend on the
machine's environment variables (explicit ``environ`` dicts only).
"""

import pytest

from starcite.config import settings as cfg
from starcite.config.settings import ConfigError, load_config
from tests.config.helpers import GiB, KiB, MiB, config_error


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
    ("STARCITE_TAIL_SSE_KEEPALIVE_MS", "tail.sse_keepalive_ms", "9"),
    ("STARCITE_TAIL_SSE_RETRY_MS", "tail.sse_retry_ms", "-1"),
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
