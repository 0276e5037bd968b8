"""Test helper: a tail that follows one session through restarts, failovers and load balancers.

Owns: `FollowingTail`, a thread that tails a session from seq 1 over a WebSocket (``"ws"``) or SSE
(``"sse"``) through one endpoint or several (an object with ``base`` and ``ws_base``: a node, or a
load balancer), resumes from its last seq after any error on the next endpoint, as the SDK does,
and records every seq it got and any gap or repeat. Must not: assert anything (the tests do), or
run unbounded (`stop` ends it within its timeout).
"""

import threading
import time

import websocket

from tests.sse_client import SseTail
from tests.tail_client import TailClient


class FollowingTail(threading.Thread):
    """Follows ``session_id`` over ``kind`` through ``endpoints`` (tried in turn after a failure)."""

    def __init__(self, endpoints, session_id, kind="ws"):
        super().__init__(daemon=True, name=f"follow-{kind}-{session_id}")
        self.endpoints, self.session_id, self.kind = list(endpoints), session_id, kind
        self.seqs, self.errors, self.reconnects = [], [], 0
        self.stop_event = threading.Event()
        self._turn = 0

    @property
    def last(self):
        return self.seqs[-1] if self.seqs else 0

    def _open(self):
        endpoint = self.endpoints[self._turn % len(self.endpoints)]
        if self.kind == "ws":
            return TailClient(endpoint, self.session_id, cursor=self.last, batch_size=50)
        tail = SseTail(endpoint, self.session_id, cursor=self.last, timeout=5)
        if tail.status != 200:
            tail.close()
            raise ConnectionError(f"SSE tail refused: {tail.status}")
        return tail

    def run(self):
        while not self.stop_event.is_set():
            try:
                tail = self._open()
            except Exception:  # refused or no node: try the next endpoint shortly, bounded by stop()
                self.reconnects += 1
                self._turn += 1
                time.sleep(0.2)
                continue
            try:
                while not self.stop_event.is_set():
                    try:
                        tail.read_until(len(tail.events) + 1, timeout=1)
                    except (TimeoutError, websocket.WebSocketTimeoutException):
                        pass  # idle for a second: still connected
                    self._take(tail)
            except Exception:  # the node went away: resume from the last seq, on the next endpoint
                self._take(tail)
                self.reconnects += 1
                self._turn += 1
            finally:
                tail.close()

    def _take(self, tail):
        """Record the tail's new events. A repeat (seq at or below the last one: delivered twice,
        e.g. replayed again after a resume) and a gap are errors; a repeat is not recorded twice."""
        for event in tail.events:
            seq = event["seq"]
            if seq <= self.last:
                self.errors.append(f"{self.kind} {self.session_id}: repeat of seq {seq} after {self.last}")
                continue
            if seq != self.last + 1:
                self.errors.append(f"{self.kind} {self.session_id}: gap, {self.last} then {seq}")
            self.seqs.append(seq)
        tail.events.clear()

    def stop(self, timeout=15.0):
        self.stop_event.set()
        self.join(timeout)
        return not self.is_alive()
