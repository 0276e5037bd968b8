"""An S3 stand-in for the Starcite S3 archive rows: moto's standalone server
(`moto_server`, installed beside the interpreter) on a free loopback port,
with one bucket.

Owns: starting it through the supervisor, waiting for it to answer, creating
the bucket, and the node environment that points the S3 adapter at it.
Must not: measure anything.
"""

import os
import urllib.request

from bench.procs import StartError, free_port, wait_until
from bench.targets import VENV_BIN, http_get

BUCKET = "bench-archive"
START_TIMEOUT_S = 30.0


def start(sup):
    """``(child, node_env)``: a running moto server holding `BUCKET`, and the env of a node archiving there."""
    executable = os.path.join(VENV_BIN, "moto_server")
    if not os.path.exists(executable):
        raise StartError(f"{executable} is not installed")
    port = free_port()
    child = sup.spawn("moto", [executable, "-H", "127.0.0.1", "-p", str(port)])
    wait_until(lambda: http_get(port, "/", timeout=1)[0] == 200, START_TIMEOUT_S, "moto_server", alive=child.alive)
    request = urllib.request.Request(f"http://127.0.0.1:{port}/{BUCKET}", method="PUT")
    urllib.request.urlopen(request, timeout=5).close()
    env = {"STARCITE_ARCHIVE_ADAPTER": "s3", "STARCITE_S3_BUCKET": BUCKET,
           "STARCITE_S3_ENDPOINT": f"http://127.0.0.1:{port}", "STARCITE_S3_ACCESS_KEY_ID": "bench",
           "STARCITE_S3_SECRET_ACCESS_KEY": "bench"}
    return child, env
