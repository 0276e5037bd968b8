"""Result rows, the ratios to the peers, the printed table and the JSON file.

Owns: `Row` (one measured point or one "not available" line), the
generator-ceiling check, the cluster's targets note, the ratio rules
(Starcite ÷ Redis-always, ÷ Postgres, ÷ etcd 3-node, ÷ hello ceiling; replay:
÷ Redis XREAD, ÷ Postgres scan), text formatting and
`bench/results/<timestamp>.json`. Must not: measure anything.
"""

import dataclasses
import json
import os

from bench.stats import summarize

OK, NOT_AVAILABLE, NOT_YET, FAILED = "ok", "not available", "not yet", "failed"
CEILING_SYSTEM = "loadgen-ceiling"
ETCD_SYSTEM, CLUSTER_SYSTEM = "etcd-3node", "starcite-3node"
CEILING_WARN_FRACTION = 0.7
GENERATOR_BUSY_FRACTION = 0.85
HTTP_SYSTEMS = ("hello", "starcite", "starcite-2w", CLUSTER_SYSTEM, ETCD_SYSTEM)  # driven by the same HTTP client as the ceiling

# The peers every Starcite row of a workload is compared with (Starcite ÷ peer).
RATIO_PEERS = {
    "append": ("redis-always", "postgres", ETCD_SYSTEM, "hello"),
    "replay": ("redis-xread", "postgres-scan"),
}


@dataclasses.dataclass
class Row:
    workload: str                 # append | replay | fanout | failover | agents | idle | memory | reconnect
    system: str                   # loadgen-ceiling, hello, redis-always, ..., starcite, starcite-3node
    clients: int = None           # concurrent clients (tails for fanout/idle)
    status: str = OK
    note: str = ""
    figures: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def measured(cls, workload, system, clients, measurement, note="", **extra):
        figures = summarize(measurement)
        if measurement.errors:
            note = (note + "; " if note else "") + f"first error: {measurement.first_error}"
        return cls(workload, system, clients, OK, note, {**figures, **extra})

    def get(self, key):
        return self.figures.get(key) if self.status == OK else None


def flag_generator_bound(rows: list):
    """Note rows the load generator may have limited: it kept its processes' cores nearly busy, or
    (HTTP systems, whose client is the one the ceiling measures) the rate came near the ceiling."""
    ceiling = {r.clients: r.get("ops_per_s") for r in rows if r.workload == "append" and r.system == CEILING_SYSTEM}
    for row in rows:
        notes = []
        cores, procs = row.get("client_cores"), row.get("client_procs") or 1
        if cores is not None and cores >= GENERATOR_BUSY_FRACTION * procs:
            notes.append(f"generator busy ({cores} cores of {procs})")
        top, ops = ceiling.get(row.clients), row.get("ops_per_s")
        near_ceiling = top and ops and ops >= CEILING_WARN_FRACTION * top
        if row.workload == "append" and row.system in HTTP_SYSTEMS and near_ceiling:
            notes.append(f"{ops / top:.0%} of generator ceiling")
        if notes:
            row.note = "; ".join(filter(None, [row.note, *notes]))


def note_cluster_targets(rows: list, clients: int = 16, min_ratio: float = 0.5, max_p99_ms: float = 24.0):
    """Say on the Starcite cluster's append row at ``clients`` whether it met its targets: throughput at
    least ``min_ratio`` × the etcd cluster's in the same run, p99 at most ``max_p99_ms``."""
    index = {(r.workload, r.system, r.clients): r for r in rows}
    row, etcd = index.get(("append", CLUSTER_SYSTEM, clients)), index.get(("append", ETCD_SYSTEM, clients))
    if row is None or row.status != OK:
        return
    ratio, p99 = _ratio(row.get("ops_per_s"), etcd and etcd.get("ops_per_s")), row.get("p99_ms")
    verdict = lambda ok: "met" if ok else "NOT met"
    row.note = "; ".join(filter(None, [
        row.note, f"÷etcd {_fmt(ratio)} (target >= {min_ratio}: {verdict(ratio is not None and ratio >= min_ratio)})",
        f"p99 target <= {max_p99_ms:g} ms: {verdict(p99 is not None and p99 <= max_p99_ms)}"]))


def _ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def ratios(rows: list) -> list:
    """Starcite ÷ peer for every Starcite row of a workload with peers: ``{"vs": {peer: {rate, p99}}}``
    (rate: ops/s, or events/s for replay)."""
    index = {(r.workload, r.system, r.clients): r for r in rows}
    out = []
    for row in rows:
        peers = RATIO_PEERS.get(row.workload)
        if not peers or not row.system.startswith("starcite"):
            continue
        rate_key = "events_per_s" if row.workload == "replay" else "ops_per_s"
        vs = {}
        for peer in peers:
            other = index.get((row.workload, peer, row.clients))
            vs[peer] = {"rate": _ratio(row.get(rate_key), other and other.get(rate_key)),
                        "p99": _ratio(row.get("p99_ms"), other and other.get("p99_ms"))}
        out.append({"workload": row.workload, "system": row.system, "clients": row.clients, "status": row.status,
                    "vs": vs})
    return out


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}" if value < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _mib(value):
    return _fmt(None) if value is None else f"{value / 2**20:.1f} MiB"


def _figure(key, transform=None):
    return lambda row: (transform or _fmt)(row.get(key))


def _note(row):
    return row.note if row.status == OK else f"{row.status.upper()}: {row.note}"


