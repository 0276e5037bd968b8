"""Prometheus metrics of a node.

Owns: every metric's name, type and help text, and the scrape-time collector
that reads live gauges (pending rows, hot size, what open tails hold, open
connections by kind) from the node. Counters and histograms are updated by the code paths that do the
work; gauges that describe state are computed when scraped, so they can
never drift.

Must not: be imported for side effects elsewhere than through `Metrics`, or
use the global default registry (tests start several nodes per process).

Each worker process has its own registry. With several workers
(`STARCITE_WORKERS`), the worker that is scraped adds its siblings' samples
(`samples()`, fetched over the sibling links) to its own (`render(others)`):
counters, histograms and gauges are summed, `starcite_archive_lag` (a
largest value) takes the largest. Not prometheus-client's multiprocess mode:
its gauges are values a process last set, and ours are read from the live
node when scraped (they can never drift), which only the process holding
that state can do.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


# Gauges read from the node's snapshot: (name, help, snapshot key). The tail and actor gauges
# describe what open tails hold; each returns to its idle value once every tail is closed.
STATE_GAUGES = (
    ("starcite_archive_pending_rows", "Committed events waiting to be archived", "pending_rows"),
    ("starcite_archive_pending_sessions", "Sessions with events waiting to be archived", "pending_sessions"),
    ("starcite_archive_lag", "Largest per-session archive lag, in events (last_seq - archived_seq)", "lag"),
    ("starcite_archive_tail_size", "Events held in the hot (in-memory) tier", "hot_events"),
    ("starcite_event_store_bytes", "What STARCITE_EVENT_STORE_MAX_SIZE counts (the read cache gives way "
     "first): hot events (JSON plus a measured per-event overhead) and the Raft log held in memory "
     "since the last snapshot", "store_bytes"),
    ("starcite_raft_log_bytes", "Raft log held in memory since the last snapshot (part of "
     "starcite_event_store_bytes)", "raft_log_bytes"),
    ("starcite_archive_read_cache_bytes", "Bytes held by the archive read cache", "cache_bytes"),
    ("starcite_tails", "Open tails, WebSocket and SSE (same as starcite_tails_open)", "tails"),
    ("starcite_tails_open", "Tails whose socket this node holds, fed locally or remotely", "tails_open"),
    ("starcite_tails_live", "Live tail outboxes registered with this node's replicas (incl. served for peers)",
     "tails_live"),
    ("starcite_tail_sessions_watched", "Sessions with at least one live tail on this node's replicas",
     "tail_sessions_watched"),
    ("starcite_tails_fed_remotely", "Tails on this node fed by another node's replica", "tails_fed_remotely"),
    ("starcite_tails_served_for_peers", "Tails of other nodes fed by this node's replicas",
     "tails_served_for_peers"),
    ("starcite_tail_streams", "Tail streams at the edge, from the upgrade to the close", "tail_streams"),
    ("starcite_tail_watchers", "io watchers and timers held by tail streams", "tail_watchers"),
    ("starcite_tail_pumps", "Tail pump greenlets running", "tail_pumps"),
    ("starcite_phoenix_sockets", "Phoenix Channels sockets open (/v1/socket/websocket)", "phoenix_sockets"),
    ("starcite_phoenix_channels", "Topics joined on the open Phoenix sockets", "phoenix_channels"),
    ("starcite_phoenix_tail_streams", "Tail streams of tail:<id> channels, from the join to the end",
     "phoenix_tail_streams"),
    ("starcite_phoenix_tail_pumps", "Tail pump greenlets of tail:<id> channels running", "phoenix_tail_pumps"),
    ("starcite_actors_alive", "Actors alive in the node's actor system", "actors_alive"),
    ("starcite_actor_registry_entries", "Entries of the actor system's registry (an exited actor keeps one)",
     "actor_registry_entries"),
    ("starcite_event_loop_watchers", "Active watchers of the worker's event loop (sockets, timers)",
     "event_loop_watchers"),
    ("starcite_gc_collected_objects", "Objects the cyclic garbage collector has freed since the worker started "
     "(reference cycles that reference counting could not free)", "gc_collected_objects"),
)


class _StateCollector:
    def __init__(self, snapshot):
        self.snapshot = snapshot

    def collect(self):
        snap = self.snapshot()
        for name, help_, key in STATE_GAUGES:
            family = GaugeMetricFamily(name, help_)
            family.add_metric([], snap.get(key, 0))
            yield family
        peers = GaugeMetricFamily("starcite_peer_connection_up", "1 while the peer link to a node is up",
                                  labels=["peer"])
        for peer, up in snap.get("peer_links", {}).items():
            peers.add_metric([peer], 1 if up else 0)
        yield peers
        changes = CounterMetricFamily("starcite_raft_leader_changes",
                                      "Leader changes seen by this node's replicas since it started")
        changes.add_metric([], snap.get("leader_changes", 0))
        yield changes
        leaders = GaugeMetricFamily("starcite_raft_groups_led", "Raft groups this node leads")
        leaders.add_metric([], snap.get("groups_led", 0))
        yield leaders
        yield from _connection_families(snap)


def _connection_families(snap):
    """The API's open connections by kind, the cap, and the connections refused past it or timed out."""
    yield _family(GaugeMetricFamily, "starcite_http_connections", "Open API connections by kind: request (from "
                  "accept to the end of its response, head still arriving included), keepalive_idle, "
                  "websocket_tail, sse_tail, phoenix_socket, long_poll (a held wait_ms request)", "kind", snap.get("connections", {}))
    yield _family(GaugeMetricFamily, "starcite_http_connection_cap", "Most API connections open at once "
                  "(STARCITE_MAX_CONNECTIONS, or its default from RLIMIT_NOFILE)", None, snap.get("connection_cap", 0))
    yield _family(CounterMetricFamily, "starcite_http_connections_refused", "Connections answered 503 and closed "
                  "because the node had STARCITE_MAX_CONNECTIONS open", None, snap.get("connections_refused", 0))
    yield _family(CounterMetricFamily, "starcite_http_connections_timed_out", "Connections a timeout ended, by "
                  "timeout: header, body, keepalive, tail_ping (a WebSocket peer answered nothing), tail_stall "
                  "(a tail's write made no progress)", "timeout", snap.get("connections_timed_out", {}))


