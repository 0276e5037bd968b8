"""Long-polls of `GET /v1/sessions/:id/events?wait_ms=` on every kind of node of a real cluster.

Owns: one waiter on the group's leader, on its followers (woken by their own
apply of the commit) and on a router-only node (no replica: it re-reads
through the router every 50 ms), all answered promptly by one commit; and a routed 409 producer_seq_conflict
keeping its expected_producer_seq. Must
not: use anything but loopback or wait without a bound.
"""

import concurrent.futures
import time

import requests

GROUPS = {"STARCITE_NUM_GROUPS": "2", "STARCITE_ACCESS_LOG": "0"}


def test_every_node_wakes_its_long_poll_on_a_commit(make_cluster):
    cluster = make_cluster(4, env=GROUPS, write_nodes=["n1", "n2", "n3"])
    nodes = [cluster[name] for name in ("n1", "n2", "n3", "n4")]
    nodes[0].create("lp")

    def hold(node):
        response = requests.get(f"{node.base}/v1/sessions/lp/events", params={"wait_ms": 15000}, timeout=25)
        return response.status_code, response.json(), time.monotonic()

    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        held = [pool.submit(hold, node) for node in nodes]
        time.sleep(1.0)  # every request is now waiting (none can answer: nothing follows cursor 0)
        assert not any(future.done() for future in held)
        appended = time.monotonic()
        assert nodes[3].append("lp", 1).status_code == 201
        answers = [future.result(timeout=10) for future in held]
    for status, body, answered in answers:
        assert status == 200 and [e["seq"] for e in body["events"]] == [1], body
        assert answered - appended < 2.0
    # The 409's expected_producer_seq survives the routing from a node without a replica.
    conflict = nodes[3].append("lp", 5)
    assert conflict.status_code == 409 and conflict.json()["expected_producer_seq"] == 2