_LATENCY = [("p50 ms", _figure("p50_ms")), ("p99 ms", _figure("p99_ms")), ("p999 ms", _figure("p999_ms"))]
_SECTIONS = [
    ("append", "Append-to-ack (closed loop; latency per operation)",
     [("clients", lambda r: _fmt(r.clients)), ("ops", _figure("ops")), ("errors", _figure("errors")),
      ("ops/s", _figure("ops_per_s")), *_LATENCY, ("gen cores", _figure("client_cores"))]),
    ("replay", "Replay from cursor 0 (batch_size 1000; latency per batch)",
     [("events", _figure("events")), ("passes", _figure("passes")), ("events/s", _figure("events_per_s")),
      *_LATENCY]),
    ("fanout", "Fan-out (latency from append ack to receipt at each tail; send->receipt p50/p99 too)",
     [("tails", lambda r: _fmt(r.clients)), ("appends", _figure("appends")),
      ("appends/s", _figure("appends_per_s")), ("deliveries", _figure("ops")),
      ("missing", _figure("missing")), *_LATENCY, ("send p50", _figure("send_p50_ms")),
      ("send p99", _figure("send_p99_ms"))]),
    ("agents", "Agents (K sessions, 20 appends/s each, a WebSocket and an SSE tail each; latency from the scheduled "
     "append to receipt; a step passes with no failed append, nothing missing, both p99 <= 50 ms)",
     [("K", lambda r: _fmt(r.clients)), ("appends/s", _figure("appends_per_s")), ("errors", _figure("errors")),
      ("ack p99", _figure("ack_p99_ms")), ("ws p50", _figure("ws_p50_ms")), ("ws p99", _figure("ws_p99_ms")),
      ("sse p50", _figure("sse_p50_ms")), ("sse p99", _figure("sse_p99_ms")),
      ("missing", lambda r: f"{_fmt(r.get('ws_missing'))}/{_fmt(r.get('sse_missing'))}"),
      ("pass", _figure("passed", lambda v: _fmt(v and "yes" or "no"))), ("largest K", _figure("largest_k")),
      ("client cores", lambda r: f"{_fmt(r.get('producers_cores'))}+{_fmt(r.get('tails_cores'))}")]),
    ("failover", "Failover (leader SIGKILLed under light load: seconds from the kill to the first ack on its group)",
     [("producers", lambda r: _fmt(r.clients)), ("rounds", _figure("rounds")), ("median s", _figure("median_s")),
      ("max s", _figure("max_s")), ("each s", _figure("times_s", lambda v: _fmt(v and " ".join(map(_fmt, v))))),
      ("acked", _figure("acked")), ("failed tries", _figure("failed_tries")),
      ("survivor errors", _figure("survivor_errors")), ("lost", _figure("lost"))]),
    ("idle", "Idle tails (RSS of the node and its children)",
     [("tails", lambda r: _fmt(r.clients)), ("open", _figure("open")), ("rss 0", _figure("rss_0", _mib)),
      ("rss N", _figure("rss_n", _mib)), ("bytes/tail", _figure("bytes_per_tail"))]),
    ("reconnect", "Reconnect storm after a node restart (seconds from the node ready)",
     [("tails", lambda r: _fmt(r.clients)), ("all resumed s", _figure("all_resumed_s")),
      ("resume window s", _figure("resume_window_s")), ("resumes/s", _figure("resumes_per_s")), ("caught up p50 s", _figure("caught_up_p50_s")),
      ("p99 s", _figure("caught_up_p99_s")), ("all caught up s", _figure("all_caught_up_s")),
      ("events", _figure("events")), ("missed", _figure("missed")), ("repeated", _figure("repeated")),
      ("node ms/resume", _figure("node_cpu_ms_per_resume")), ("load", _figure("loadavg_at_ready")),
      ("peak rss", _figure("peak_rss", _mib))]),
    ("memory", "Hot tier memory (per hot event: RSS growth of the node vs what the event store cap counted)",
     [("events", _figure("hot_events")), ("json B", _figure("json_bytes")), ("rss B/event", _figure("rss_per_event")),
      ("counted B/event", _figure("counted_per_event")), ("rss/json", _figure("rss_per_json_byte"))]),
]


def _table(title: str, header: list, lines: list) -> str:
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt_line = lambda cells: "  ".join(c.ljust(w) if i in (0, len(cells) - 1) else c.rjust(w)
                                       for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([title, fmt_line(header), fmt_line(["-" * w for w in widths]), *map(fmt_line, lines)])


def render(rows: list, ratio_rows: list) -> str:
    blocks = []
    for workload, title, columns in _SECTIONS:
        section = [r for r in rows if r.workload == workload]
        if section:
            header = ["system", *(h for h, _ in columns), "note"]
            blocks.append(_table(title, header, [[r.system, *(f(r) for _, f in columns), _note(r)] for r in section]))
    for workload, peers in RATIO_PEERS.items():
        entries = [e for e in ratio_rows if e["workload"] == workload]
        if entries:
            lines = [[e["system"], _fmt(e["clients"]),
                      *(f"{_fmt(e['vs'][p]['rate'])} / {_fmt(e['vs'][p]['p99'])}" for p in peers),
                      "" if e["status"] == OK else e["status"]] for e in entries]
            blocks.append(_table(f"Ratios, {workload}: Starcite ÷ peer as throughput / p99 "
                                 "(throughput above 1 and p99 below 1 favour Starcite)",
                                 ["system", "clients", *(f"÷{p}" for p in peers), "note"], lines))
    return "\n\n".join(blocks)


def write_json(path: str, run: dict, machine: dict, rows: list, ratio_rows: list):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"run": run, "machine": machine, "rows": [dataclasses.asdict(r) for r in rows],
                   "ratios": ratio_rows}, f, indent=2, ensure_ascii=False)
        f.write("\n")
