"""End to end on a running node, once per archive adapter (local, s3 on moto, postgres).

Owns: proving, through the public API only (HTTP, WebSocket, /metrics) plus
direct reads of the archive store, that committed events reach the archive
and nothing is lost: 5,000 events across 20 sessions drained, verified object
by object / row by row and replayed from 0 (cold + hot); an archive killed
mid-flush and brought back (appends keep succeeding, tails from memory keep
working, cold reads close with 1011 rather than leave a gap, 429 once the hot
store reaches its cap, recovery by itself); the archive metrics matching what
happened; a missing bucket refusing to start. The archives themselves (and
their outages) are in `tests.archive_backends`. Must not: reach into the
node's process, use anything but loopback, or wait without a bound.
"""

import concurrent.futures
import json
import os
import subprocess
import threading
import time

import pytest
import requests

from tests.adapters.services import S3_KEY, S3_SECRET, MotoServer
from tests.archive_backends import BACKENDS
from tests.server import STARCITE, free_port
from tests.sse_client import SseTail
from tests.tail_client import TailClient

KINDS = list(BACKENDS)  # local, s3, postgres
NODE_ENV = {"STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "100", "STARCITE_ACCESS_LOG": "false",
            "STARCITE_TAIL_CATCHUP_INTERVAL_MS": "500", "STARCITE_NUM_GROUPS": "4"}
CAP_KB = 384  # hot store cap of the outage test
WAIT_S = 45.0


@pytest.fixture(params=KINDS)
def backend(request, tmp_path):
    """The archive of the test's node; tests take it before ``make_server``, so the node stops first."""
    built = BACKENDS[request.param](tmp_path)
    yield built
    built.close()


# -- clients ---------------------------------------------------------------------

class Writer:
    """Appends for one session from its own thread and HTTP connection; 429/503 are retried with the
    same producer_seq (the documented client behaviour), everything acknowledged is remembered."""

    def __init__(self, server, session_id, payload_bytes=40):
        self.server, self.session_id = server, session_id
        self.http = requests.Session()
        self.filler = "é✓" * (payload_bytes // 5)  # multi-byte characters on purpose
        self.acked = {}  # producer_seq -> seq
        self.refused = 0
        self.last_ack_at = 0.0

    def append(self, n, deadline):
        body = {"type": "message", "payload": {"n": n, "text": self.filler}, "producer_id": "w",
                "producer_seq": n, "source": "e2e", "metadata": {"k": n % 3}}
        url = f"{self.server.base}/v1/sessions/{self.session_id}/append"
        while True:
            response = self.http.post(url, json=body, timeout=10)
            if response.status_code == 201:
                self.acked[n] = response.json()["seq"]
                self.last_ack_at = time.monotonic()
                return
            if response.status_code in (429, 503) and time.monotonic() < deadline:
                self.refused += response.status_code == 429
                time.sleep(0.02)
                continue
            raise AssertionError(f"append {self.session_id}#{n}: {response.status_code} {response.text}")

    def run(self, count, deadline):
        start = len(self.acked) + 1
        for n in range(start, start + count):
            self.append(n, deadline)

    def run_until(self, stop, deadline):
        n = len(self.acked) + 1
        while not stop.is_set() and time.monotonic() < deadline:
            self.append(n, deadline)
            n += 1

    def check(self, events):
        """``events`` (replayed or stored, in seq order) hold exactly what was acknowledged."""
        assert [e["seq"] for e in events] == list(range(1, len(self.acked) + 1)), self.session_id
        assert {e["producer_seq"]: e["seq"] for e in events} == self.acked
        for event in events:
            assert event["payload"] == {"n": event["producer_seq"], "text": self.filler}
            assert (event["type"], event["producer_id"], event["source"]) == ("message", "w", "e2e")


class Load:
    """Every writer appending continuously on its own thread, until stopped (bounded by ``WAIT_S``)."""

    def __init__(self, writers):
        self.writers = list(writers)
        self.stop_event = threading.Event()
        self.pool = None
        self.running = []

    def start(self):
        self.stop_event.clear()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(self.writers))
        deadline = time.monotonic() + WAIT_S
        self.running = [self.pool.submit(w.run_until, self.stop_event, deadline) for w in self.writers]

    def stop(self, check=True):
        self.stop_event.set()
        if self.pool is None:
            return
        done, pending = concurrent.futures.wait(self.running, timeout=WAIT_S)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = None
        if check:
            assert not pending, "writers did not stop"
            for future in done:
                future.result()


def run_all(fn, items, workers=10, timeout=WAIT_S):
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fn, item) for item in items]
        for future in concurrent.futures.as_completed(futures, timeout=timeout):
            future.result()


