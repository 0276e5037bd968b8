"""What is measured. Every workload function takes a `bench.context.Context`
and returns `bench.results.Row`s; it starts what it needs through the
context's supervisor and stops it before returning. A system that cannot be
started raises `bench.procs.StartError` (reported as "not available").

Owns: the shared payload, session names and the sweep over concurrencies.
"""

import json

from bench import loadgen
from bench.results import FAILED, Row


def _payload(size: int = 200) -> bytes:
    """A JSON object of exactly ``size`` bytes, shaped like an agent message."""
    body = {"role": "assistant", "agent": "planner", "step": 7, "text": ""}
    filler = "The quick brown fox jumps over the lazy dog. " * (size // 40 + 1)
    body["text"] = filler[:size - len(json.dumps(body, separators=(",", ":")))]
    return json.dumps(body, separators=(",", ":")).encode()


PAYLOAD = _payload()


def session_ids(count: int, prefix: str = "bench") -> list:
    return [f"{prefix}-{i:05d}" for i in range(count)]


def sweep(ctx, workload: str, system: str, make_factory, ops: int = None) -> list:
    """One row per concurrency of the profile; ``make_factory(clients)`` builds the client factory.
    ``ops`` (default: the profile's) timed operations per point, after the profile's warm-up scaled
    to ``ops`` (at least one operation per client).

    A point that fails becomes a FAILED row and the sweep goes on (each point is bounded).
    """
    p = ctx.profile
    ops = ops or p.ops
    warmup = p.warmup * ops // p.ops
    rows = []
    for clients in p.concurrency:
        try:
            m = loadgen.run(make_factory(clients), clients, ops, warmup=max(warmup, clients),
                            timeout=p.timeout_s, procs=ctx.procs)
            row = Row.measured(workload, system, clients, m)
            ctx.log(f"{workload} {system} c={clients}: {row.figures['ops_per_s']} ops/s, "
                    f"p50 {row.figures['p50_ms']} p99 {row.figures['p99_ms']} ms, errors {m.errors}")
        except Exception as exc:  # one point's failure must not lose the others
            row = Row(workload, system, clients, FAILED, f"{type(exc).__name__}: {exc}"[:300])
            ctx.log(f"{workload} {system} c={clients}: FAILED {row.note}")
        rows.append(row)
    return rows

