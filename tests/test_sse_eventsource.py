"""A real EventSource against a real node: the `eventsource` npm package (WHATWG semantics,
run by Node) follows an SSE tail, the node restarts (SIGTERM, and SIGKILL), and EventSource
reconnects by itself with `Last-Event-ID`: every event arrives once, in order.

Owns: installing `tests/js` (npm ci, from its lockfile) when it is not installed, and the
restart scenarios. Needs `node` and `npm`: skipped without them, unless
STARCITE_REQUIRE_NODE=1 (set by `.ci/run`, which installs them), when it fails instead.
Must not: wait without a bound."""

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time

import pytest

from tests.test_tail import fill

JS_DIR = os.path.join(os.path.dirname(__file__), "js")
RETRY_MS = 200


@pytest.fixture(scope="module")
def node_js():
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        if os.environ.get("STARCITE_REQUIRE_NODE") == "1":
            pytest.fail("node and npm are required (STARCITE_REQUIRE_NODE=1)")
        pytest.skip("node and npm are not installed")
    if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "eventsource")):
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True, timeout=300,
                       stdout=subprocess.DEVNULL)
    return node


class EventSourceProcess:
    """``node sse_follow.mjs``: its JSON lines, read by a thread into a queue."""

    def __init__(self, node, url, wanted):
        self.proc = subprocess.Popen([node, os.path.join(JS_DIR, "sse_follow.mjs"), url, str(wanted)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.events, self.opens, self.errors, self.error_lines = [], 0, 0, []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def wait_events(self, count, timeout=30.0):
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"EventSource read {len(self.events)} of {count} events "
                                   f"({self.opens} opens, errors: {self.error_lines})") from None
            if "seq" in line:
                assert line["id"] == str(line["seq"]), line
                self.events.append(line["seq"])
            elif "open" in line:
                self.opens += 1
            else:
                self.errors += 1
                self.error_lines.append(line)
        return self.events

    def finish(self, timeout=10.0):
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_event_source_reconnects_after_a_restart_with_no_gap_and_no_duplicate(node_js, make_server, sid, how):
    server = make_server(env={"STARCITE_TAIL_SSE_RETRY_MS": str(RETRY_MS)})
    server.create(sid)
    fill(server, sid, 1, 5)
    follower = EventSourceProcess(node_js, f"{server.base}/v1/sessions/{sid}/tail?cursor=0", 12)
    try:
        assert follower.wait_events(5) == [1, 2, 3, 4, 5]
        fill(server, sid, 6, 7)
        assert follower.wait_events(7) == list(range(1, 8))
        server.stop(how)
        server.start()
        fill(server, sid, 8, 12)
        assert follower.wait_events(12) == list(range(1, 13))  # the cursor=0 URL, resumed by Last-Event-ID
        assert follower.finish() == 0
        assert follower.opens >= 2 and follower.errors >= 1
    finally:
        follower.finish()
