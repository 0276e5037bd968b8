"""Replay: read one session of N events from cursor 0 to its end in batches of
1,000, decoding every event to a dict, as a resuming consumer would.

Systems: Redis `XREAD COUNT 1000` (its own redis-server, appendfsync
everysec: durability does not matter for reads), a Postgres ordered page
scan (``seq > cursor ORDER BY seq LIMIT 1000``), Starcite hot (events in
memory) and Starcite cold (after archiving: the node restarted with a short
archive flush interval and waited for, per /metrics, no pending archive rows
and an empty hot tier; its read cache starts empty). The hot phase runs with
a one-hour flush interval so nothing is archived or evicted under it. The
cold row is repeated with the S3 adapter (on moto's standalone server) and
the Postgres adapter (a private schema): filled with a short flush interval,
drained, restarted, one replay.

Latency is per batch: the time from the previous batch (or the start) to
this one's arrival; events/s is events over the timed passes' wall time.
Owns: the timed-pass driver and one batch reader per system.
"""

import array
import contextlib
import json
import time
import urllib.parse

from bench import loadgen
from bench.procs import StartError, free_port, wait_until
from bench.results import NOT_AVAILABLE, Row
from bench.stats import Measurement
from bench.targets import moto as moto_target
from bench.targets import postgres as pg_target
from bench.targets import redis as redis_target
from bench.targets import starcite as starcite_target
from bench.wire.base import ProtocolError
from bench.wire.pg import AsyncPg
from bench.wire.resp import RedisClient
from bench.workloads import PAYLOAD
from bench.workloads.append import starcite_appender

SESSION = "replay-0"
_COLD_FLUSH_MS = 200
_HOT_FLUSH_MS = 3_600_000  # nothing is archived (so nothing evicted) during the hot phase


async def _timed_passes(open_batches, total: int, passes: int, warm_passes: int) -> Measurement:
    """Run ``warm_passes + passes`` full replays; time the last ``passes``.

    ``open_batches()`` returns an async iterator of per-batch event counts for one replay from cursor 0.
    """
    latencies, wall_ns, clock = array.array("q"), 0, time.perf_counter_ns
    for number in range(warm_passes + passes):
        timed = number >= warm_passes
        seen, started = 0, clock()
        previous = started
        async with contextlib.aclosing(open_batches()) as batches:
            async for count in batches:
                now = clock()
                if timed:
                    latencies.append(now - previous)
                previous, seen = now, seen + count
                if seen >= total:
                    break
        if seen != total:
            raise ProtocolError(f"replay returned {seen} events, expected {total}")
        if timed:
            wall_ns += previous - started
    return Measurement(latencies, wall_ns / 1e9)


def _measure(ctx, system: str, open_batches, passes: int, warm_passes: int = 1, note: str = "") -> Row:
    """Replay ``passes`` times (after ``warm_passes`` untimed) and make the row."""
    total = ctx.profile.replay_events
    m = ctx.run_async(_timed_passes(open_batches, total, passes, warm_passes))
    row = Row.measured("replay", system, None, m, note, events=total, passes=passes,
                       events_per_s=round(total * passes / m.wall_s) if m.wall_s else None)
    ctx.log(f"replay {system}: {row.figures['events_per_s']} events/s, batch p50 {row.figures['p50_ms']} ms")
    return row


def redis(ctx) -> list:
    p, port = ctx.profile, free_port()
    child = redis_target.start(ctx.sup, port, "everysec", ctx.work_dir)
    key = b"bench:replay"

    async def fill():
        client = await RedisClient.connect(port)
        for start in range(0, p.replay_events, 1000):
            await client.pipeline([(b"XADD", key, b"*", b"data", PAYLOAD)] * min(1000, p.replay_events - start))
        await client.close()

    async def batches():
        client, cursor = await RedisClient.connect(port), b"0-0"
        try:
            while True:
                reply = await client.call(b"XREAD", b"COUNT", p.replay_batch, b"STREAMS", key, cursor)
                entries = reply[0][1] if reply else []
                if not entries:
                    return
                for _id, fields in entries:
                    json.loads(fields[1])
                cursor = entries[-1][0]
                yield len(entries)
        finally:
            await client.close()

    try:
        ctx.run_async(fill())
        return [_measure(ctx, "redis-xread", batches, p.replay_passes)]
    finally:
        ctx.sup.stop(child)


