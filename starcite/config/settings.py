"""Node configuration: one TOML file (`conf/*.toml`) overridden by environment.

Owns: every setting's name, default, type, the TOML key and the environment
variable that overrides it, and validation with one clear error line naming
the key. Must not: start anything, open files other than the config file, or
read the environment anywhere else in the code base (everyone else reads a
`Config`).
"""

import dataclasses
import os
import re
import secrets
import tomllib


class ConfigError(Exception):
    """Invalid configuration; the message names the offending key."""


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
               "g": 1024**3, "gb": 1024**3, "gib": 1024**3, "t": 1024**4, "tb": 1024**4, "tib": 1024**4}


def parse_size(value) -> int:
    """``"2GB"``, ``"64MB"``, ``"512kb"``, ``1048576`` -> bytes (binary units)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE_RE.match(str(value))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"not a size: {value!r} (use e.g. 64MB, 2GB)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


_DURATION_RE = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value):
    """``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``, ``3600`` (seconds) -> whole seconds; ``"none"``, ``0``,
    ``""`` -> None (no duration)."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f"not a duration: {value!r} (use whole seconds or e.g. 90m, 12h, 30d)")
    if isinstance(value, int):
        return value or None
    if str(value).strip().lower() in ("", "none", "off", "0"):
        return None
    match = _DURATION_RE.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use whole seconds or e.g. 90m, 12h, 30d)")
    return int(match.group(1)) * _DURATION_UNITS[(match.group(2) or "").lower()] or None


def parse_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def parse_list(value) -> list:
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _int(value) -> int:
    # TOML gives bool/float as such: never truncate 4000.5 (or True) to an int.
    if isinstance(value, (bool, float)):
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


def _float(value) -> float:
    return float(value)


def _str(value) -> str:
    return str(value)


def _lower(value) -> str:
    return str(value).strip().lower()


_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s?#]+$", re.IGNORECASE)  # a browser's Origin header

