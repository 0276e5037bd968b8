"""Phoenix channels in a 3-node cluster: a `tail:<id>` channel on one node while appends go
through another, every event once and in order, across a SIGKILL of the session's group
leader (the channel's node stays up; its tail is fed by whichever replica it reaches); and a
`lifecycle` channel on one node getting every session's events once, whichever node leads it.

Must not: reach anything but 127.0.0.1, or wait without a bound.
"""

import time

import pytest

from tests.phoenix_client import PhoenixClient

GROUPS = {"STARCITE_NUM_GROUPS": "4"}


def _append_retrying(node, sid, producer_seq, timeout=30.0):
    """Append through ``node`` until it is acknowledged (a leader change answers 503 for a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = node.append(sid, producer_seq)
            if response.status_code == 201:
                return response.json()["seq"]
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"append {producer_seq} not acknowledged")
        time.sleep(0.1)


def test_channel_on_one_node_appends_through_another_across_a_leader_kill(make_cluster):
    cluster = make_cluster(3, env=GROUPS)
    sid = "s-phoenix"
    cluster["n2"].create(sid)
    group = cluster.group_of(sid)
    leader = cluster.wait_leaders([group], timeout=30)[group]
    watcher_name = next(name for name in cluster.names if name != leader)
    writer = cluster[next(name for name in cluster.names if name not in (leader, watcher_name))]
    watcher = cluster[watcher_name]
    for n in range(1, 11):
        assert _append_retrying(writer, sid, n) == n
    socket = PhoenixClient.open(watcher.port, timeout=30.0)
    try:
        join_ref, reply = socket.join(f"tail:{sid}", {"cursor": 5})
        assert reply["status"] == "ok"
        assert [e["seq"] for e in socket.events_until(f"tail:{sid}", join_ref, 5)] == list(range(6, 11))
        cluster[leader].kill()
        for n in range(11, 21):
            assert _append_retrying(writer, sid, n) == n
        seqs = [e["seq"] for e in socket.events_until(f"tail:{sid}", join_ref, 10, timeout=60)]
        assert seqs == list(range(11, 21))
        assert socket.heartbeat()["status"] == "ok"
    finally:
        socket.close()


def test_lifecycle_events_of_the_whole_cluster_reach_a_socket_once(make_cluster):
    cluster = make_cluster(3, env=GROUPS)
    socket = PhoenixClient.open(cluster["n1"].port, timeout=30.0)
    try:
        join_ref, reply = socket.join("lifecycle")
        assert reply["status"] == "ok"
        ids = [f"s-life-{n}" for n in range(10)]  # over the 4 groups, led by all three nodes
        for n, session_id in enumerate(ids):
            cluster[cluster.names[n % 3]].create(session_id)
        got = [socket.wait_for(lambda m: m[3] == "lifecycle", 30)[4]["event"] for _ in ids]
        assert sorted(event["session_id"] for event in got) == sorted(ids)
        assert {event["kind"] for event in got} == {"session.created"}
        with pytest.raises(TimeoutError):  # each once, though every group has three replicas
            socket.wait_for(lambda m: m[3] == "lifecycle", timeout=1.0)
    finally:
        socket.close()
