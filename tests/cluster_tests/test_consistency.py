"""A cluster that looks like one server: fresh reads, and leader changes that never reach a client.

Reads: every read through any node reflects every append acknowledged before it was sent
(`FreshReads`), right after a burst of concurrent appends, under random traffic through random
nodes, and while one node's peer links are slowed by a delaying proxy.

Leader changes: with clients strict (any answer but 201 or 200 is an error, and nothing is retried
by the client), leadership transfers (drain, undrain and the hand-over back to the preferred
replica) and a SIGKILLed leader reach no client on a surviving node; the history check then shows
every acknowledged append exactly once at its seq. On 3 nodes, and on 5 nodes at RF 3.
"""

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from starcite.cluster.placement import replicas_for
from tests.cluster_tests.history import AppendClients, FreshReads, check_history
from tests.cluster_tests.test_faults import leader_of, sessions_over_groups, wait_progress
from tests.server import STARCITE
from tests.tcp_proxy import TcpProxy

# The deadline a leader change must fit in: long enough for an election on a busy 2-core machine
# running five nodes and their clients (the clients' own timeout is 10 s).
ENV = {"STARCITE_NUM_GROUPS": "4", "STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "300",
       "STARCITE_RAFT_SNAPSHOT_ENTRIES": "400", "STARCITE_OBSERVER_LOST_AFTER_MS": "1500",
       "STARCITE_RAFT_TIMEOUT_MS": "8000"}
TRAFFIC_S = 8.0


def ops(node, *args, timeout=60):
    """`starcite ops` beside ``node``; fails the test on a non-zero exit."""
    result = subprocess.run([STARCITE, "ops", *args], capture_output=True, text=True, timeout=timeout, env=node.env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def under_load(cluster, sessions, entry_nodes, strict, during):
    """Strict or retrying clients and fresh readers through ``entry_nodes`` while ``during()`` runs;
    then the history check. Returns (clients, readers)."""
    clients = AppendClients(cluster, sessions, entry_nodes=entry_nodes, strict=strict).start()
    readers = FreshReads(cluster, clients, sessions, nodes=entry_nodes, strict=strict).start()
    try:
        wait_progress(clients)
        during()
        wait_progress(clients, more=20)
    finally:
        readers.stop()
        clients.stop()
    print(f"{len(clients.acks)} acks, {clients.retries} client retries; reads: {readers.summary()}")
    assert not readers.violations, readers.violations[:5]
    assert not readers.errors, readers.errors[:5]
    assert readers.reads > 0
    check_history(cluster, clients, sessions)
    return clients, readers


SIZES = pytest.mark.parametrize("size", [3, 5], ids=["3-nodes", "5-nodes-rf3"])


@SIZES
def test_a_read_right_after_100_concurrent_appends_sees_them_through_every_node(make_cluster, size):
    cluster = make_cluster(size, env=ENV)
    for entry in cluster.names:
        sid = f"burst-{entry}"
        node = cluster[entry]
        node.create(sid)
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: node.append(sid, 1, producer_id=f"p{i}"), range(100)))
        assert sorted(a.json()["seq"] for a in answers) == list(range(1, 101)), [a.text for a in answers[:3]]
        for reader in [node] + [cluster[name] for name in cluster.names if name != entry]:
            assert reader.request("GET", f"/v1/sessions/{sid}").json()["last_seq"] == 100
            events = reader.request("GET", f"/v1/sessions/{sid}/events?cursor=99").json()["events"]
            assert [e["seq"] for e in events] == [100]


@SIZES
def test_reads_through_random_nodes_see_every_acknowledged_write(make_cluster, size):
    cluster = make_cluster(size, env=ENV)
    sessions = sessions_over_groups(cluster)
    under_load(cluster, sessions, cluster.names, strict=True, during=lambda: time.sleep(TRAFFIC_S))


