"""A node of several workers (`STARCITE_WORKERS`): each owns a share of the groups, any worker serves any
request, and the node answers as one (metrics, readiness, the ops console). A SIGKILLed worker is
restarted by the master with its groups recovered from their journals, and nothing acknowledged is lost.

Every request goes through the shared API port, so the kernel spreads connections over the workers: a
request reaches the owner of its session's group or is routed to it over the sibling link.
"""

import os
import signal
import stat
import threading
import time

import pytest
import requests

from tests.server import child_pids, wait_until
from tests.sse_client import SseTail
from tests.tail_client import TailClient

WORKERS = {"STARCITE_WORKERS": "2", "STARCITE_NUM_GROUPS": "8"}


def _sessions_of_every_worker(server, count=24):
    """Session ids spread over every group (so over both workers), created."""
    ids = [f"w-{i}" for i in range(count)]
    for session_id in ids:
        server.create(session_id)
    return ids


def _fresh_session(server):
    """A new keep-alive connection each time: the kernel hands new connections to either worker."""
    server.http.close()
    server.http = requests.Session()


def test_every_worker_owns_groups_and_serves_any_session(make_server):
    server = make_server(env=WORKERS)
    ids = _sessions_of_every_worker(server)
    for round_ in range(1, 4):
        for session_id in ids:
            _fresh_session(server)
            response = server.append(session_id, round_)
            assert response.status_code == 201, response.text
            assert response.json()["seq"] == round_
    for session_id in ids:
        _fresh_session(server)
        events = server.request("GET", f"/v1/sessions/{session_id}/events").json()["events"]
        assert [event["seq"] for event in events] == [1, 2, 3]
    status = server.ops_status()
    own, theirs = (set(groups) for groups in status["workers"].values())
    assert own and theirs and not own & theirs and own | theirs == set(range(8))
    assert sorted(group["group"] for group in status["groups"]) == list(range(8))
    socket_dir = os.path.join(server.data_dir, "workers")
    for name in os.listdir(socket_dir):
        assert stat.S_IMODE(os.stat(os.path.join(socket_dir, name)).st_mode) == 0o600


def test_metrics_and_readiness_answer_for_the_whole_node(make_server):
    server = make_server(env=WORKERS)
    ids = _sessions_of_every_worker(server, 16)
    for session_id in ids:
        assert server.append(session_id, 1).status_code == 201
    for _ in range(6):  # whichever worker is scraped, it counts both
        _fresh_session(server)
        assert server.metric("starcite_events_append_total") == len(ids)
        assert server.metric("starcite_raft_groups_led") == 8
        assert server.request("GET", "/health/ready").status_code == 200


def test_tails_from_any_worker_get_every_event_once(make_server):
    server = make_server(env=WORKERS)
    ids = _sessions_of_every_worker(server, 8)
    tails = [TailClient(server, session_id) for session_id in ids]
    sses = [SseTail(server, session_id, cursor=0) for session_id in ids]
    try:
        for seq in range(1, 6):
            for session_id in ids:
                _fresh_session(server)
                assert server.append(session_id, seq).status_code == 201
        for client in tails + sses:
            client.read_until(5, timeout=10)
            assert client.seqs() == [1, 2, 3, 4, 5]
    finally:
        for client in tails + sses:
            client.close()


def _worker_pids(server):
    return sorted(child_pids(server.proc.pid))


def test_a_killed_worker_is_restarted_and_nothing_acknowledged_is_lost(make_server):
    server = make_server(env=WORKERS)
    ids = _sessions_of_every_worker(server, 16)
    acked = {session_id: 0 for session_id in ids}
    stop = threading.Event()
    errors = []

    def appender(share):
        client = requests.Session()
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            for session_id in share:
                seq = acked[session_id] + 1
                body = {"type": "m", "payload": {"n": seq}, "producer_id": "p", "producer_seq": seq}
                try:
                    response = client.post(f"{server.base}/v1/sessions/{session_id}/append", json=body, timeout=10)
                except requests.RequestException:
                    client = requests.Session()  # the worker holding the connection died: retry the same seq
                    continue
                if response.status_code == 201:
                    assert response.json()["seq"] == seq, response.text
                    acked[session_id] = seq
                elif response.status_code != 503:
                    errors.append(response.text)

    threads = [threading.Thread(target=appender, args=(ids[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: min(acked.values()) >= 3, 30, "appends before the kill")
        before = _worker_pids(server)
        assert len(before) == 2
        os.kill(before[0], signal.SIGKILL)
        wait_until(lambda: len(set(_worker_pids(server)) - set(before)) == 1, 30, "a new worker")
        marks = dict(acked)
        wait_until(lambda: all(acked[s] >= marks[s] + 3 for s in ids), 45, "appends after the restart")
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert not errors
    wait_until(lambda: server.request("GET", "/health/ready").status_code == 200, 30, "ready again")
    for session_id in ids:
        _fresh_session(server)
        events = server.request("GET", f"/v1/sessions/{session_id}/events?limit=1000").json()["events"]
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
        assert len(events) >= acked[session_id]


@pytest.mark.parametrize("value", ["0", "65"])
def test_workers_out_of_bounds_are_refused(make_server, value):
    server = make_server(env={"STARCITE_WORKERS": value}, start=False)
    server.start(wait=False)
    assert server.proc.wait(20) != 0
    assert "STARCITE_WORKERS" in server.output()
