"""Memory of the hot tier: what one hot (committed, unarchived) event costs a
Starcite node in resident memory, beside what the event store cap counted.

A node with a one-hour archive flush interval (nothing is archived, so
nothing leaves memory) takes a warm-up share of appends to 200 sessions
(one-time costs are not charged to events), then ``memory_events`` more
with 200-byte payloads. Figures per hot event: ``rss_per_event`` (growth of
the node's whole process tree), ``counted_per_event`` (growth of
``starcite_event_store_bytes``, what ``STARCITE_EVENT_STORE_MAX_SIZE`` is
checked against), ``json_bytes`` (one event's JSON as a tail sends it) and
``rss_per_json_byte`` (the target is <= 2). Owns: the memory row.
"""

import asyncio
import json
import time

from bench import loadgen
from bench.procs import rss_bytes
from bench.results import Row
from bench.targets import starcite as starcite_target
from bench.wire import ws
from bench.wire.base import ProtocolError
from bench.workloads import session_ids
from bench.workloads.append import starcite_appender

_SESSIONS = 200
_SETTLE_S = 2.0
_HOT_FLUSH_MS = 3_600_000


async def _first_event_json(port: int, session_id: str, timeout: float) -> bytes:
    frames = asyncio.Queue()
    sock = await ws.connect(port, starcite_target.tail_path(session_id, 0, 1), lambda data, _t: frames.put_nowait(data))
    try:
        return await asyncio.wait_for(frames.get(), timeout)
    finally:
        sock.close()


def _append(ctx, node, ids, count, producer):
    m = loadgen.run(starcite_appender([node.port], ids, producer), 16, count, timeout=ctx.profile.timeout_s * 4,
                    procs=ctx.procs)
    if m.errors:
        raise ProtocolError(f"memory appends: {m.errors} failed ({m.first_error})")


def _settled(node):
    time.sleep(_SETTLE_S)
    return rss_bytes(node.child.pid), node.metric("starcite_event_store_bytes"), node.metric("starcite_archive_tail_size")


def starcite(ctx) -> list:
    p = ctx.profile
    events = p.replay_events
    ids = session_ids(_SESSIONS, "mem")
    node = starcite_target.Node(ctx.sup, ctx.work_dir).start({"STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": str(_HOT_FLUSH_MS)})
    try:
        ctx.run_async(node.create_sessions(ids))
        _append(ctx, node, ids, max(1000, events // 10), "warm")
        rss_0, counted_0, hot_0 = _settled(node)
        _append(ctx, node, ids, events, "mem")
        rss_1, counted_1, hot_1 = _settled(node)
        event_json = ctx.run_async(_first_event_json(node.port, ids[0], p.timeout_s))
        json.loads(event_json)
        hot = int(hot_1 - hot_0)
        figures = {"events": events, "hot_events": hot, "json_bytes": len(event_json),
                   "rss_growth": rss_1 - rss_0, "counted_growth": int(counted_1 - counted_0),
                   "rss_per_event": round((rss_1 - rss_0) / hot) if hot else None,
                   "counted_per_event": round((counted_1 - counted_0) / hot) if hot else None}
        if hot:
            figures["rss_per_json_byte"] = round(figures["rss_per_event"] / len(event_json), 2)
        note = "" if hot == events else f"only {hot} of {events} events hot at measurement"
        ctx.log(f"memory starcite: {figures['rss_per_event']} B/event RSS, cap counted "
                f"{figures['counted_per_event']} B/event, JSON {len(event_json)} B")
        return [Row("memory", "starcite", None, note=note, figures=figures)]
    finally:
        node.stop()