def test_reads_see_every_acknowledged_write_while_a_follower_is_slowed(make_cluster):
    """n3's peer links all go through a proxy that holds every chunk 30 ms each way (n1 and n2
    dial n3, so both of its links), which puts it behind on every group it follows."""
    cluster = make_cluster(3, env=ENV, start=False)
    proxy = TcpProxy(cluster.peer_ports["n3"], delay_s=0.03)
    try:
        for name in ("n1", "n2"):
            cluster[name].env["CLUSTER_NODES"] = cluster.cluster_nodes(n3=proxy.port)
        cluster.start()
        sessions = sessions_over_groups(cluster)
        under_load(cluster, sessions, cluster.names, strict=True, during=lambda: time.sleep(TRAFFIC_S))
    finally:
        cluster.stop()
        proxy.close()


def drain_and_undrain(cluster, name, rounds=2):
    """Leaderships move off ``name`` and back (undrain hands groups to their preferred replica)."""
    def run():
        for _ in range(rounds):
            ops(cluster[name], "drain", name)
            ops(cluster[name], "wait-drained", "20000", "--node", name)
            time.sleep(1.0)
            ops(cluster[name], "undrain", name)
            time.sleep(2.0)
    return run


def kill_and_restart(cluster, victim, groups, rounds=2):
    """SIGKILL ``victim`` while it leads one of ``groups``, then restart it (it takes back the groups
    it is the preferred leader of once ready: more leadership transfers)."""
    def run():
        for _ in range(rounds):
            deadline = time.monotonic() + 30
            while victim not in {cluster.leaders().get(g) for g in groups}:
                assert time.monotonic() < deadline, f"{victim} leads none of {groups}: {cluster.leaders()}"
                time.sleep(0.2)
            cluster[victim].kill()
            time.sleep(2.0)
            cluster[victim].start(wait=False)
            cluster[victim].wait_ready(60)
            time.sleep(2.0)
    return run


@SIZES
def test_leadership_transfers_under_load_reach_no_client(make_cluster, size):
    cluster = make_cluster(size, env=ENV)
    sessions = sessions_over_groups(cluster)
    leader = leader_of(cluster, sessions[0])
    under_load(cluster, sessions, cluster.names, strict=True, during=drain_and_undrain(cluster, leader))


@SIZES
def test_a_killed_leader_reaches_no_client_on_the_surviving_nodes(make_cluster, size):
    cluster = make_cluster(size, env=ENV)
    sessions = sessions_over_groups(cluster)
    groups = sorted({cluster.group_of(sid) for sid in sessions})
    # the preferred leader of a group: it takes that group back after each restart
    victim = replicas_for(cluster.group_of(sessions[0]), cluster.names, 3)[0]
    survivors = [name for name in cluster.names if name != victim]
    under_load(cluster, sessions, survivors, strict=True, during=kill_and_restart(cluster, victim, groups))


def test_a_quiet_groups_killed_leader_is_replaced_and_no_client_sees_it(make_cluster):
    """Idle groups stop heartbeating (starcite/actors/quiescence.py); the followers of a quiet group
    notice its leader's death by the peer link and elect another one."""
    cluster = make_cluster(3, env=ENV)
    sid = "quiet-1"
    cluster["n1"].create(sid)
    assert cluster["n1"].append(sid, 1).status_code == 201
    group = cluster.group_of(sid)

    def quiet_everywhere():
        return all(g["quiet"] for node in cluster for g in node.ops_status()["groups"] if g["group"] == group)
    cluster["n1"].wait_until(quiet_everywhere, timeout=30, what="the group quiet on every replica")
    victim = leader_of(cluster, sid)
    cluster[victim].kill()
    survivor = cluster[next(name for name in cluster.names if name != victim)]
    answer = survivor.append(sid, 2)
    assert answer.status_code == 201, answer.text
    assert survivor.request("GET", f"/v1/sessions/{sid}").json()["last_seq"] == 2
