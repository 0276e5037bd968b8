"""Latency percentiles and throughput.

Owns: `Measurement` (raw latencies in ns, wall time, errors) and its summary
(p50/p99/p999 in ms by nearest rank, ops/s). Must not: time anything itself.
"""

import array
import dataclasses
import math


@dataclasses.dataclass
class Measurement:
    latencies_ns: array.array  # one entry per successful operation
    wall_s: float              # first operation start to last operation end
    errors: int = 0
    first_error: str = ""
    client_cpu_s: float = None  # CPU the load generator used while timing (None: not recorded)
    client_procs: int = 1       # load generator processes that shared the clients

    @property
    def ops(self) -> int:
        return len(self.latencies_ns) + self.errors


def percentile(sorted_values, fraction: float):
    """Nearest-rank percentile of an ascending sequence (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(latencies_ns) -> dict:
    """``{p50_ms, p99_ms, p999_ms}`` of latencies in nanoseconds."""
    ordered = sorted(latencies_ns)
    return {f"{name}_ms": (None if (v := percentile(ordered, q)) is None else round(v / 1e6, 3))
            for name, q in (("p50", 0.50), ("p99", 0.99), ("p999", 0.999))}


def summarize(m: Measurement) -> dict:
    """The figures a result row carries: ops, errors, seconds, ops/s, percentiles, generator cores busy."""
    done = len(m.latencies_ns)
    figures = {"ops": m.ops, "errors": m.errors, "seconds": round(m.wall_s, 3),
               "ops_per_s": round(done / m.wall_s, 1) if m.wall_s > 0 else None,
               **latency_summary(m.latencies_ns)}
    if m.client_cpu_s is not None and m.wall_s > 0:
        figures["client_cores"] = round(m.client_cpu_s / m.wall_s, 2)
        figures["client_procs"] = m.client_procs
    return figures