def postgres(ctx) -> list:
    p = ctx.profile
    with pg_target.schema([SESSION], events=(SESSION, p.replay_events, PAYLOAD.decode())) as name:
        async def batches():
            pg, cursor = await AsyncPg.connect(pg_target.DSN, pg_target.session_setup(name)), 0
            try:
                while True:
                    rows = await pg.execute(pg_target.PAGE_SQL, (SESSION, cursor, p.replay_batch))
                    if not rows:
                        return
                    cursor = rows[-1][0]
                    yield len(rows)
            finally:
                await pg.close()

        return [_measure(ctx, "postgres-scan", batches, p.replay_passes)]


def _fill_starcite(ctx, node):
    """Append ``replay_events`` to one session from 16 producers (untimed)."""
    ctx.run_async(node.create_sessions([SESSION]))
    m = loadgen.run(starcite_appender([node.port], [SESSION], "fill"), 16, ctx.profile.replay_events,
                    timeout=ctx.profile.timeout_s * 4, procs=ctx.procs)
    if m.errors:
        raise ProtocolError(f"filling the replay session: {m.errors} appends failed ({m.first_error})")


def _wait_archived(ctx, node):
    def drained():  # nothing waiting for the archive, nothing left in the hot tier
        return (node.metric("starcite_archive_pending_rows") == 0
                and node.metric("starcite_archive_tail_size") == 0)
    wait_until(drained, ctx.profile.timeout_s, "archive drain", interval=0.25, alive=node.child.alive)


def starcite(ctx) -> list:
    p = ctx.profile
    node = starcite_target.Node(ctx.sup, ctx.work_dir).start({"STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": str(_HOT_FLUSH_MS)})
    try:
        _fill_starcite(ctx, node)
        rows = [_measure(ctx, "starcite-hot", starcite_target.tail_batches(node.port, SESSION, p.replay_batch), p.replay_passes)]
        node.restart({"STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": str(_COLD_FLUSH_MS)})
        try:
            _wait_archived(ctx, node)
        except StartError as exc:
            return rows + [Row("replay", "starcite-cold", None, NOT_AVAILABLE, str(exc))]
        return rows + [_measure(ctx, "starcite-cold", starcite_target.tail_batches(node.port, SESSION, p.replay_batch), 1, 0,
                                "first replay after archive drain + restart")]
    finally:
        node.stop()


def _cold_replay(ctx, system: str, env: dict) -> list:
    """A node archiving through ``env``'s adapter: filled, drained, restarted (empty read cache), one replay."""
    p = ctx.profile
    env = {**env, "STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": str(_COLD_FLUSH_MS)}
    node = starcite_target.Node(ctx.sup, ctx.work_dir, env).start()
    try:
        _fill_starcite(ctx, node)
        _wait_archived(ctx, node)
        node.restart()
        return [_measure(ctx, system, starcite_target.tail_batches(node.port, SESSION, p.replay_batch), 1, 0,
                         "first replay after archive drain + restart")]
    finally:
        node.stop()


def starcite_cold_s3(ctx) -> list:
    child, env = moto_target.start(ctx.sup)
    try:
        return _cold_replay(ctx, "starcite-cold-s3", env)
    finally:
        ctx.sup.stop(child)


def starcite_cold_postgres(ctx) -> list:
    with pg_target.schema(tables=False) as name:
        params = dict(item.split("=", 1) for item in pg_target.DSN.split())  # libpq key=value -> URL
        host, port, db = params.pop("host", "127.0.0.1"), params.pop("port", "5432"), params.pop("dbname", "test")
        params["options"] = f"-csearch_path={name}"
        url = f"postgresql://{host}:{port}/{db}?{urllib.parse.urlencode(params)}"
        return _cold_replay(ctx, "starcite-cold-postgres", {"STARCITE_ARCHIVE_ADAPTER": "postgres",
                                                            "DATABASE_URL": url})
