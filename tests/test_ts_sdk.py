"""The newest official TypeScript SDK (0.0.16+, 4853f55: tails over Phoenix Channels) driven by
Node against a live node, auth off: open a session, append through the SDK, `on("event")` live,
resume from a cursor after a disconnect (the SDK's session store), `range()` backfill, and
listing (with `archived`), patch with `expected_version`, archive and unarchive, and the
`lifecycle` channel's events.

Owns: `SdkDriver`, a `tests/js/ts_sdk_driver.mjs` process read line by line, and the flows. The
SDK build is installed by `tests.ts_sdk` (skipped with one line where ``../shared/clients`` or
Node is absent, unless STARCITE_REQUIRE_NODE=1, CI, when it fails instead).

Must not: reach anything but 127.0.0.1 and the npm registry (the install), or wait without a bound.
"""

import json
import os
import queue
import shutil
import subprocess
import threading
import time

import pytest

from tests.ts_sdk import NEWEST, install_sdk

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js", "ts_sdk_driver.mjs")


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    """``(node, sdk dir)``: the SDK build copied and its dependencies installed (`tests.ts_sdk`)."""
    return shutil.which("node"), str(install_sdk(NEWEST, tmp_path_factory.mktemp("ts-sdk")))


class SdkDriver:
    """One ``ts_sdk_driver.mjs`` process: commands in, JSON lines out (read by a thread)."""

    def __init__(self, sdk, base_url, api_key=None):
        node, sdk_dir = sdk
        self.proc = subprocess.Popen([node, DRIVER, sdk_dir, base_url + "/v1", *([api_key] if api_key else [])],
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.seen = []  # every line read, in order
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def send(self, op, **fields):
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()

    def wait(self, predicate, timeout=20.0, what="a line"):
        deadline = time.monotonic() + timeout
        while True:
            for line in self.seen:
                if predicate(line):
                    return line
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no {what} from the SDK in {timeout} s; read: {self.seen[-10:]}; "
                                   f"stderr: {self._stderr()}") from None
            self.seen.append(line)
            if "error" in line:
                raise AssertionError(f"the SDK failed: {line}")

    def call(self, op, timeout=20.0, **fields) -> dict:
        self.seen = [line for line in self.seen if line.get("ok") != op]
        self.send(op, **fields)
        return self.wait(lambda line: line.get("ok") == op, timeout, f"ok for {op}")

    def events(self, name, count, timeout=20.0) -> list:
        self.wait(lambda _line: len(self._events(name)) >= count, timeout, f"{count} events for {name}")
        return self._events(name)

    def _events(self, name):
        return [line["event"] for line in self.seen if "event" in line and line["name"] == name]

    def _stderr(self):
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read()[-2000:]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send("exit")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def driver(sdk, shared_server):
    drivers = []

    def make(server=shared_server):
        drivers.append(SdkDriver(sdk, server.base))
        return drivers[-1]

    yield make
    for each in drivers:
        each.close()
    shared_server.wait_until(lambda: shared_server.metric("starcite_phoenix_channels") == 0, timeout=10,
                             what="the SDK's channels gone")  # `wait_joined` of the next test counts from 0


def wait_joined(server, count=1):
    server.wait_until(lambda: server.metric("starcite_phoenix_channels") >= count, timeout=10,
                      what="the SDK's channel joined")


def test_append_and_follow_live(shared_server, driver, sid):
    shared_server.create(sid)
    sdk = driver()
    sdk.call("open", name="a", session_id=sid)
    sdk.call("follow", name="a")
    wait_joined(shared_server)  # the SDK joins with live_only: from now on
    results = [sdk.call("append", name="a", payload={"n": n})["result"] for n in range(1, 4)]
    assert [result["seq"] for result in results] == [1, 2, 3]
    events = sdk.events("a", 3)
    assert [(e["seq"], e["cursor"], e["payload"]) for e in events] == [(n, n, {"n": n}) for n in range(1, 4)]
    assert all(isinstance(e["actor"], str) and e["actor"] for e in events)
    assert shared_server.append(sid, 1, producer_id="other", actor="agent:other").status_code == 201
    assert sdk.events("a", 4)[-1]["actor"] == "agent:other"


