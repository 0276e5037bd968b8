"""`LifecycleFeed`: the node's in-process publish/subscribe of session lifecycle events.

Owns: the subscribers (callbacks) and handing each published event to every
one of them. An event is a dict ``{"kind", "session_id", "tenant_id", ...the
session record's fields}``, ``kind`` being one of `KINDS` (the names the
TypeScript SDK's lifecycle schema and upstream Starcite use). The node
publishes an event once, when its own replica of the session's group applies
the command (`starcite.node.node.Node`): every node sees the lifecycle events
of the groups it replicates, and only those.

Must not: block, yield or raise into the publisher: `publish` runs inside the
Raft apply, so a callback must only hand the event on (to a queue, a
greenlet), and a callback that raises is logged and skipped.
"""

import logging

log = logging.getLogger("starcite.lifecycle")

KINDS = ("session.created", "session.updated", "session.archived", "session.unarchived")


NO_TENANT = "service"  # the tenant of a session made with auth off, in lifecycle events (as upstream has it)


def lifecycle_event(kind: str, record: dict) -> dict:
    """The event of ``kind`` for a session whose record (after the command) is ``record``. A session
    without a tenant (auth off) is `NO_TENANT`'s: the SDK's typed lifecycle events need a tenant."""
    return {"kind": kind, "session_id": record["id"], **record, "tenant_id": record.get("tenant_id") or NO_TENANT}


class LifecycleFeed:
    """Callbacks subscribed to the node's lifecycle events."""

    def __init__(self):
        self._subscribers = {}  # token -> callback, in subscription order
        self._next = 0

    def subscribe(self, callback):
        """Call ``callback(event)`` for every event published from now on; returns ``unsubscribe()``
        (calling it twice is harmless)."""
        token = self._next
        self._next += 1
        self._subscribers[token] = callback

        def unsubscribe():
            self._subscribers.pop(token, None)
        return unsubscribe

    def publish(self, event: dict) -> None:
        """Hand ``event`` to every subscriber; one that raises does not stop the others."""
        for callback in list(self._subscribers.values()):
            try:
                callback(event)
            except Exception:
                log.exception("lifecycle subscriber failed on %s of %s", event.get("kind"), event.get("session_id"))

    def __len__(self):
        return len(self._subscribers)
