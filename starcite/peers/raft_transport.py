"""pysyncobj groups multiplexed over the peer links: one connection per node pair, not a port per group.

Owns: `MuxTransport`, the pysyncobj `Transport` of one group
(``transportClass=functools.partial(MuxTransport, raft_hub, group_id)``), and
`RaftHub`, which routes ``("raft", group_id, message)`` frames from the peer
hub to the group's inbox and tells each group when a peer link comes or goes.
A group's messages are queued in its inbox and handed to pysyncobj only by
the group's own tick greenlet (`InboxPoller.poll`, called at the end of
`_onTick` exactly where pysyncobj polls its sockets), so pysyncobj's state is
never touched by two greenlets.

Must not: know what the messages mean, or block: `send` only queues.
"""

import collections

from pysyncobj.node import Node
from pysyncobj.transport import Transport


class RaftHub:
    """The groups of this node, keyed by id, fed from the peer hub."""

    def __init__(self, peer_hub):
        self.peer_hub = peer_hub
        self.transports = {}
        peer_hub.handlers["raft"] = self._on_raft
        peer_hub.link_listeners.append(self._on_link)

    def _on_raft(self, peer, message):
        transport = self.transports.get(message[1])
        if transport is not None:
            transport.deliver(peer, message[2])

    def _on_link(self, peer, up):
        for transport in list(self.transports.values()):
            transport.link_changed(peer, up)


class MuxTransport(Transport):
    """One group's pysyncobj transport: sends through the shared peer links, receives via an inbox."""

    def __init__(self, raft_hub, group_id, syncObj, selfNode, otherNodes):
        super().__init__(syncObj, selfNode, otherNodes)
        self.raft_hub, self.group_id = raft_hub, group_id
        self.nodes = {node.id: node for node in otherNodes}
        self.inbox = collections.deque()
        self.wake = None  # set by the group: wakes its tick greenlet
        raft_hub.transports[group_id] = self

    def start(self):
        """Once the SyncObj is built: report the links that are already up."""
        for peer in self.nodes:
            if self.raft_hub.peer_hub.connected(peer):
                self._onNodeConnected(self.nodes[peer])

    def deliver(self, peer, message):
        node = self.nodes.get(peer)
        if node is not None:
            self.inbox.append((node, message))
            if self.wake is not None:
                self.wake()

    def drain(self):
        """Hand queued messages to pysyncobj (tick greenlet only)."""
        inbox = self.inbox
        for _ in range(len(inbox)):
            node, message = inbox.popleft()
            self._onMessageReceived(node, message)

    def link_changed(self, peer, up):
        node = self.nodes.get(peer)
        if node is None:
            return
        self.inbox.append((node, None if up else False))
        if self.wake is not None:
            self.wake()

    def _onMessageReceived(self, node, message):
        if message is None:
            self._onNodeConnected(node)
        elif message is False:
            self._onNodeDisconnected(node)
        else:
            super()._onMessageReceived(node, message)

    # -- pysyncobj's Transport interface ---------------------------------------

    def send(self, node, message):
        return self.raft_hub.peer_hub.send(node.id, ("raft", self.group_id, message))

    @property
    def ready(self):
        return True

    def tryGetReady(self):
        pass

    def waitReady(self):
        pass

    def addNode(self, node):
        self.nodes[node.id] = node

    def dropNode(self, node):
        self.nodes.pop(node.id, None)

    def destroy(self):
        self.raft_hub.transports.pop(self.group_id, None)


def peer_nodes(names):
    return [Node(name) for name in names]
