"""The framework ceiling: a Falcon "hello" POST served by gunicorn with one
gevent worker, the stack Starcite's HTTP API runs on. The handler decodes the
JSON body and answers 201 with a small ack, nothing else, so whatever
Starcite adds on top of this figure is its own work.

Owns: the WSGI app (``bench.targets.hello:app``) and `start`.
"""

import os

import falcon

from bench.procs import port_open
from bench.targets import ACK_BODY, REPO_ROOT, VENV_BIN


class _Hello:
    def on_post(self, req, resp):
        req.get_media()
        resp.status = falcon.HTTP_201
        resp.content_type = falcon.MEDIA_JSON
        resp.data = ACK_BODY


app = falcon.App()
app.add_route("/hello", _Hello())


def start(sup, port: int, workers: int = 1):
    argv = [os.path.join(VENV_BIN, "gunicorn"), "-k", "gevent", "-w", str(workers), "-b", f"127.0.0.1:{port}",
            "--log-level", "warning", "bench.targets.hello:app"]
    return sup.start("hello", argv, lambda: port_open(port), cwd=REPO_ROOT, timeout=30)