def test_resume_from_the_cursor_after_a_disconnect(shared_server, driver, sid):
    shared_server.create(sid)
    sdk = driver()
    sdk.call("open", name="first", session_id=sid)
    sdk.call("follow", name="first")
    wait_joined(shared_server)
    for n in range(1, 4):
        assert shared_server.append(sid, n).status_code == 201
    assert [e["seq"] for e in sdk.events("first", 3)] == [1, 2, 3]
    sdk.call("disconnect", name="first")
    shared_server.wait_until(lambda: shared_server.metric("starcite_phoenix_channels") == 0, timeout=10,
                             what="the channel left")
    for n in range(4, 7):
        assert shared_server.append(sid, n).status_code == 201
    sdk.call("open", name="again", session_id=sid)  # the same session store: it joins with cursor 3
    sdk.call("follow", name="again")
    events = sdk.events("again", 3)
    assert [e["seq"] for e in events] == [4, 5, 6]
    time.sleep(0.3)
    assert [e["seq"] for e in sdk._events("again")] == [4, 5, 6]  # nothing before the cursor, nothing twice


def test_range_backfills_over_a_channel(shared_server, driver, sid):
    shared_server.create(sid)
    for n in range(1, 11):
        assert shared_server.append(sid, n).status_code == 201
    sdk = driver()
    sdk.call("open", name="a", session_id=sid)
    assert sdk.call("range", name="a", **{"from": 3, "to": 7})["seqs"] == [3, 4, 5, 6, 7]


def test_list_sessions(shared_server, driver, sid):
    shared_server.create(sid)
    sdk = driver()
    page = sdk.call("list")["page"]
    assert sid in [record["id"] for record in page["sessions"]]


def test_lifecycle_events(shared_server, driver, sid):
    sdk = driver()
    sdk.call("lifecycle")
    wait_joined(shared_server)
    shared_server.create(sid)
    line = sdk.wait(lambda line: "lifecycle" in line and line["lifecycle"]["session_id"] == sid, timeout=10)
    assert line["lifecycle"]["kind"] == "session.created"
    typed = sdk.wait(lambda line: "typed" in line and line["typed"]["session_id"] == sid, timeout=10)
    assert typed["typed"]["tenant_id"]  # a session made with auth off is the "service" tenant's, as upstream


def test_patch_with_expected_version(shared_server, driver, sid):
    version = shared_server.create(sid).get("version", 1)
    sdk = driver()
    record = sdk.call("patch", session_id=sid, title="renamed", expected_version=version)["record"]
    assert record["title"] == "renamed" and record["version"] == version + 1


def test_archive_and_unarchive_with_listing(shared_server, driver, sid):
    shared_server.create(sid)
    sdk = driver()
    assert sdk.call("archive", session_id=sid)["record"]["archived"] is True
    assert sid not in [record["id"] for record in sdk.call("list")["page"]["sessions"]]
    assert sid in [record["id"] for record in sdk.call("list", archived=True)["page"]["sessions"]]
    assert sdk.call("unarchive", session_id=sid)["record"]["archived"] is False


def test_the_append_queue_retries_a_refused_append(sdk, make_server, sid):
    """A hot store too small for the burst answers 429 (retryable for the SDK's queue) until the archive
    frees it: every append lands once, in order, with the queue's retries in between."""
    server = make_server({"STARCITE_EVENT_STORE_MAX_SIZE": "8KB", "STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "500"})
    server.create(sid)
    client = SdkDriver(sdk, server.base)
    try:
        client.call("open", name="a", session_id=sid)
        results = [client.call("append", name="a", payload={"n": n, "pad": "x" * 1500}, timeout=60)["result"]
                   for n in range(1, 13)]
    finally:
        client.close()
    assert [result["seq"] for result in results] == list(range(1, 13))
    assert server.metric("starcite_event_store_backpressure_total") >= 1  # the queue did retry
    events = server.request("GET", f"/v1/sessions/{sid}/events?limit=100").json()["events"]
    assert [(event["seq"], event["payload"]["n"]) for event in events] == [(n, n) for n in range(1, 13)]