# (field, toml key, env vars (first set wins), parser, default, help)
_SETTINGS = [
    ("node_name", "node.name", ["NODE_NAME"], _str, None, "Node identity; random when unset"),
    ("host", "http.host", ["STARCITE_HOST"], _str, "127.0.0.1", "HTTP listen address"),
    ("port", "http.port", ["PORT"], _int, 4000, "HTTP listen port"),
    ("max_body_bytes", "http.max_body_size", ["STARCITE_MAX_BODY_SIZE"], parse_size, 1024**2,
     "Largest accepted request body (413 above)"),
    ("graceful_timeout", "http.graceful_timeout_seconds", ["STARCITE_GRACEFUL_TIMEOUT_SECONDS"], _float, 10.0,
     "Seconds SIGTERM waits for in-flight requests"),
    ("cors_origins", "http.cors_origins", ["STARCITE_CORS_ORIGINS"], parse_list, None,
     "Origins browsers may call the API from (CORS): * or scheme://host[:port], comma-separated; "
     "default * with auth none, none with jwt (name your apps' origins)"),
    ("data_dir", "node.data_dir", ["STARCITE_DATA_DIR"], _str, "./data", "Root of all node data"),
    ("raft_data_dir", "raft.data_dir", ["STARCITE_RAFT_DATA_DIR"], _str, None,
     "Raft journals and snapshots (default <data_dir>/raft)"),
    ("workers", "node.workers", ["STARCITE_WORKERS"], _int, None,
     "Worker processes of a lone node, each owning a disjoint share of the groups (default 1 for now: see "
     "bench/README.md, Workers; a cluster's nodes run one each for now)"),
    ("num_groups", "raft.num_groups", ["STARCITE_NUM_GROUPS"], _int, 16, "Session sharding groups"),
    ("replication_factor", "raft.replication_factor", ["STARCITE_WRITE_REPLICATION_FACTOR"], _int, 3,
     "Replicas per group (refused when larger than the number of write nodes in a cluster)"),
    ("cluster_nodes", "cluster.nodes", ["CLUSTER_NODES"], parse_list, [],
     "Every node as name@host:peer_port, the same on every node; empty or one entry: a single node"),
    ("write_node_ids", "cluster.write_node_ids", ["STARCITE_WRITE_NODE_IDS"], parse_list, [],
     "Write nodes by name (default: every node in CLUSTER_NODES); others are router-only"),
    ("cluster_secret", "cluster.secret", ["STARCITE_CLUSTER_SECRET"], _str, None,
     "Shared secret of the peer port (required with more than one node)"),
    ("observer_lost_after_ms", "cluster.lost_after_ms", ["STARCITE_OBSERVER_LOST_AFTER_MS"], _int, 120000,
     "How long a write node stays suspect (peer link down) before the Observer calls it lost"),
    ("raft_timeout_ms", "raft.command_timeout_ms", ["STARCITE_RAFT_TIMEOUT_MS"], _int, 5000,
     "How long an append waits for commit before 503 raft_timeout"),
    ("raft_fsync", "raft.fsync", ["STARCITE_RAFT_FSYNC"], parse_bool, True,
     "fsync the journal before acknowledging (group commit)"),
    ("snapshot_entries", "raft.snapshot_entries", ["STARCITE_RAFT_SNAPSHOT_ENTRIES"], _int, 50000,
     "Journal entries between snapshots"),
    ("event_store_max_bytes", "storage.event_store_max_size", ["STARCITE_EVENT_STORE_MAX_SIZE"], parse_size,
     2 * 1024**3, "Hot (unarchived) event memory cap; 429 above"),
    ("archive_adapter", "archive.adapter", ["STARCITE_ARCHIVE_ADAPTER"], _str, "local",
     "local, s3 or postgres"),
    ("archive_dir", "archive.local_dir", ["STARCITE_ARCHIVE_DIR"], _str, None,
     "Directory of the local archive (default <data_dir>/archive)"),
    ("archive_flush_interval_ms", "archive.flush_interval_ms", ["STARCITE_ARCHIVE_FLUSH_INTERVAL_MS"], _int, 5000,
     "Archive flush interval"),
    ("archive_batch_size", "archive.batch_size", ["STARCITE_ARCHIVE_BATCH_SIZE"], _int, 5000,
     "Most events flushed per session per cycle"),
    ("session_ttl_s", "sessions.ttl", ["STARCITE_SESSION_TTL"], parse_duration, None,
     "Time to live of a new session that names no expires_at or ttl_seconds: whole seconds or e.g. 90m, 12h, "
     "30d (from its creation; the session and its events are then deleted); default none, no expiry"),
    ("read_cache_ttl_ms", "archive.read_cache_ttl_ms", ["STARCITE_ARCHIVE_READ_CACHE_TTL_MS"], _int, 600000,
     "Archive read cache TTL"),
    ("read_cache_cleanup_interval_ms", "archive.read_cache_cleanup_interval_ms",
     ["STARCITE_ARCHIVE_READ_CACHE_CLEANUP_INTERVAL_MS"], _int, 60000, "Read cache cleanup interval"),
    ("read_cache_compressed", "archive.read_cache_compressed", ["STARCITE_ARCHIVE_READ_CACHE_COMPRESSED"],
     parse_bool, True, "Compress read cache values"),
    ("read_cache_max_bytes", "archive.read_cache_max_size", ["STARCITE_ARCHIVE_READ_CACHE_MAX_SIZE"], parse_size,
     512 * 1024**2, "Read cache byte budget"),
    ("read_cache_reclaim_fraction", "archive.read_cache_reclaim_fraction",
     ["STARCITE_ARCHIVE_READ_CACHE_RECLAIM_FRACTION"], _float, 0.25, "Fraction of the cache freed when full"),
    ("s3_bucket", "s3.bucket", ["STARCITE_S3_BUCKET"], _str, None, "S3 bucket (s3 mode)"),
    ("s3_region", "s3.region", ["STARCITE_S3_REGION", "AWS_REGION"], _str, "us-east-1", "S3 region"),
    ("s3_endpoint", "s3.endpoint", ["STARCITE_S3_ENDPOINT"], _str, None, "S3-compatible endpoint URL"),
    ("s3_access_key_id", "s3.access_key_id", ["STARCITE_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"], _str, None,
     "S3 access key"),
    ("s3_secret_access_key", "s3.secret_access_key", ["STARCITE_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"],
     _str, None, "S3 secret key"),
    ("s3_session_token", "s3.session_token", ["STARCITE_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"], _str, None,
     "S3 session token"),
    ("s3_prefix", "s3.prefix", ["STARCITE_S3_PREFIX"], _str, "starcite", "Object key prefix"),
    ("s3_path_style", "s3.path_style", ["STARCITE_S3_PATH_STYLE"], parse_bool, True, "Path-style URLs"),
    ("s3_max_write_retries", "s3.max_write_retries", ["STARCITE_S3_MAX_WRITE_RETRIES"], _int, 4,
     "Retries on conditional-write conflicts"),
    ("postgres_url", "postgres.url", ["DATABASE_URL", "STARCITE_POSTGRES_URL"], _str, None,
     "Postgres URL (postgres mode)"),
    ("db_pool_size", "postgres.pool_size", ["DB_POOL_SIZE"], _int, 10, "Postgres connection pool size"),
    ("auth_mode", "auth.mode", ["STARCITE_AUTH_MODE"], _str, "none", "none or jwt"),
    ("auth_jwks_url", "auth.jwks_url", ["STARCITE_AUTH_JWKS_URL"], _str, None, "JWKS URL (jwt mode)"),
    ("auth_issuer", "auth.issuer", ["STARCITE_AUTH_JWT_ISSUER"], _str, None, "Required iss (jwt mode)"),
    ("auth_audience", "auth.audience", ["STARCITE_AUTH_JWT_AUDIENCE"], _str, None, "Required aud (jwt mode)"),
    ("auth_leeway_seconds", "auth.leeway_seconds", ["STARCITE_AUTH_JWT_LEEWAY_SECONDS"], _int, 30,
     "Clock-skew tolerance"),
    ("auth_jwks_refresh_ms", "auth.jwks_refresh_ms", ["STARCITE_AUTH_JWKS_REFRESH_MS"], _int, 60000,
     "JWKS refresh interval"),
    ("auth_jwks_refetch_ms", "auth.jwks_unknown_kid_refetch_ms", ["STARCITE_AUTH_JWKS_UNKNOWN_KID_REFETCH_MS"], _int,
     3000, "Shortest gap between two JWKS refetches caused by tokens with an unknown kid (key rotation)"),
    ("secret_key_base", "auth.secret_key_base", ["SECRET_KEY_BASE"], _str, None,
     "Key material for principal tokens (required in jwt mode)"),
    ("principal_token_salt", "auth.principal_token_salt", ["STARCITE_AUTH_PRINCIPAL_TOKEN_SALT"], _str,
     "principal-token-v1", "Salt for principal token signing"),
    ("principal_token_default_ttl", "auth.principal_token_default_ttl_seconds",
     ["STARCITE_AUTH_PRINCIPAL_TOKEN_DEFAULT_TTL_SECONDS"], _int, 600, "Default principal token TTL"),
    ("principal_token_max_ttl", "auth.principal_token_max_ttl_seconds",
     ["STARCITE_AUTH_PRINCIPAL_TOKEN_MAX_TTL_SECONDS"], _int, 900, "Maximum principal token TTL"),
    ("tail_catchup_interval_ms", "tail.catchup_interval_ms", ["STARCITE_TAIL_CATCHUP_INTERVAL_MS"], _int, 5000,
     "Period of the tail catch-up check"),
    ("sse_keepalive_ms", "tail.sse_keepalive_ms", ["STARCITE_TAIL_SSE_KEEPALIVE_MS"], _int, 15000,
     "An SSE tail that wrote nothing for this long sends a comment line, so that proxies keep it open"),
    ("sse_retry_ms", "tail.sse_retry_ms", ["STARCITE_TAIL_SSE_RETRY_MS"], _int, 1000,
     "The `retry:` an SSE tail sends once: how long an EventSource waits before it reconnects"),
    # Slow, idle and vanished clients (docs/operations.md, "Timeouts with a load balancer").
    ("http_header_timeout_ms", "http.header_timeout_ms", ["STARCITE_HTTP_HEADER_TIMEOUT_MS"], _int, 10000,
     "From accept (or, on a keep-alive connection, from the next request's first byte) to the end of the "
     "request head; past it 408 if a request line was read, then close"),
    ("http_body_timeout_ms", "http.body_timeout_ms", ["STARCITE_HTTP_BODY_TIMEOUT_MS"], _int, 30000,
     "Longest pause while reading a request body (or writing a response); past it 408 and close"),
    ("http_keepalive_timeout_ms", "http.keepalive_timeout_ms", ["STARCITE_HTTP_KEEPALIVE_TIMEOUT_MS"], _int, 75000,
     "An idle keep-alive connection is closed after this; keep it longer than the load balancer's idle timeout"),
    ("tail_ws_ping_ms", "tail.ws_ping_ms", ["STARCITE_TAIL_WS_PING_MS"], _int, 30000,
     "A WebSocket tail is pinged after this long without a write; closed when a ping stays unanswered as long "
     "again, or when a write makes no progress for two intervals"),
    ("max_connections", "http.max_connections", ["STARCITE_MAX_CONNECTIONS"], _int, None,
     "Most API connections open at once (tails included); past it 503 with Retry-After. Default: the "
     "RLIMIT_NOFILE soft limit less a fifth (at least 256) kept for the node's own files, logged at start"),
    ("access_log", "http.access_log", ["STARCITE_ACCESS_LOG"], parse_bool, True,
     "Write one access log line per request to stdout (access_token redacted)"),
    ("log_level", "node.log_level", ["STARCITE_LOG_LEVEL"], _str, "info", "debug, info, warning, error"),
    ("ops_socket", "node.ops_socket", ["STARCITE_OPS_SOCKET"], _str, None,
     "Unix socket of the ops console, mode 0600 (default <data_dir>/ops.sock); never on the API port"),
    ("log_format", "node.log_format", ["STARCITE_LOG_FORMAT"], _lower, "text",
     "text, or json: one JSON object per line (ts, level, logger, msg, node, request_id, ...)"),
]