def _family(kind, name, help_, label, value):
    """A metric family of one value, or (``label`` named) of one value per label in the dict ``value``."""
    if label is None:
        family = kind(name, help_)
        family.add_metric([], value)
        return family
    family = kind(name, help_, labels=[label])
    for key, count in value.items():
        family.add_metric([key], count)
    return family


class Metrics:
    def __init__(self, snapshot):
        self.registry = CollectorRegistry()
        r = self.registry
        self.append_total = Counter("starcite_events_append_total", "Appended events (committed, not deduped)",
                                    registry=r)
        self.payload_bytes = Counter("starcite_events_payload_bytes", "Payload bytes of appended events",
                                     registry=r)
        self.flush_duration = Histogram("starcite_archive_flush_duration_ms", "Archive flush cycle duration (ms)",
                                        buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
                                        registry=r)
        self.archive_attempted = Counter("starcite_archive_attempted_total", "Rows the archiver tried to write",
                                         registry=r)
        self.archive_inserted = Counter("starcite_archive_inserted_total", "Rows the archiver wrote",
                                        registry=r)
        self.archive_bytes_attempted = Counter("starcite_archive_bytes_attempted_total",
                                               "Bytes the archiver tried to write", registry=r)
        self.archive_bytes_inserted = Counter("starcite_archive_bytes_inserted_total",
                                              "Bytes the archiver wrote", registry=r)
        self.archive_trimmed = Counter("starcite_archive_trimmed_total", "Rows evicted from memory after archiving",
                                       registry=r)
        self.archive_errors = Counter("starcite_archive_errors_total", "Failed archive writes", registry=r)
        self.backpressure = Counter("starcite_event_store_backpressure_total",
                                    "Appends refused because the hot store is full", registry=r)
        self.forwarded = Counter("starcite_cluster_forwarded_total",
                                 "Commands this node forwarded to another node's leader", ["kind"], registry=r)
        self.divergence = Counter("starcite_raft_replica_divergence_total",
                                  "Replica digests that differed from a peer's at the same index", registry=r)
        self.request_latency = Histogram("starcite_http_request_duration_seconds", "HTTP request latency",
                                         ["route", "method", "status"], buckets=LATENCY_BUCKETS, registry=r)
        r.register(_StateCollector(snapshot))

    def samples(self) -> list:
        """This process's metrics as plain tuples (they travel to a sibling worker):
        ``[(name, type, help, [(sample name, ((label, value), ...), value), ...]), ...]``."""
        return [(family.name, family.type, family.documentation,
                 [(sample.name, tuple(sorted(sample.labels.items())), sample.value) for sample in family.samples])
                for family in self.registry.collect()]

    def render(self, others=()) -> bytes:
        """The Prometheus text of this process, with ``others`` (siblings' `samples()`) merged in."""
        if not others:
            return generate_latest(self.registry)
        merged = _MergedSamples([self.samples(), *others])
        registry = CollectorRegistry()
        registry.register(merged)
        return generate_latest(registry)


MAX_MERGED = frozenset({"starcite_archive_lag", "starcite_http_connection_cap"})  # the node's: the largest of its workers'


class _MergedSamples:
    """The families of several workers, each sample summed (or the largest, `MAX_MERGED`) by name and labels."""

    def __init__(self, workers):
        self.families = {}
        for families in workers:
            for name, kind, help_, samples in families:
                entry = self.families.setdefault(name, (kind, help_, {}))
                values = entry[2]
                for sample_name, labels, value in samples:
                    key = (sample_name, labels)
                    if key not in values:
                        values[key] = value
                    elif sample_name.endswith("_created"):  # when the oldest worker's counter began
                        values[key] = min(values[key], value)
                    elif name in MAX_MERGED:
                        values[key] = max(values[key], value)
                    else:
                        values[key] += value

    def collect(self):
        for name, (kind, help_, values) in self.families.items():
            family = Metric(name, help_, kind)
            for (sample_name, labels), value in values.items():
                family.add_sample(sample_name, dict(labels), value)
            yield family


def metrics_table() -> str:
    """Markdown table of every metric a node exports (docs/operations.md's list is this, kept in step by a test)."""
    snapshot = {"pending_rows": 0, "pending_sessions": 0, "lag": 0, "hot_events": 0, "store_bytes": 0,
                "raft_log_bytes": 0,
                "cache_bytes": 0, "tails": 0, "peer_links": {}, "groups_led": 0, "leader_changes": 0}
    rows = ["| metric | type | what it means |", "| --- | --- | --- |"]
    seen = set()
    for family in Metrics(lambda: snapshot).registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        if name not in seen:
            seen.add(name)
            rows.append(f"| `{name}` | {family.type} | {family.documentation} |")
    return "\n".join(rows)
