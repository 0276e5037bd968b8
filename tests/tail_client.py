"""Test helper: a WebSocket tail client that collects events with bounded waits."""

import json
import time

import websocket


class TailClient:
    def __init__(self, server, session_id, cursor=0, batch_size=1, headers=None, query=""):
        url = f"{server.ws_base}/v1/sessions/{session_id}/tail?cursor={cursor}&batch_size={batch_size}{query}"
        self.ws = websocket.create_connection(url, timeout=10, header=headers or [])
        self.events = []
        self.frames = 0
        self.close_code = None
        self.close_reason = None

    def read_until(self, count, timeout=15.0):
        """Collect until ``count`` events in total; returns them (bounded by ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"got {len(self.events)} of {count} events")
            self.ws.settimeout(remaining)
            opcode, data = self.ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self._closed(data)
                raise ConnectionError(f"closed {self.close_code} {self.close_reason!r}")
            self.frames += 1
            decoded = json.loads(data)
            self.events.extend(decoded if isinstance(decoded, list) else [decoded])
        return self.events

    def wait_close(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except websocket.WebSocketConnectionClosedException:
                return self.close_code
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self._closed(data)
                return self.close_code
            if opcode == websocket.ABNF.OPCODE_TEXT:
                decoded = json.loads(data)
                self.events.extend(decoded if isinstance(decoded, list) else [decoded])
        raise TimeoutError("socket did not close")

    def _closed(self, data):
        if len(data) >= 2:
            self.close_code = int.from_bytes(data[:2], "big")
            self.close_reason = data[2:].decode(errors="replace")

    def seqs(self):
        return [event["seq"] for event in self.events]

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
