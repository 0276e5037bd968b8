"""The systems under measurement: how each is started on loopback, checked
for readiness and stopped (always through `bench.procs.Supervisor`)."""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)  # gunicorn and starcite live beside the interpreter
ACK_BODY = b'{"seq":1,"last_seq":1,"deduped":false}'  # what the trivial and hello endpoints answer
