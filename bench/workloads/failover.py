"""Failover: how long a group cannot take writes after its leader dies.

On the 3-node cluster (the one the `append starcite-3node` rows ran on, or a
fresh one), under a light append load (a few producers, each appending to its
own session every 10 ms through one member, retrying through the others),
each round picks a group, finds its leader (the member whose `GET
/ops/status` says `is_leader` for it), SIGKILLs that member's process group
and times from the kill to the first acknowledged append on a session of that
group. One probe producer per member appends to its own session of the group
and retries, with the same `producer_seq` (so a retry of an append that did
commit is deduplicated, never doubled), through the members in turn. The
killed member is then restarted with its data directory, and the next round
starts once it is ready and every group has a leader again. After the rounds
every session is read back from cursor 0: an acknowledged append missing
from it counts as lost.

Errors seen by clients of the surviving members are counted apart (target 0):
any failed try, from the kill until the killed member is ready again, sent to a
member that was not killed. The node a client is connected to retries a
leader change inside the cluster, so such a client should only see its append
take longer; a try is given `ATTEMPT_TIMEOUT_S`, longer than the cluster's
own deadline (`STARCITE_RAFT_TIMEOUT_MS`), so a slow answer is not mistaken
for an error.

Owns: the retrying producer, the rounds, the read-back check and the row.
Must not: start or stop the cluster (`bench.targets.cluster` does).
"""

import asyncio
import statistics
import time

from starcite.cluster.placement import group_for

from bench.aio import gather_bounded
from bench.procs import wait_until
from bench.results import CLUSTER_SYSTEM, FAILED, OK, Row
from bench.targets import cluster as cluster_target
from bench.targets import starcite as starcite_target
from bench.wire.base import ProtocolError
from bench.wire.http import HttpClient
from bench.workloads import PAYLOAD

TARGET_S = 2.0             # what a failover should take at most
ATTEMPT_TIMEOUT_S = 6.0    # one try of one append; then the next member (the node's own deadline is 5 s)
RETRY_PAUSE_S = 0.01
ROUND_BOUND_S = 30.0       # kill to first ack, and any one append, at most
LOAD_PRODUCERS = 4
LOAD_INTERVAL_S = 0.01
SETTLE_S = 0.5             # the load runs this long before each kill
READ_BACK_S = 10.0


class RetryingProducer:
    """One producer on one session, appending through the members in turn until each append is acked."""

    def __init__(self, ports: list, session_id: str, first_member: int):
        self.ports, self.session_id, self.member = ports, session_id, first_member
        self.path, self.producer = starcite_target.append_path(session_id), f"fo-{session_id}"
        self.acked = self.failed_tries = 0
        self.failures = []  # (time.monotonic(), port) of each failed try
        self.client = None

    async def append(self, deadline: float):
        """Append the next event; the time.monotonic() of its ack, or None when ``deadline`` came first."""
        body = starcite_target.append_body(PAYLOAD, self.producer, self.acked + 1)
        while time.monotonic() < deadline:
            port = self.ports[self.member % len(self.ports)]
            if self.client is None:
                self.client = HttpClient(port)
            try:
                await asyncio.wait_for(self.client.post_json(self.path, body), ATTEMPT_TIMEOUT_S)
            except (OSError, ProtocolError, asyncio.TimeoutError):  # refused, reset, 5xx, hung: next member
                self.failed_tries += 1
                self.failures.append((time.monotonic(), port))
                await self.close()
                self.member += 1
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            self.acked += 1
            return time.monotonic()
        return None

    async def close(self):
        if self.client is not None:
            await self.client.close()
            self.client = None


def _sessions_of_group(group: int, num_groups: int, count: int) -> list:
    """``count`` session ids that hash to ``group``."""
    ids, candidate = [], 0
    while len(ids) < count:
        session_id = f"failover-g{group}-{candidate}"
        if group_for(session_id, num_groups) == group:
            ids.append(session_id)
        candidate += 1
    return ids


async def _load(producer: RetryingProducer, stop: asyncio.Event):
    while not stop.is_set():
        await producer.append(time.monotonic() + ROUND_BOUND_S)
        await asyncio.sleep(LOAD_INTERVAL_S)


def _survivor_errors(producers: list, killed_port: int, since: float) -> int:
    """Failed tries since ``since`` sent to a member other than the one killed."""
    return sum(1 for p in producers for t, port in p.failures if t >= since and port != killed_port)


