"""Test helper: clients that append through every node and record acks, and the history checker.

Owns: `AppendClients` (threads that append continuously, each retrying the
same ``(producer_id, producer_seq)`` on the next node after a 503, a timeout
or a refused connection, and recording every acknowledgement) and
`check_history` (read every session's tail from every node and check the
acknowledged history against what the cluster holds). Must not: cause faults;
the test does.
"""

import itertools
import threading
import time

import requests

from tests.tail_client import TailClient

RETRYABLE = (503,)


class AppendClients:
    def __init__(self, cluster, sessions, producers_per_session=2, entry_nodes=None, pause=0.0):
        self.cluster = cluster
        self.sessions = sessions
        self.entry_nodes = entry_nodes or cluster.names
        self.pause = pause
        self.acks = []          # (session, producer, producer_seq, seq, payload)
        self.ack_times = []     # monotonic time of each ack
        self.errors = []        # unexpected answers: any of them fails the test
        self.retries = 0
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(sid, f"{sid}-p{i}", k), daemon=True)
                        for k, (sid, i) in enumerate(itertools.product(sessions, range(producers_per_session)))]

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def stop(self, timeout=60.0):
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "an append client is stuck"

    def _run(self, session_id, producer, offset):
        http = requests.Session()
        nodes = itertools.cycle(self.entry_nodes[offset % len(self.entry_nodes):] +
                                self.entry_nodes[:offset % len(self.entry_nodes)])
        node = next(nodes)
        producer_seq = 0
        while not self.stop_event.is_set():
            producer_seq += 1
            payload = {"producer": producer, "n": producer_seq, "pad": "x" * (producer_seq % 50)}
            body = {"type": "msg", "payload": payload, "producer_id": producer, "producer_seq": producer_seq}
            deadline = time.monotonic() + 120
            while True:
                if time.monotonic() > deadline:
                    self._error(f"{producer}#{producer_seq}: no ack in 120 s")
                    return
                server = self.cluster[node]
                try:
                    response = http.post(f"{server.base}/v1/sessions/{session_id}/append", json=body, timeout=10)
                except requests.RequestException:
                    response = None
                if response is not None and response.status_code == 201:
                    with self.lock:
                        self.acks.append((session_id, producer, producer_seq, response.json()["seq"], payload))
                        self.ack_times.append(time.monotonic())
                    break
                if response is not None and response.status_code not in RETRYABLE:
                    self._error(f"{producer}#{producer_seq} via {node}: {response.status_code} {response.text}")
                    return
                with self.lock:
                    self.retries += 1
                node = next(nodes)  # the same producer_seq, on another node
                time.sleep(0.02)
            if self.pause:
                time.sleep(self.pause)

    def _error(self, text):
        with self.lock:
            self.errors.append(text)

    def longest_pause(self) -> float:
        """The longest time between two acknowledgements (any client), in seconds."""
        with self.lock:
            times = sorted(self.ack_times)
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)

    def acked_count(self):
        with self.lock:
            return len(self.acks)


def wait_converged(cluster, sessions, timeout=60.0):
    """Every running node reports the same last_seq for every session; returns them."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = {}
        for node in cluster.running():
            for sid in sessions:
                try:
                    seen.setdefault(sid, set()).add(node.request("GET", f"/v1/sessions/{sid}").json()["last_seq"])
                except (requests.RequestException, KeyError, ValueError):
                    seen.setdefault(sid, set()).add(None)
        if all(len(values) == 1 and None not in values for values in seen.values()):
            return {sid: values.pop() for sid, values in seen.items()}
        time.sleep(0.2)
    states = {}
    for node in cluster.running():
        try:
            states[node.env["NODE_NAME"]] = node.ops_status()
        except (OSError, ValueError, AssertionError) as exc:
            states[node.env["NODE_NAME"]] = str(exc)
    raise AssertionError(f"replicas did not converge: {seen}; status: {states}")


def check_history(cluster, clients, sessions):
    """The acknowledged history holds on every node. Returns the number of events checked."""
    assert not clients.errors, clients.errors[:5]
    last = wait_converged(cluster, sessions)
    acked = {}
    for session_id, producer, producer_seq, seq, payload in clients.acks:
        key = (session_id, seq)
        assert key not in acked or acked[key] == (producer, producer_seq, payload), f"two acks for {key}"
        acked[key] = (producer, producer_seq, payload)
    histories = {}
    for node in cluster.running():
        for sid in sessions:
            tail = TailClient(node, sid, batch_size=1000)
            events = tail.read_until(last[sid], timeout=60) if last[sid] else []
            tail.close()
            histories.setdefault(sid, []).append(
                [(e["seq"], e["producer_id"], e["producer_seq"], e["payload"]) for e in events])
    total = 0
    for sid in sessions:
        first, *others = histories[sid]
        assert all(h == first for h in others), f"nodes disagree on {sid}"
        assert [e[0] for e in first] == list(range(1, last[sid] + 1)), f"gap or repeat in {sid}"
        pairs = [(e[1], e[2]) for e in first]
        assert len(pairs) == len(set(pairs)), f"a (producer_id, producer_seq) appears twice in {sid}"
        by_seq = {e[0]: e for e in first}
        for (session_id, seq), (producer, producer_seq, payload) in acked.items():
            if session_id == sid:
                assert by_seq.get(seq) == (seq, producer, producer_seq, payload), f"acked {sid}#{seq} lost or changed"
        total += len(first)
    check_digests(cluster)
    return total


def check_digests(cluster, timeout=30.0):
    """Once applied indexes agree, every replica of a group has the same digest, and the
    nodes' own digest exchange saw no divergence."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = [node.ops_status() for node in cluster.running()]
        by_group = {}
        for status in statuses:
            assert status["digests"]["diverged"] == 0, status["digests"]
            for group in status["groups"]:
                by_group.setdefault(group["group"], set()).add(tuple(group["applied_digest"]))
        if all(len(digests) == 1 for digests in by_group.values()):
            return
        assert time.monotonic() < deadline, f"replica digests differ: {by_group}"
        time.sleep(0.2)