SETTINGS = {name: (key, envs, parser, default, help_) for name, key, envs, parser, default, help_ in _SETTINGS}


@dataclasses.dataclass
class Config:
    values: dict

    def __getattr__(self, name):
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def single_node(self) -> bool:
        return len(self.peers) <= 1

    @property
    def peers(self) -> dict:
        """``{name: (host, peer_port)}`` of every node in `CLUSTER_NODES` (empty for a lone node); a
        lone node's workers are members at ``("unix", socket path)`` (`starcite.config.worker_members`)."""
        return self.values.get("member_peers") or parse_cluster_nodes(self.cluster_nodes)

    def host_of(self, member: str) -> str:
        """The host (node) a cluster member runs on: itself, or the node of a worker member
        (`starcite.config.worker_members`). Placement never puts two replicas on one host."""
        return self.values.get("member_hosts", {}).get(member, member)

    @property
    def ops_socket_path(self) -> str:
        return self.ops_socket or os.path.join(self.data_dir, "ops.sock")

    def replace(self, **changes) -> "Config":
        return Config({**self.values, **changes})


def _lookup(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _known_keys():
    return {key for key, *_ in SETTINGS.values()}


def _walk(tree: dict, prefix=""):
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _walk(value, dotted + ".")
        else:
            yield dotted


def load_config(path=None, environ=None) -> Config:
    """Build the node `Config` from ``path`` (TOML, optional) and ``environ``."""
    environ = os.environ if environ is None else environ
    tree = {}
    if path:
        try:
            with open(path, "rb") as fh:
                tree = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
        unknown = sorted(set(_walk(tree)) - _known_keys())
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown key in {path}")
    values = {}
    for name, (key, envs, parser, default, _help) in SETTINGS.items():
        raw, source = _lookup(tree, key), key
        for env in envs:
            if environ.get(env) not in (None, ""):
                raw, source = environ[env], env
                break
        if raw is None:
            values[name] = default
            continue
        try:
            values[name] = parser(raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: {exc}") from None
    return _finish(Config(values))


def _require(config, field, reason):
    if not getattr(config, field):
        key, envs, *_ = SETTINGS[field]
        raise ConfigError(f"{envs[0]} ({key}): required {reason}")


def _finish(config: Config) -> Config:
    v = config.values
    peers = parse_cluster_nodes(v["cluster_nodes"])
    if not v["node_name"]:
        if len(peers) > 1:
            raise ConfigError("NODE_NAME (node.name): required when CLUSTER_NODES names several nodes")
        v["node_name"] = (v["write_node_ids"][0] if len(v["write_node_ids"]) == 1
                          else next(iter(peers), None) or f"starcite-{secrets.token_hex(3)}")
    v["raft_data_dir"] = v["raft_data_dir"] or os.path.join(v["data_dir"], "raft")
    v["archive_dir"] = v["archive_dir"] or os.path.join(v["data_dir"], "archive")
    checks = [
        ("port", 0 < v["port"] < 65536, "must be 1..65535"),
        ("num_groups", 1 <= v["num_groups"] <= 1024, "must be 1..1024"),
        ("workers", v["workers"] is None or 1 <= v["workers"] <= 64, "must be 1..64"),
        ("replication_factor", v["replication_factor"] >= 1, "must be >= 1"),
        ("archive_adapter", v["archive_adapter"] in ("local", "s3", "postgres"), "must be local, s3 or postgres"),
        ("auth_mode", v["auth_mode"] in ("none", "jwt"), "must be none or jwt"),
        ("cors_origins", v["cors_origins"] is None or all(o == "*" or _ORIGIN.match(o) for o in v["cors_origins"]),
         "each must be * or scheme://host[:port]"),
        ("archive_flush_interval_ms", v["archive_flush_interval_ms"] >= 10, "must be >= 10"),
        ("session_ttl_s", v["session_ttl_s"] is None or v["session_ttl_s"] <= 3153600000,  # rules.TTL_SECONDS_MAX
         "must be none or at most a century (3153600000 seconds)"),
        ("event_store_max_bytes", v["event_store_max_bytes"] > 0, "must be > 0"),
        ("max_body_bytes", v["max_body_bytes"] > 0, "must be > 0"),
        ("raft_timeout_ms", v["raft_timeout_ms"] >= 10, "must be >= 10"),
        ("auth_jwks_refetch_ms", v["auth_jwks_refetch_ms"] >= 100, "must be >= 100"),
        ("sse_keepalive_ms", v["sse_keepalive_ms"] >= 10, "must be >= 10"),
        ("sse_retry_ms", v["sse_retry_ms"] >= 0, "must be >= 0"),
        ("http_header_timeout_ms", 10 <= v["http_header_timeout_ms"] <= 3600000, "must be 10..3600000"),
        ("http_body_timeout_ms", 10 <= v["http_body_timeout_ms"] <= 3600000, "must be 10..3600000"),
        ("http_keepalive_timeout_ms", 10 <= v["http_keepalive_timeout_ms"] <= 3600000, "must be 10..3600000"),
        ("tail_ws_ping_ms", 10 <= v["tail_ws_ping_ms"] <= 3600000, "must be 10..3600000"),
        ("max_connections", v["max_connections"] is None or 1 <= v["max_connections"] <= 10000000,
         "must be 1..10000000"),
        ("read_cache_reclaim_fraction", 0 < v["read_cache_reclaim_fraction"] <= 1, "must be in (0, 1]"),
        ("log_level", v["log_level"].lower() in ("debug", "info", "warning", "error"),
         "must be debug, info, warning or error"),
        ("log_format", v["log_format"] in ("text", "json"), "must be text or json"),
    ]
    for field, ok, why in checks:
        if not ok:
            key, envs, *_ = SETTINGS[field]
            raise ConfigError(f"{envs[0]} ({key}): {why}, got {v[field]!r}")
    _check_cluster(v, peers)
    if v["archive_adapter"] == "s3":
        _require(config, "s3_bucket", "when archive adapter is s3")
    if v["archive_adapter"] == "postgres":
        _require(config, "postgres_url", "when archive adapter is postgres")
    if v["auth_mode"] == "jwt":
        # SECRET_KEY_BASE signs principal tokens; a jwt node without it would
        # start but fail every /v1/auth/issue, so it is required up front.
        for field in ("auth_jwks_url", "auth_issuer", "auth_audience", "secret_key_base"):
            _require(config, field, "when auth mode is jwt")
    return config


_NODE_ENTRY_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,62})@([A-Za-z0-9_.:\[\]-]+):(\d{1,5})$")


