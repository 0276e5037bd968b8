"""Serving at the edge: the gunicorn application and worker that own a node.

Owns: `worker` (the gunicorn app, the gevent worker, the request handler and
graceful stop), `accept_gate` (the listener's accept path), `http_headers`
(the fast request-header reader) and `access_log` (the worker's logger).
Must not: contain endpoint logic (`starcite.api.http`) or tail logic
(`starcite.api.tails`).
"""
