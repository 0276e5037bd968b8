"""The hot store cap holds to its word: a node's memory stays within it, and nothing is lost at the cap.

Owns: one end-to-end test on a real node (64MB cap, archiving off): 1 KB
events are appended until the first 429; the worker's resident memory must
stay under its baseline + 1.25 x the cap; then, with archiving on (the node
restarted with a short flush interval), appends resume once the archiver has
drained, and a replay from 0 holds every acknowledged event, in order.
Must not: reach into the node's process (memory is read from /proc), use
anything but loopback, or wait without a bound.
"""

import concurrent.futures
import threading
import time

from tests.server import StarciteServer, child_pids, rss_bytes
from tests.tail_client import TailClient

CAP = 64 * 1024 * 1024
WRITERS = 8
TEXT = "x" * 920  # the request body of each append is about 1 KB
DEADLINE_S = 300.0


def workers_rss(master_pid):
    """Resident memory of the gunicorn workers (the master's children; snapshot forks are theirs)."""
    children = child_pids(master_pid)
    assert children, "no worker process"
    return sum(rss_bytes(child) for child in children)


def metric(server, name):
    for line in server.request("GET", "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


class Writer:
    """Appends 1 KB events to its own session until told to stop or refused with 429."""

    def __init__(self, server, session_id):
        self.server, self.session_id = server, session_id
        self.acked = []  # producer_seqs acknowledged, in order
        self.refused = 0

    def append_one(self, text=TEXT) -> int:
        seq = len(self.acked) + 1
        response = self.server.append(self.session_id, seq, producer_id=self.session_id,
                                      payload={"n": seq, "text": text})
        if response.status_code == 201:
            assert response.json()["seq"] == seq
            self.acked.append(seq)
        else:
            assert response.status_code == 429, response.text
        return response.status_code

    def run(self, stop, deadline):
        """Until this writer's own first 429: with several workers each holds its share of the cap, so
        one worker's store fills before the other's."""
        while time.monotonic() < deadline:
            if self.append_one() == 429:
                self.refused += 1
                stop.set()
                return


def test_64mb_cap_bounds_rss_and_loses_nothing(tmp_path):
    env = {"STARCITE_EVENT_STORE_MAX_SIZE": str(CAP), "STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "3600000",
           "STARCITE_NUM_GROUPS": "4", "STARCITE_ACCESS_LOG": "false"}
    server = StarciteServer(tmp_path / "node", env)
    server.start(timeout=60)
    try:
        sessions = [f"cap-{i}" for i in range(WRITERS)]
        for session_id in sessions:
            server.create(session_id)
        writers = [Writer(server, session_id) for session_id in sessions]
        for writer in writers:  # one-time costs (first requests, first journal pages) before the baseline
            for _ in range(20):
                assert writer.append_one() == 201
        time.sleep(1.0)
        baseline = workers_rss(server.proc.pid)

        stop, deadline = threading.Event(), time.monotonic() + DEADLINE_S
        with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
            list(pool.map(lambda w: w.run(stop, deadline), writers))
        assert stop.is_set(), "no 429 before the deadline"
        acked = sum(len(w.acked) for w in writers)
        time.sleep(1.0)
        grown = workers_rss(server.proc.pid) - baseline
        counted = metric(server, "starcite_event_store_bytes")
        print(f"cap test: {acked} events acked, worker RSS +{grown / 2**20:.1f} MiB, "
              f"counted {counted / 2**20:.1f} MiB")
        assert counted >= CAP * 0.95
        assert grown < 1.25 * CAP, f"worker RSS grew {grown / 2**20:.1f} MiB under a {CAP // 2**20} MiB cap"
        assert writers[0].append_one() == 429

        server.env["STARCITE_ARCHIVE_FLUSH_INTERVAL_MS"] = "100"  # archiving on
        server.restart()
        server.wait_until(lambda: metric(server, "starcite_archive_pending_rows") == 0, 120, "the archive to drain")
        for writer in writers:  # appends resume
            assert writer.append_one() == 201
        for writer in writers:  # nothing acknowledged is lost
            tail = TailClient(server, writer.session_id, batch_size=500)
            try:
                events = tail.read_until(len(writer.acked), timeout=60)
            finally:
                tail.close()
            assert [e["seq"] for e in events] == list(range(1, len(writer.acked) + 1))
            assert [e["producer_seq"] for e in events] == writer.acked
    finally:
        server.stop()
