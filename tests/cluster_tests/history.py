"""Test helper: clients that append through every node and record acks, and the history checker.

Owns: `AppendClients` (threads that append continuously, each retrying the
same ``(producer_id, producer_seq)`` on the next node after a 503, a timeout
or a refused connection, and recording every acknowledgement; ``strict``: any
answer but 201 is an error, for clients that must never see one),
`FreshReads` (threads that read sessions through random nodes and check each
read against the appends acknowledged before it was sent) and `check_history`
(read every session's tail from every node and check the acknowledged history
against what the cluster holds). Must not: cause faults; the test does.
"""

import itertools
import random
import threading
import time

import requests

from tests.tail_client import TailClient

RETRYABLE = (503,)


class ClientThreads:
    """Threads running ``_run(*args)`` until `stop`; ``what`` names them in a stuck-thread failure."""

    what = "a client"

    def _threads(self, argument_lists):
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=args, daemon=True) for args in argument_lists]

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def stop(self, timeout=60.0):
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), f"{self.what} is stuck"


class AppendClients(ClientThreads):
    what = "an append client"

    def __init__(self, cluster, sessions, producers_per_session=2, entry_nodes=None, pause=0.0, strict=False):
        self.cluster = cluster
        self.strict = strict
        self.sessions = sessions
        self.entry_nodes = entry_nodes or cluster.names
        self.pause = pause
        self.acks = []          # (session, producer, producer_seq, seq, payload)
        self.highest_acked = {}  # session -> the highest seq acknowledged so far
        self.ack_times = []     # monotonic time of each ack
        self.errors = []        # unexpected answers: any of them fails the test
        self.retries = 0
        self._threads((sid, f"{sid}-p{i}", k)
                      for k, (sid, i) in enumerate(itertools.product(sessions, range(producers_per_session))))

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
                except requests.RequestException as exc:
                    response = None
                    if self.strict:
                        self._error(f"{producer}#{producer_seq} via {node}: {exc}")
                        return
                if response is not None and response.status_code == 201:
                    seq = response.json()["seq"]
                    with self.lock:
                        self.acks.append((session_id, producer, producer_seq, seq, payload))
                        self.ack_times.append(time.monotonic())
                        self.highest_acked[session_id] = max(seq, self.highest_acked.get(session_id, 0))
                    break
                if response is not None and (self.strict or response.status_code not in RETRYABLE):
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

    def highest(self, session_id) -> int:
        with self.lock:
            return self.highest_acked.get(session_id, 0)


class FreshReads(ClientThreads):
    """Readers that check reads against acknowledged writes, through random nodes.

    Before sending a read, a reader notes the highest seq acknowledged so far for the session;
    the answer must reflect it: the record's ``last_seq`` at least that, or ``/events`` from just
    before it holding it. Anything less is a violation (a stale read). A 503 or a refused
    connection is counted apart (``unavailable``); ``strict`` readers count it as an error."""

    what = "a reader"

    def __init__(self, cluster, clients, sessions, nodes=None, readers=2, strict=False, seed=20261207):
        self.cluster, self.clients, self.sessions = cluster, clients, sessions
        self.nodes = nodes or cluster.names
        self.strict = strict
        self.reads = 0
        self.unavailable = 0
        self.violations = []
        self.errors = []
        self._threads((random.Random(seed + i),) for i in range(readers))

    def _run(self, rng):
        http = requests.Session()
        while not self.stop_event.is_set():
            session_id, name = rng.choice(self.sessions), rng.choice(self.nodes)
            acked = self.clients.highest(session_id)
            as_record = rng.random() < 0.5
            path = (f"/v1/sessions/{session_id}" if as_record
                    else f"/v1/sessions/{session_id}/events?cursor={max(0, acked - 1)}&limit=1")
            try:
                response = http.get(self.cluster[name].base + path, timeout=10)
            except requests.RequestException as exc:
                self._count_unavailable(f"GET {path} via {name}: {exc}")
                continue
            if response.status_code == 503:
                self._count_unavailable(f"GET {path} via {name}: 503 {response.text}")
                continue
            if response.status_code != 200:
                with self.lock:
                    self.errors.append(f"GET {path} via {name}: {response.status_code} {response.text}")
                continue
            body = response.json()
            seen = body["last_seq"] if as_record else max((e["seq"] for e in body["events"]), default=0)
            with self.lock:
                self.reads += 1
                if seen < acked:
                    self.violations.append(f"GET {path} via {name} saw {seen}, {acked} was acknowledged before")

    def _count_unavailable(self, what):
        with self.lock:
            self.unavailable += 1
            if self.strict:
                self.errors.append(what)
        time.sleep(0.02)

    def summary(self) -> str:
        return (f"{self.reads} reads, {len(self.violations)} stale, {self.unavailable} unavailable, "
                f"{len(self.errors)} errors")


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
