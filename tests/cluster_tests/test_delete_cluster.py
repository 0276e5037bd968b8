"""DELETE and expiry on a 3-node cluster (real processes on loopback, one shared local archive).

Owns: a delete through one node is 404 through every node, closes a tail held
by another node (4410) and removes the archive copy; an expiry decided by a
group's leader is seen everywhere; SIGKILL of the session's group leader while
a delete is in flight: the client retries through the other nodes until it
gets an answer (200, or 404 when its first try had committed), the session is
gone on every node and stays gone after the killed node comes back, and the
other sessions' acknowledged events are all there. Must not: test the API's
single-node answers (tests/test_delete.py) or wait without a bound.
"""

import threading
import time

import requests

from starcite.adapters.local import LocalArchiveAdapter
from tests.server import wait_until
from tests.tail_client import TailClient

ENV = {"STARCITE_NUM_GROUPS": "4", "STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "200",
       "STARCITE_ARCHIVE_READ_CACHE_TTL_MS": "100"}


def fill(node, session_id, count):
    node.create(session_id)
    for n in range(1, count + 1):
        assert node.append(session_id, n).status_code == 201


def gone_everywhere(cluster, session_id):
    return all(node.request("GET", f"/v1/sessions/{session_id}").status_code == 404 for node in cluster.running())


def archive_copy_gone(cluster, session_id):
    archive = LocalArchiveAdapter(cluster[cluster.names[0]].env["STARCITE_ARCHIVE_DIR"])
    return archive.read_lines(session_id, 1, 10**6) == [] and archive.get_session(session_id) is None


def delete_until_answered(cluster, session_id, first, timeout=60.0):
    """DELETE through ``first``, then through the others in turn, until one answers 200 or 404."""
    nodes = [cluster[first]] + [node for node in cluster if node is not cluster[first]]
    deadline = time.monotonic() + timeout
    attempt = 0
    while time.monotonic() < deadline:
        node = nodes[attempt % len(nodes)]
        attempt += 1
        try:
            response = requests.delete(f"{node.base}/v1/sessions/{session_id}", timeout=10)
        except requests.RequestException:
            continue
        if response.status_code in (200, 404):
            return response.status_code
        assert response.status_code == 503, response.text
        time.sleep(0.1)
    raise TimeoutError("no node answered the delete")


def test_delete_through_one_node_is_404_through_every_node(make_cluster):
    cluster = make_cluster(env=ENV)
    n1, n2, n3 = (cluster[name] for name in cluster.names)
    fill(n1, "doomed", 5)
    fill(n1, "kept", 3)
    wait_until(lambda: all(node.request("GET", "/v1/sessions/doomed").status_code == 200 for node in cluster),
               what="every node sees the session")
    tail = TailClient(n3, "doomed")
    try:
        tail.read_until(5)
        assert n2.request("DELETE", "/v1/sessions/doomed").status_code == 200
        assert tail.wait_close() == 4410 and tail.close_reason == "session_deleted"
    finally:
        tail.close()
    for node in cluster:
        assert node.request("GET", "/v1/sessions/doomed").status_code == 404
        assert node.request("GET", "/v1/sessions/doomed/events").status_code == 404
        assert node.request("GET", "/v1/sessions/kept").json()["last_seq"] == 3
        assert "doomed" not in [r["id"] for r in node.request("GET", "/v1/sessions").json()["sessions"]]
    wait_until(lambda: archive_copy_gone(cluster, "doomed"), 30, "the archive copy gone")


def test_an_expired_session_is_gone_on_every_node(make_cluster):
    cluster = make_cluster(env=ENV)
    n1 = cluster[cluster.names[0]]
    n1.create("brief", ttl_seconds=2)
    n1.append("brief", 1)
    wait_until(lambda: gone_everywhere(cluster, "brief"), 30, "the expired session gone everywhere")
    wait_until(lambda: archive_copy_gone(cluster, "brief"), 30, "the archive copy gone")


def test_sigkill_of_the_leader_during_a_delete(make_cluster):
    cluster = make_cluster(env=ENV)
    entry = cluster[cluster.names[0]]
    fill(entry, "victim", 20)
    kept = [f"kept-{n}" for n in range(4)]
    for session_id in kept:
        entry.create(session_id)
    group = cluster.group_of("victim")
    leader = cluster.wait_leaders([group], timeout=30)[group]

    acked = {session_id: [] for session_id in kept}
    stop = threading.Event()

    def write(session_id):
        """Appends to a kept session through every node in turn; a 503 or a lost answer is retried with
        the same producer_seq (deduped if it had committed)."""
        n, attempt = 1, 0
        while not stop.is_set():
            attempt += 1
            node = list(cluster)[attempt % len(cluster.names)]
            try:
                response = node.append(session_id, n)
            except requests.RequestException:
                continue
            if response.status_code == 201:
                acked[session_id].append(response.json()["seq"])
                n += 1
            time.sleep(0.01)

    writers = [threading.Thread(target=write, args=(session_id,), daemon=True) for session_id in kept]
    for writer in writers:
        writer.start()
    try:
        time.sleep(0.5)
        answers = {}
        deleter = threading.Thread(target=lambda: answers.update(
            status=delete_until_answered(cluster, "victim", leader)))
        deleter.start()
        time.sleep(0.01)
        cluster[leader].kill()  # while the delete is in flight (or just committed)
        deleter.join(90)
        assert answers.get("status") in (200, 404), answers
        wait_until(lambda: gone_everywhere(cluster, "victim"), 30, "the victim gone on the survivors")
        cluster[leader].start()
        time.sleep(1.0)
    finally:
        stop.set()
        for writer in writers:
            writer.join(30)
    wait_until(lambda: cluster[leader].request("GET", "/health/ready").status_code == 200, 30, "the killed node back")
    for _ in range(10):  # and it stays gone while the restarted node replays its journal and catches up
        assert gone_everywhere(cluster, "victim")
        time.sleep(0.2)
    wait_until(lambda: archive_copy_gone(cluster, "victim"), 30, "the archive copy gone")
    for node in cluster:
        assert node.request("GET", "/v1/sessions/victim/events").status_code == 404
        for session_id in kept:
            page = node.request("GET", f"/v1/sessions/{session_id}/events?limit=1000").json()
            assert [event["seq"] for event in page["events"]] == list(range(1, len(page["events"]) + 1))
            assert set(acked[session_id]) <= {event["seq"] for event in page["events"]}, session_id
    assert all(acked.values())
