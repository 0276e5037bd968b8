"""A real 3-node (and 5-node) cluster: routing from any node, failover, quorum loss, restarts."""

import time


from tests.sse_client import SseTail
from tests.tail_client import TailClient

GROUPS = {"STARCITE_NUM_GROUPS": "4"}


def test_create_on_one_append_on_another_tail_on_a_third(make_cluster):
    cluster = make_cluster(3, env=GROUPS)
    n1, n2, n3 = cluster["n1"], cluster["n2"], cluster["n3"]
    n1.create("s-route", metadata={"team": "a"})
    seqs = [n2.append("s-route", i).json()["seq"] for i in range(1, 21)]
    assert seqs == list(range(1, 21))
    tail = TailClient(n3, "s-route", batch_size=5)
    assert [e["seq"] for e in tail.read_until(20)] == seqs
    assert n1.append("s-route", 21).json()["seq"] == 21
    assert tail.read_until(21)[-1]["payload"] == {"n": 21}
    tail.close()
    for node in cluster:
        assert node.request("GET", "/v1/sessions/s-route").json()["last_seq"] >= 20
    n3.wait_until(lambda: any(s["id"] == "s-route" for s in n3.request("GET", "/v1/sessions").json()["sessions"]),
                  what="session listed")
    # Dedupe holds across nodes: the same producer_seq through another node is the same event.
    retry = n3.append("s-route", 21)
    assert retry.status_code == 201 and retry.json() == {"seq": 21, "last_seq": 21, "deduped": True}


def test_one_node_down_every_group_writable_again(make_cluster):
    cluster = make_cluster(3, env=GROUPS)
    sessions = {}
    for i in range(40):
        sid = f"s-fail-{i}"
        group = cluster.group_of(sid)
        if group not in sessions:
            sessions[group] = sid
            cluster["n1"].create(sid)
    leaders = cluster.wait_leaders(list(sessions))
    victim = leaders[min(sessions)]
    cluster[victim].kill()
    survivors = [node for node in cluster if node is not cluster[victim]]
    started = time.monotonic()
    for group, sid in sessions.items():
        deadline = time.monotonic() + 15
        while True:
            response = survivors[group % 2].append(sid, 1)
            if response.status_code == 201:
                break
            assert response.status_code == 503, response.text
            assert time.monotonic() < deadline, "group stayed unwritable"
    recovery = time.monotonic() - started
    assert recovery < 10, recovery  # the bench's failover row measures it; here only bounded
    # the killed node comes back and catches up
    cluster[victim].start()
    for sid in sessions.values():
        cluster[victim].wait_until(
            lambda sid=sid: cluster[victim].request("GET", f"/v1/sessions/{sid}").json().get("last_seq") == 1,
            what="restarted node caught up")


def test_two_of_three_down_appends_and_reads_503_until_a_quorum_is_back(make_cluster):
    """Without a quorum no leader can confirm what was acknowledged last, so a read that might be
    stale is refused (503) rather than served; a quorum back, reads and tails see everything."""
    cluster = make_cluster(3, env={**GROUPS, "STARCITE_RAFT_TIMEOUT_MS": "1500"})
    n1 = cluster["n1"]
    n1.create("s-quorum")
    for i in range(1, 4):
        assert n1.append("s-quorum", i).status_code == 201
    n1.wait_until(lambda: all(n.request("GET", "/v1/sessions/s-quorum").json()["last_seq"] == 3 for n in cluster),
                  what="all replicas applied")
    cluster["n2"].kill()
    cluster["n3"].kill()
    started = time.monotonic()
    response = n1.append("s-quorum", 4)
    assert response.status_code == 503, response.text
    assert response.json()["error"] in ("raft_unavailable", "raft_timeout")
    assert time.monotonic() - started < 5
    for path in ("/v1/sessions/s-quorum", "/v1/sessions/s-quorum/events?cursor=0"):
        started = time.monotonic()
        response = n1.request("GET", path)
        assert response.status_code == 503, response.text
        assert response.json()["error"] in ("raft_unavailable", "raft_timeout")
        assert time.monotonic() - started < 5
    cluster["n2"].start()
    n1.wait_until(lambda: n1.request("GET", "/v1/sessions/s-quorum").status_code == 200, what="a quorum again")
    # the refused append's outcome was unknown (503): it may commit once the quorum is back
    last_seq = n1.request("GET", "/v1/sessions/s-quorum").json()["last_seq"]
    assert last_seq in (3, 4)
    tail = TailClient(n1, "s-quorum", batch_size=10)
    assert [e["seq"] for e in tail.read_until(last_seq)] == list(range(1, last_seq + 1))
    tail.close()


def test_full_cluster_restart_loses_nothing(make_cluster):
    cluster = make_cluster(3, env=GROUPS)
    cluster["n1"].create("s-restart")
    acked = [cluster[f"n{1 + i % 3}"].append("s-restart", i).json()["seq"] for i in range(1, 31)]
    cluster.stop()
    cluster.start()
    for node in cluster:
        tail = TailClient(node, "s-restart", batch_size=100)
        assert [e["seq"] for e in tail.read_until(30)] == acked
        tail.close()
    assert cluster["n2"].append("s-restart", 31).json()["seq"] == 31


def test_five_nodes_rf3_tails_and_reads_through_nodes_without_a_replica(make_cluster):
    cluster = make_cluster(5, env=GROUPS)
    sid = "s-five"
    status = cluster.status("n1")
    replicas = {name for name in cluster.names
                if any(g["group"] == cluster.group_of(sid) for g in cluster.status(name)["groups"])}
    assert len(replicas) == 3, (replicas, status)
    outsider = next(cluster[name] for name in cluster.names if name not in replicas)
    outsider.create(sid)
    tail = TailClient(outsider, sid, batch_size=1)
    for i in range(1, 11):
        assert outsider.append(sid, i).status_code == 201
    assert [e["seq"] for e in tail.read_until(10)] == list(range(1, 11))
    assert outsider.request("GET", f"/v1/sessions/{sid}").json()["last_seq"] == 10
    tail.close()


def test_router_only_node_routes_everything(make_cluster):
    cluster = make_cluster(4, env=GROUPS, write_nodes=["n1", "n2", "n3"])
    router = cluster["n4"]
    assert router.request("GET", "/health/ready").json()["mode"] == "router_node"
    assert cluster.status("n4")["groups"] == []
    router.create("s-router")
    tail = TailClient(router, "s-router", batch_size=2)
    sse = SseTail(router, "s-router", cursor=0)  # an SSE tail is fed remotely just the same
    for i in range(1, 6):
        assert router.append("s-router", i).json()["seq"] == i
    assert [e["seq"] for e in tail.read_until(5)] == [1, 2, 3, 4, 5]
    assert sse.read_until(5) and sse.seqs() == [1, 2, 3, 4, 5]
    tail.close()
    sse.close()
    assert router.request("GET", "/v1/sessions/s-router").json()["last_seq"] == 5
    assert router.request("GET", "/v1/sessions/nope").status_code == 404
    assert router.append("nope", 1).status_code == 404
    dup = router.request("POST", "/v1/sessions", {"id": "s-router"})
    assert dup.status_code == 409 and dup.json()["error"] == "session_exists"
    router.wait_until(lambda: [s["id"] for s in router.request("GET", "/v1/sessions").json()["sessions"]]
                      == ["s-router"], what="listed through the router")
    assert router.request("GET", "/health/live").status_code == 200
    assert "starcite_cluster_forwarded_total" in router.request("GET", "/metrics").text
    assert router.request("GET", "/openapi.json").status_code == 200
    assert router.ops_status()["mode"] == "router_node"
