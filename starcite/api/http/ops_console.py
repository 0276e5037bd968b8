"""The ops console's routes (`/ops/*`), served only on the node's ops channel, never the API port.

Owns: `create_ops_app(node)`, the Falcon app behind the ops channel (a unix
socket in the data directory, mode 0600: see `starcite.cluster.ops_channel`):
`status`, `ready-nodes`, `drain`, `undrain`, `backup` (a consistent copy of
this node's data while it runs: `starcite.node.backup`), `archive-pause` /
`archive-resume` (archiving held still while an S3 or Postgres archive is
backed up), and `/health/ready` for the wait commands. Each command becomes a message to the node's actors (through
`Node`). Must not: be added to the public app; whoever can open the socket
file is an operator of this node.
"""

import falcon

from starcite.api.http import errors
from starcite.api.http.resources import HealthReadyResource, send_json
from starcite.node.backup import backup_running

OPERATOR_PAUSE = "operator"  # `starcite ops archive-pause`: one pause, whoever asks


class OpsResource:
    def __init__(self, node):
        self.node = node

    def on_get_status(self, req, resp):
        send_json(resp, falcon.HTTP_200, self.node.views.status())

    def on_get_ready_nodes(self, req, resp):
        statuses = self.node.views.observer_statuses()
        send_json(resp, falcon.HTTP_200, {"ready_nodes": [n for n, s in statuses.items() if s == "ready"],
                                          "statuses": statuses})

    def _drain(self, req, resp, draining):
        target = req.get_param("node") or self.node.host_name
        send_json(resp, falcon.HTTP_200, {"node": target, "statuses": self.node.views.set_drain(target, draining)})

    def on_get_agreement(self, req, resp):
        """How every reachable node's Observer sees ``node`` (default: this one), for wait-drained."""
        target = req.get_param("node") or self.node.host_name
        send_json(resp, falcon.HTTP_200, {"node": target, "views": self.node.control.agreement(target)})

    def on_post_drain(self, req, resp):
        self._drain(req, resp, True)

    def on_post_undrain(self, req, resp):
        self._drain(req, resp, False)

    def on_post_archive_pause(self, req, resp):
        """``?ms=N``: no archive writes from this node for N ms, or until archive-resume (a backup of an
        S3 or Postgres archive is taken meanwhile)."""
        ms = req.get_param_as_int("ms", required=True, min_value=1, max_value=24 * 3600 * 1000)
        self.node.archive_pauses.hold(self.node, OPERATOR_PAUSE, ms / 1000.0)
        send_json(resp, falcon.HTTP_200, {"archive": "paused", "ms": ms})

    def on_post_archive_resume(self, req, resp):
        self.node.archive_pauses.release(OPERATOR_PAUSE)
        send_json(resp, falcon.HTTP_200, {"archive": "paused" if self.node.archive_pauses.active() else "running"})

    def on_post_backup(self, req, resp):
        """``?dest=<absolute path>``: an empty or new directory, written by the node's own user."""
        dest = req.get_param("dest", required=True)
        if not dest.startswith("/"):
            raise errors.ApiError(400, "invalid_request", "dest must be an absolute path")
        send_json(resp, falcon.HTTP_200, backup_running(self.node, dest))


def create_ops_app(node):
    app = falcon.App(cors_enable=False)
    errors.install(app)
    app.add_route("/health/ready", HealthReadyResource(node))
    resource = OpsResource(node)
    app.add_route("/ops/status", resource, suffix="status")
    app.add_route("/ops/ready-nodes", resource, suffix="ready_nodes")
    app.add_route("/ops/agreement", resource, suffix="agreement")
    app.add_route("/ops/drain", resource, suffix="drain")
    app.add_route("/ops/undrain", resource, suffix="undrain")
    app.add_route("/ops/backup", resource, suffix="backup")
    app.add_route("/ops/archive-pause", resource, suffix="archive_pause")
    app.add_route("/ops/archive-resume", resource, suffix="archive_resume")
    return app
