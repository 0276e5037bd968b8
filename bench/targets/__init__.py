"""The systems under measurement: how each is started on loopback, checked
for readiness and stopped (always through `bench.procs.Supervisor`).

Owns (here): paths shared by the targets and `http_get`, the blocking GET
their readiness and status probes use. Must not: measure anything.
"""

import http.client
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)  # gunicorn and starcite live beside the interpreter
ACK_BODY = b'{"seq":1,"last_seq":1,"deduped":false}'  # what the trivial and hello endpoints answer


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple:
    """``(status, body)`` of ``GET path`` on ``127.0.0.1:port`` (one short-lived connection)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
