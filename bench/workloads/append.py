"""Append-to-ack: one ~200-byte event to a random session among 1,000, timed
until the system acknowledges it durably, at 1, 16 and 64 clients.

Systems: the load generator's own ceiling (trivial endpoint), the Falcon +
gunicorn gevent "hello" ceiling, Redis Streams XADD (appendfsync always and
everysec), the Postgres one-statement append, a 3-member etcd cluster (PUT
through its JSON gateway, clients spread over the members), Starcite single
node (its default, one worker, and two workers: `starcite-2w`), and the Starcite 3-node cluster (each client on its own session through
one member, round-robin over the members).

Owns: one client factory per system and one workload function per system.
"""

import random

from bench.loadgen import Client
from bench.procs import free_port
from bench.results import CEILING_SYSTEM, CLUSTER_SYSTEM, ETCD_SYSTEM
from bench.targets import cluster as cluster_target
from bench.targets import etcd as etcd_target
from bench.targets import hello as hello_target
from bench.targets import postgres as pg_target
from bench.targets import redis as redis_target
from bench.targets import starcite as starcite_target
from bench.targets import trivial as trivial_target
from bench.wire.base import ProtocolError
from bench.wire.http import HttpClient
from bench.wire.pg import AsyncPg
from bench.wire.resp import RedisClient
from bench.workloads import PAYLOAD, session_ids, sweep

# What the trivial and hello endpoints receive: a Starcite-shaped append body, so request sizes match.
_HTTP_BODY = starcite_target.append_body(PAYLOAD, "p1", 1)


def _http_post(port: int, path: str):
    async def factory(_index):
        client = HttpClient(port)

        async def op():
            await client.post_json(path, _HTTP_BODY)
        return Client(op, client.close)
    return factory


def _redis_xadd(port: int, sessions: int):
    keys = [b"bench:s:%d" % i for i in range(sessions)]

    async def factory(index):
        client, pick = await RedisClient.connect(port), random.Random(index).randrange

        async def op():
            await client.call(b"XADD", keys[pick(sessions)], b"*", b"data", PAYLOAD)
        return Client(op, client.close)
    return factory


def _pg_append(schema_name: str, ids: list):
    payload = PAYLOAD.decode()

    async def factory(index):
        pg = await AsyncPg.connect(pg_target.DSN, pg_target.session_setup(schema_name))
        pick = random.Random(index).randrange

        async def op():
            if not await pg.execute(pg_target.APPEND_SQL, (ids[pick(len(ids))], payload)):
                raise ProtocolError("append matched no session")
        return Client(op, pg.close)
    return factory


def starcite_appender(ports: list, ids: list, producer_prefix: str, own_session: bool = False):
    """Client factory: client ``i`` appends through ``ports[i % len(ports)]`` as its own producer
    (``<prefix>-c<i>``), keeping producer_seq exactly 1, 2, 3... per session; to random sessions of
    ``ids``, or with ``own_session`` always to ``ids[i]``."""
    all_paths = [starcite_target.append_path(s) for s in ids]

    async def factory(index):
        paths = [all_paths[index % len(ids)]] if own_session else all_paths
        client, pick = HttpClient(ports[index % len(ports)]), random.Random(index).randrange
        producer, last_seq = f"{producer_prefix}-c{index}", [0] * len(paths)

        async def op():
            s = pick(len(paths))
            await client.post_json(paths[s], starcite_target.append_body(PAYLOAD, producer, last_seq[s] + 1))
            last_seq[s] += 1
        return Client(op, client.close)
    return factory


def _etcd_put(ports: list, bodies: list):
    """Client factory: client ``i`` PUTs to member ``i % 3``, each time under a random key of ``bodies``."""
    async def factory(index):
        client, pick = HttpClient(ports[index % len(ports)]), random.Random(index).randrange

        async def op():
            await client.post_json(etcd_target.PUT_PATH, bodies[pick(len(bodies))], expect=200)
        return Client(op, client.close)
    return factory


def _served(ctx, system: str, start, make_factory) -> list:
    """Start a server with ``start(sup, port)``, sweep it with ``make_factory(port)``'s clients, stop it."""
    port = free_port()
    child = start(ctx.sup, port)
    try:
        return sweep(ctx, "append", system, lambda _clients: make_factory(port))
    finally:
        ctx.sup.stop(child)


def generator_ceiling(ctx) -> list:
    return _served(ctx, CEILING_SYSTEM, trivial_target.start, lambda port: _http_post(port, "/append"))


def hello(ctx) -> list:
    return _served(ctx, "hello", hello_target.start, lambda port: _http_post(port, "/hello"))


def redis(ctx, fsync: str) -> list:
    return _served(ctx, f"redis-{fsync}", lambda sup, port: redis_target.start(sup, port, fsync, ctx.work_dir),
                   lambda port: _redis_xadd(port, ctx.profile.sessions))


def postgres(ctx) -> list:
    ids = session_ids(ctx.profile.sessions)
    with pg_target.schema(ids) as name:
        return sweep(ctx, "append", "postgres", lambda _c: _pg_append(name, ids))


def starcite_single(ctx, workers: int = None) -> list:
    """One node: its default workers (the cores it may use), or ``workers`` (the row ``starcite-<n>w``)."""
    ids = session_ids(ctx.profile.sessions)
    env = {} if workers is None else {"STARCITE_WORKERS": str(workers)}
    node = starcite_target.Node(ctx.sup, ctx.work_dir, env).start()
    system = "starcite" if workers is None else f"starcite-{workers}w"
    try:
        ctx.run_async(node.create_sessions(ids))
        return sweep(ctx, "append", system, lambda clients: starcite_appender([node.port], ids, f"b{clients}"))
    finally:
        node.stop()


def etcd(ctx) -> list:
    bodies = [etcd_target.put_body(b"bench/k/%05d" % i, PAYLOAD) for i in range(ctx.profile.sessions)]
    children, ports = etcd_target.start(ctx.sup, ctx.work_dir)
    try:
        return sweep(ctx, "append", ETCD_SYSTEM, lambda _clients: _etcd_put(ports, bodies), ctx.profile.replicated_ops)
    finally:
        etcd_target.stop(ctx.sup, children)


def starcite_cluster(ctx) -> list:
    """Each client appends to its own session through one member, round-robin over the members."""
    ids = session_ids(max(ctx.profile.concurrency), "cluster")
    cluster = cluster_target.shared(ctx)
    ctx.run_async(cluster.nodes[0].create_sessions(ids))
    return sweep(ctx, "append", CLUSTER_SYSTEM,
                 lambda clients: starcite_appender(cluster.ports, ids, f"b{clients}", own_session=True),
                 ctx.profile.replicated_ops)