def scrape(server):
    values = {}
    for line in server.request("GET", "/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def wait_for(server, predicate, what):
    server.wait_until(predicate, WAIT_S, what)


def drained(server):
    return lambda: scrape(server)["starcite_archive_pending_rows"] == 0


def replay(server, session_id, count):
    tail = TailClient(server, session_id, batch_size=500)
    try:
        return tail.read_until(count, timeout=WAIT_S)
    finally:
        tail.close()


def encoded_size(event):
    return len(json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode())


def start_node(make_server, backend, **env):
    return make_server({**NODE_ENV, **backend.env, **env})


# -- the tests ---------------------------------------------------------------------

class TestArchiveEndToEnd:
    def test_5000_events_are_archived_verified_and_replayed(self, backend, make_server):
        server = start_node(make_server, backend)
        session_ids = [f"e2e.ses-{i:02d}~x" for i in range(20)]
        counts = [600] * 4 + [162] * 8 + [163] * 8  # 5,000; the big ones fill complete chunks
        writers = {sid: Writer(server, sid) for sid in session_ids}
        for n, session_id in enumerate(session_ids):
            server.create(session_id, metadata={"tenant_id": "acme", "n": n})
        deadline = time.monotonic() + WAIT_S
        run_all(lambda pair: writers[pair[0]].run(pair[1], deadline), zip(session_ids, counts))
        assert sum(len(w.acked) for w in writers.values()) == 5000
        wait_for(server, drained(server), "the archive to drain")

        events, records = backend.stored(session_ids)
        for session_id, writer in writers.items():
            writer.check(events[session_id])
            assert records[session_id]["last_seq"] == len(writer.acked)
            assert records[session_id]["metadata"] == {"tenant_id": "acme", "n": session_ids.index(session_id)}

        metrics = scrape(server)
        replayed = {sid: replay(server, sid, len(w.acked)) for sid, w in writers.items()}  # all cold
        total_bytes = sum(encoded_size(e) for evs in replayed.values() for e in evs)
        assert metrics["starcite_events_append_total"] == 5000
        assert metrics["starcite_archive_attempted_total"] == metrics["starcite_archive_inserted_total"] == 5000
        assert metrics["starcite_archive_trimmed_total"] == 5000
        assert metrics["starcite_archive_bytes_attempted_total"] == total_bytes
        assert metrics["starcite_archive_bytes_inserted_total"] == total_bytes
        assert metrics["starcite_archive_errors_total"] == 0
        assert metrics["starcite_archive_flush_duration_ms_count"] > 0
        assert metrics["starcite_archive_flush_duration_ms_sum"] > 0
        for name in ("pending_rows", "pending_sessions", "lag", "tail_size"):
            assert metrics[f"starcite_archive_{name}"] == 0, name
        # nothing hot is left: what the cap still counts is the Raft log held since the last snapshot
        assert metrics["starcite_event_store_bytes"] == metrics["starcite_raft_log_bytes"] > 0
        assert scrape(server)["starcite_archive_read_cache_bytes"] > 0  # complete chunks were cached

        for session_id, writer in writers.items():
            writer.check(replayed[session_id])
            assert [backend.project(e) for e in replayed[session_id]] == events[session_id]  # what the store holds
        # more appends, replayed at once: cold from the archive (and its cache), hot from memory
        run_all(lambda sid: writers[sid].run(7, time.monotonic() + WAIT_S), session_ids)
        for session_id, writer in writers.items():
            writer.check(replay(server, session_id, len(writer.acked)))

        listed, cursor = [], None
        while True:
            page = server.request("GET", "/v1/sessions?limit=7&metadata.tenant_id=acme"
                                  + (f"&cursor={cursor}" if cursor else "")).json()
            listed.extend(page["sessions"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(r["id"] for r in listed) == sorted(session_ids)
        assert all(r["last_seq"] == len(writers[r["id"]].acked) for r in listed)
        wait_for(server, drained(server), "the archive to drain again")

    def test_archive_outage_mid_flush_backpressure_and_recovery(self, backend, make_server):
        server = start_node(make_server, backend, STARCITE_EVENT_STORE_MAX_SIZE=f"{CAP_KB}KB")
        session_ids = [f"out-{i}" for i in range(4)]
        writers = {sid: Writer(server, sid, payload_bytes=200) for sid in session_ids}
        for session_id in session_ids:
            server.create(session_id)
        run_all(lambda sid: writers[sid].run(300 if sid == "out-0" else 20, time.monotonic() + WAIT_S),
                session_ids)
        wait_for(server, drained(server), "the first batch to be archived")
        writers["out-0"].check(replay(server, "out-0", 300))  # cold: its first chunk is now cached
        assert scrape(server)["starcite_archive_read_cache_bytes"] > 0
        inserted_before = scrape(server)["starcite_archive_inserted_total"]

        load = Load(writers.values())
        live = None
        try:
            load.start()
            wait_for(server, lambda: scrape(server)["starcite_archive_inserted_total"] > inserted_before + 50,
                     "the archiver to be busy")
            backend.kill()  # mid-flush: the archiver is writing continuously
            cut_at = {sid: len(w.acked) for sid, w in writers.items()}
            wait_for(server, lambda: all(len(w.acked) > cut_at[sid] + 5 for sid, w in writers.items()),
                     "appends during the outage")  # appends keep succeeding
            load.stop()  # pause, well below the cap
            wait_for(server, lambda: scrape(server)["starcite_archive_errors_total"] > 0, "archive writes to fail")
            time.sleep(0.3)  # a write that was already past the archive when it died has been acked by now

            # tails from memory keep working
            live_cursor = len(writers["out-1"].acked)  # nothing after it can be archived now
            live = TailClient(server, "out-1", cursor=live_cursor)
            writers["out-1"].run(5, time.monotonic() + WAIT_S)
            assert [e["seq"] for e in live.read_until(5)] == list(range(live_cursor + 1, live_cursor + 6))
            # a cold read fails cleanly: 1011, and never a gap
            cold = TailClient(server, "out-2", cursor=0)
            assert cold.wait_close() == 1011 and "archive_read_unavailable" in cold.close_reason
            assert cold.seqs() == list(range(1, len(cold.events) + 1))
            cold.close()
            cold_sse = SseTail(server, "out-2", cursor=0)  # the same over SSE: event: error, then the end
            cold_sse.wait_end()
            assert [error["error"] for error in cold_sse.errors()] == ["archive_read_unavailable"]
            assert cold_sse.seqs() == list(range(1, len(cold_sse.events) + 1))
            cold_sse.close()
            server.create("out-new", metadata={"born": "during the outage"})  # indexed once it is back
            listing = server.request("GET", "/v1/sessions")  # the session index is the archive's
            assert listing.status_code == 503 and listing.json()["error"] == "archive_read_unavailable"

            # the hot store fills up: 429 (the read cache went first), and nothing moves
            load.start()
            wait_for(server, lambda: sum(w.refused for w in writers.values()) > 0, "backpressure")
            # the cap also counts the Raft log: a snapshot taken as the store fills frees some of it and
            # lets a few appends in before the store settles at the cap
            wait_for(server, lambda: server.append("out-3", 10**6, producer_id="probe").status_code == 429,
                     "a probe to be refused")
            response = server.append("out-3", 10**6, producer_id="probe")
            assert response.status_code == 429 and response.json()["error"] == "event_store_backpressure"
            refused = sum(w.refused for w in writers.values())  # read before the scrape: the writers go on
            metrics = scrape(server)
            assert metrics["starcite_event_store_backpressure_total"] >= refused
            assert metrics["starcite_archive_read_cache_bytes"] == 0
            assert metrics["starcite_event_store_bytes"] >= CAP_KB * 1024
            pending = metrics["starcite_archive_pending_rows"]
            assert pending > 0 and metrics["starcite_archive_tail_size"] == pending
            assert metrics["starcite_archive_pending_sessions"] == 4
            assert pending / 4 <= metrics["starcite_archive_lag"] <= pending

            backend.revive()
            revived_at = time.monotonic()
            wait_for(server, lambda: all(w.last_ack_at > revived_at for w in writers.values()),
                     "appends to resume by themselves")
            load.stop()
            # replay at once, while the backlog is still being flushed and evicted: cold + hot, gap-free
            for session_id, writer in writers.items():
                writer.check(replay(server, session_id, len(writer.acked)))
            live.read_until(len(writers["out-1"].acked) - live_cursor)
            assert live.seqs() == list(range(live_cursor + 1, len(writers["out-1"].acked) + 1))
        finally:
            load.stop(check=False)
            if live is not None:
                live.close()

        wait_for(server, drained(server), "the backlog to be archived after the outage")
        events, records = backend.stored(session_ids)
        total = 0
        for session_id, writer in writers.items():
            writer.check(events[session_id])
            assert records[session_id]["last_seq"] == len(writer.acked)
            total += len(writer.acked)
        assert records["out-new"]["metadata"] == {"born": "during the outage"}
        metrics = scrape(server)
        assert metrics["starcite_archive_trimmed_total"] == total
        assert metrics["starcite_archive_tail_size"] == 0
        assert metrics["starcite_event_store_bytes"] == metrics["starcite_raft_log_bytes"]
        # a write that reached the archive just before it died is found there later, not inserted twice
        assert metrics["starcite_archive_inserted_total"] <= total <= metrics["starcite_archive_attempted_total"]
        assert (metrics["starcite_archive_bytes_inserted_total"]
                <= metrics["starcite_archive_bytes_attempted_total"])


@pytest.mark.parametrize("kind", ["s3", "postgres"])
def test_unusable_archive_at_start_exits_2_with_one_line(tmp_path, kind):
    env = {**os.environ, "PORT": str(free_port()), "STARCITE_DATA_DIR": str(tmp_path),
           "STARCITE_ARCHIVE_ADAPTER": kind}
    moto = None
    if kind == "s3":
        moto = MotoServer()
        env.update(STARCITE_S3_BUCKET="no-such-bucket", STARCITE_S3_ENDPOINT=moto.endpoint,
                   STARCITE_S3_ACCESS_KEY_ID=S3_KEY, STARCITE_S3_SECRET_ACCESS_KEY=S3_SECRET)
        expected = "no-such-bucket"
    else:
        env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
        expected = "postgres"
    try:
        done = subprocess.run([STARCITE, "serve"], env=env, capture_output=True, text=True, timeout=30,
                              start_new_session=True)
    finally:
        if moto is not None:
            moto.stop()
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2, lines
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in lines[0], lines
