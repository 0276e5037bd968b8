"""Idle tails: the resident memory of a Starcite node (its whole process
tree) with no tails and with N open, silent tails spread over 1,000
sessions; the figure is bytes per tail = (RSS with N - RSS with 0) / N.
One row over WebSocket (``starcite``), one over SSE (``starcite-sse``).

A few tails are opened and closed before the baseline so that one-time costs
(the first WebSocket upgrade) are not charged to the tails.
Owns: the idle-tail row.
"""

import asyncio

from bench.procs import raise_fd_limit, rss_bytes
from bench.results import Row
from bench.targets import starcite as starcite_target
from bench.workloads import session_ids
from bench.wire import sse, ws
from bench.workloads.fanout import open_tails

_SETTLE_S = 2.0
_PRIME_TAILS = 10


async def _measure(node, ids: list, count: int, timeout: float, wire) -> dict:
    paths = [starcite_target.tail_path(ids[i % len(ids)]) for i in range(count)]
    ignore = lambda _payload, _t: None
    for sock in await open_tails(node.port, paths[:_PRIME_TAILS], ignore, timeout, wire):
        sock.close()
    await asyncio.sleep(_SETTLE_S)
    rss_0 = rss_bytes(node.child.pid)
    sockets = await open_tails(node.port, paths, ignore, timeout, wire)
    await asyncio.sleep(_SETTLE_S)
    rss_n = rss_bytes(node.child.pid)
    still_open = sum(1 for s in sockets if s.is_open)
    node_tails = node.metric("starcite_tails_open")
    for sock in sockets:
        sock.close()
    return {"rss_0": rss_0, "rss_n": rss_n, "open": still_open, "node_tails": int(node_tails),
            "bytes_per_tail": round((rss_n - rss_0) / count) if count else None}


def _idle_row(ctx, system: str, wire) -> list:
    p = ctx.profile
    raise_fd_limit()
    ids = session_ids(p.sessions, "idle")
    node = starcite_target.Node(ctx.sup, ctx.work_dir).start()
    try:
        ctx.run_async(node.create_sessions(ids))
        figures = ctx.run_async(_measure(node, ids, p.idle_tails, p.timeout_s, wire))
        note = "" if figures["open"] == p.idle_tails else f"only {figures['open']} tails still open at measurement"
        ctx.log(f"idle {system}: {figures['bytes_per_tail']} bytes/tail ({figures['open']} open)")
        return [Row("idle", system, p.idle_tails, note=note, figures=figures)]
    finally:
        node.stop()


def starcite(ctx) -> list:
    return _idle_row(ctx, "starcite", ws)


def starcite_sse(ctx) -> list:
    return _idle_row(ctx, "starcite-sse", sse)