async def _round(ctx, cluster, group: int, probes: list, everyone: list):
    """Kill the leader of ``group``: (seconds from the kill to the first ack of a probe, None: none in
    time; failed tries seen by clients of the surviving members until it is back)."""
    leader = await asyncio.to_thread(wait_until, lambda: cluster.leader_of(group), ROUND_BOUND_S,
                                     f"a leader for group {group}", 0.1)
    for probe in probes:  # every probe connected and its session written before the kill
        await probe.append(time.monotonic() + ROUND_BOUND_S)
    await asyncio.sleep(SETTLE_S)
    killed_at = time.monotonic()
    leader.kill()
    acks = await asyncio.gather(*(p.append(killed_at + ROUND_BOUND_S) for p in probes))
    done = [t - killed_at for t in acks if t is not None]
    seconds = round(min(done), 3) if done else None
    ctx.log(f"failover: group {group}, killed leader {leader.name}: first ack after {seconds} s; restarting it")
    killed_port = leader.port
    await asyncio.to_thread(cluster.restart, leader)
    errors = _survivor_errors(everyone, killed_port, killed_at)
    ctx.log(f"failover: {errors} failed tries on surviving members")
    return seconds, errors


async def _read_back(port: int, producer: RetryingProducer) -> int:
    """Acknowledged appends of ``producer`` missing from its session read from cursor 0."""
    seen = 0
    try:
        async with asyncio.timeout(READ_BACK_S):
            async for count in starcite_target.tail_batches(port, producer.session_id, 1000)():
                seen += count
                if seen >= producer.acked:
                    break
    except TimeoutError:
        pass
    return max(0, producer.acked - seen)


async def _failover(ctx, cluster) -> Row:
    status = await asyncio.to_thread(cluster.nodes[0].status)
    num_groups = 1 + max(g["group"] for g in status["groups"])
    rounds = ctx.profile.failover_rounds
    groups = [number % num_groups for number in range(rounds)]
    probe_ids = {g: _sessions_of_group(g, num_groups, len(cluster.nodes)) for g in set(groups)}
    load_ids = [f"failover-load-{i}" for i in range(LOAD_PRODUCERS)]
    await cluster.nodes[0].create_sessions([*load_ids, *(s for ids in probe_ids.values() for s in ids)])
    probes = {g: [RetryingProducer(cluster.ports, s, i) for i, s in enumerate(ids)] for g, ids in probe_ids.items()}
    load = [RetryingProducer(cluster.ports, s, i) for i, s in enumerate(load_ids)]
    stop = asyncio.Event()
    load_tasks = [asyncio.create_task(_load(p, stop)) for p in load]
    everyone = [*load, *(p for ps in probes.values() for p in ps)]
    try:
        outcomes = [await _round(ctx, cluster, g, probes[g], everyone) for g in groups]
    finally:
        stop.set()
        await asyncio.wait(load_tasks, timeout=ROUND_BOUND_S)
        for task in load_tasks:
            task.cancel()
    times = [seconds for seconds, _errors in outcomes]
    lost = sum(await gather_bounded([_read_back(cluster.ports[0], p) for p in everyone], 2 * READ_BACK_S))
    await asyncio.gather(*(p.close() for p in everyone))
    measured = [t for t in times if t is not None]
    figures = {"rounds": rounds, "times_s": times, "median_s": statistics.median(measured) if measured else None,
               "max_s": max(measured) if measured else None, "acked": sum(p.acked for p in everyone),
               "failed_tries": sum(p.failed_tries for p in everyone), "lost": lost, "target_s": TARGET_S,
               "survivor_errors": sum(errors for _seconds, errors in outcomes)}
    problems = [f"{rounds - len(measured)} rounds without an ack in {ROUND_BOUND_S:.0f}s"] if len(measured) < rounds else []
    problems += [f"{lost} acknowledged appends missing on read-back"] if lost else []
    note = "; ".join(problems) or (f"target <= {TARGET_S} s: {'met' if figures['max_s'] <= TARGET_S else 'NOT met'}; "
                                   f"errors on surviving members (target 0): {figures['survivor_errors']}")
    return Row("failover", CLUSTER_SYSTEM, LOAD_PRODUCERS, FAILED if problems else OK, note, figures)


def starcite_cluster(ctx) -> list:
    cluster = cluster_target.shared(ctx)
    return [ctx.run_async(_failover(ctx, cluster))]
