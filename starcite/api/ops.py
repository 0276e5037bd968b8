"""Loopback-only `/ops/*` routes: the ops console's way into the node's actors.

Owns: `status`, `ready-nodes`, `drain`, `undrain` over HTTP for `starcite ops`.
Must not: answer any client that is not on the loopback interface.
"""

import falcon

from starcite.api.errors import ApiError
from starcite.api.resources import send_json

_LOOPBACK = ("127.", "::1", "::ffff:127.")


def _local_only(req):
    if not (req.remote_addr or "").startswith(_LOOPBACK):
        raise ApiError(403, "forbidden", "Ops routes answer loopback clients only")


class OpsResource:
    def __init__(self, node):
        self.node = node

    def on_get_status(self, req, resp):
        _local_only(req)
        send_json(resp, falcon.HTTP_200, self.node.status())

    def on_get_ready_nodes(self, req, resp):
        _local_only(req)
        statuses = self.node.observer_statuses()
        send_json(resp, falcon.HTTP_200, {"ready_nodes": [n for n, s in statuses.items() if s == "ready"],
                                          "statuses": statuses})

    def _drain(self, req, resp, draining):
        _local_only(req)
        target = req.get_param("node") or self.node.name
        send_json(resp, falcon.HTTP_200, {"node": target, "statuses": self.node.set_drain(target, draining)})

    def on_post_drain(self, req, resp):
        self._drain(req, resp, True)

    def on_post_undrain(self, req, resp):
        self._drain(req, resp, False)


def add_routes(app, node):
    resource = OpsResource(node)
    app.add_route("/ops/status", resource, suffix="status")
    app.add_route("/ops/ready-nodes", resource, suffix="ready_nodes")
    app.add_route("/ops/drain", resource, suffix="drain")
    app.add_route("/ops/undrain", resource, suffix="undrain")
