"""The lifecycle events of the whole cluster, once each, for the `lifecycle` channel.

Owns: `LifecycleRelay` (``node.lifecycle_events``). The node's `LifecycleFeed`
publishes an event on every replica that applies it, so a worker or node
sees only the groups it replicates, and a replicated group's event several
times. The relay passes on only what a group's leader applies: to its own
subscribers, and over the peer links to every other member (the node's
sibling workers, the cluster's other nodes), which hand it to theirs. So a
subscriber on any worker of any node gets every session's events, each once.
Around a leader change an event can reach subscribers twice or not at all
(the leader that applied it may no longer know it leads), as upstream's
PubSub: lifecycle events are notifications, the records are the truth.

Must not: block or yield (`_applied` runs inside the Raft apply and only
queues peer messages), or keep events.
"""

from starcite.node.lifecycle_feed import LifecycleFeed

RELAY_MESSAGE = "lifecycle"


class LifecycleRelay:
    def __init__(self, feed: LifecycleFeed, hub, leads):
        """feed: the node's feed; hub: its `PeerHub` (None: a lone process); leads(session_id):
        whether this member's replica leads the session's group."""
        self.view = LifecycleFeed()
        self.hub, self.leads = hub, leads
        feed.subscribe(self._applied)
        if hub is not None:
            hub.handlers[RELAY_MESSAGE] = self._relayed

    def subscribe(self, callback):
        """`LifecycleFeed.subscribe`, for the events of the whole cluster."""
        return self.view.subscribe(callback)

    def _applied(self, event: dict):
        if not self.leads(event["session_id"]):
            return
        self.view.publish(event)
        if self.hub is not None:
            for peer in list(self.hub.links):
                self.hub.send(peer, (RELAY_MESSAGE, event))

    def _relayed(self, _peer, message):
        self.view.publish(message[1])