def parse_cluster_nodes(entries) -> dict:
    """``["n1@127.0.0.1:4400", ...]`` -> ``{"n1": ("127.0.0.1", 4400), ...}`` in the given order."""
    peers = {}
    for entry in entries:
        match = _NODE_ENTRY_RE.match(entry)
        if not match or not 0 < int(match.group(3)) < 65536:
            raise ConfigError(f"CLUSTER_NODES (cluster.nodes): {entry!r} is not name@host:peer_port")
        name, host, port = match.group(1), match.group(2).strip("[]"), int(match.group(3))
        if name in peers:
            raise ConfigError(f"CLUSTER_NODES (cluster.nodes): {name} is named twice")
        peers[name] = (host, port)
    return peers


def _check_cluster(v, peers):
    """The cluster settings agree with each other; one line naming the key otherwise."""
    name = v["node_name"]
    if len(peers) > 1:
        if name not in peers:
            raise ConfigError(f"NODE_NAME (node.name): {name} is not one of CLUSTER_NODES ({', '.join(peers)})")
        if not v["cluster_secret"]:
            raise ConfigError("STARCITE_CLUSTER_SECRET (cluster.secret): required when CLUSTER_NODES names "
                              "several nodes (it authenticates the peer port)")
        if len(v["cluster_secret"]) < 16:
            raise ConfigError("STARCITE_CLUSTER_SECRET (cluster.secret): must be at least 16 characters")
        v["write_node_ids"] = v["write_node_ids"] or list(peers)
        unknown = [node for node in v["write_node_ids"] if node not in peers]
        if unknown:
            raise ConfigError(f"STARCITE_WRITE_NODE_IDS (cluster.write_node_ids): {', '.join(unknown)} "
                              f"not in CLUSTER_NODES")
        if v["replication_factor"] > len(v["write_node_ids"]):
            raise ConfigError(f"STARCITE_WRITE_REPLICATION_FACTOR (raft.replication_factor): "
                              f"{v['replication_factor']} is more than the {len(v['write_node_ids'])} write nodes")
        return
    others = [node for node in v["write_node_ids"] if node != name]
    if others:
        raise ConfigError(f"STARCITE_WRITE_NODE_IDS (cluster.write_node_ids): {', '.join(others)} named, but "
                          f"CLUSTER_NODES does not give the peer address of any other node")
