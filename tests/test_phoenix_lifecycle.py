"""The Phoenix socket's `lifecycle` channel in process: a `PhoenixSocket` on one end of a gevent
socket pair, the raw client on the other, events published on a `LifecycleFeed` as a Raft
apply would (synchronously, from outside the socket's greenlets).

Checks: the push's shape (``lifecycle {event}``, ``kind`` as the SDK reads
it, ``session.<kind>``), the tenant fence, a session-locked token refused,
the subscription gone after a leave and after the socket closes, a publish
that never blocks (it only queues), a socket too far behind closed; and
`LifecycleRelay`, which feeds the channel each event of the cluster once.

Must not: open a network port, or wait without a bound.
"""

import time

import gevent
import gevent.socket
import pytest

from starcite.api.auth.access import OPEN, Access
from starcite.api.auth.policy import SCOPES, AuthContext
from starcite.api.tails.phoenix_socket import MAX_QUEUED, PhoenixSocket
from starcite.api.tails.phoenix_wire import SharedWebSocket
from starcite.node.lifecycle_feed import LifecycleFeed, lifecycle_event
from starcite.node.lifecycle_relay import LifecycleRelay
from starcite.telemetry.connections import ConnectionCounts
from tests.phoenix_client import PhoenixClient


class FakeNode:
    stopping = False

    def __init__(self):
        self.connections = ConnectionCounts()
        self.lifecycle_feed = LifecycleFeed()  # what the channel subscribes to: here, events it publishes itself
        self.lifecycle_events = self.lifecycle_feed


def service(tenant="acme", session_ids=None):
    return Access(AuthContext("service", tenant, "svc", None, SCOPES, session_ids, int(time.time()) + 300))


@pytest.fixture
def pair():
    """pair(access) -> (node, the PhoenixSocket, a client on the other end)."""
    made = []

    def make(access=OPEN):
        node = FakeNode()
        server_end, client_end = gevent.socket.socketpair()
        phoenix = PhoenixSocket(node, SharedWebSocket(server_end, 5.0), access, None, (set(), set()))
        gevent.spawn(phoenix.start).join(timeout=5)
        client = PhoenixClient(client_end, b"", timeout=5.0)
        made.append((phoenix, client))
        return node, phoenix, client

    yield make
    for phoenix, client in made:
        client.sock.close()
        phoenix.put(("close", None, ""))
        gevent.sleep(0)


def created(session_id, tenant="acme"):
    return lifecycle_event("session.created", {"id": session_id, "tenant_id": tenant, "title": None, "metadata": {},
                                               "created_at": "2026-01-01T00:00:00Z", "version": 1})


def test_events_are_pushed_with_the_sdk_kind(pair):
    node, _phoenix, client = pair()
    join_ref, reply = client.join("lifecycle")
    assert reply == {"status": "ok", "response": {}}
    node.lifecycle_feed.publish(created("s1"))
    node.lifecycle_feed.publish({"kind": "archived", "session_id": "s1", "tenant_id": "acme", "archived": True})
    first, second = client.next(), client.next()
    assert first == [join_ref, None, "lifecycle", "lifecycle", {"event": created("s1")}]
    assert second[4]["event"]["kind"] == "session.archived"  # a bare kind gets the SDK's prefix


def test_the_channel_is_fenced_to_the_tokens_tenant(pair):
    node, _phoenix, client = pair(service("acme"))
    client.join("lifecycle")
    node.lifecycle_feed.publish(created("theirs", tenant="globex"))
    node.lifecycle_feed.publish(created("ours"))
    assert client.next()[4]["event"]["session_id"] == "ours"


def test_a_session_locked_token_is_refused(pair):
    _node, _phoenix, client = pair(service(session_ids=frozenset({"s1"})))
    _join_ref, reply = client.join("lifecycle")
    assert (reply["status"], reply["response"]["reason"]) == ("error", "forbidden_session")


def test_leave_and_close_unsubscribe(pair):
    node, phoenix, client = pair()
    join_ref, _ = client.join("lifecycle")
    assert len(node.lifecycle_feed) == 1
    assert client.leave("lifecycle", join_ref)["status"] == "ok"
    client.wait_for(lambda m: m[3] == "phx_close")
    assert not len(node.lifecycle_feed) and not phoenix.channels
    client.join("lifecycle")
    assert len(node.lifecycle_feed) == 1
    client.sock.close()
    deadline = time.monotonic() + 5
    while len(node.lifecycle_feed) and time.monotonic() < deadline:
        gevent.sleep(0.01)
    assert not len(node.lifecycle_feed) and node.connections.total == 0


def test_publish_only_queues(pair):
    node, phoenix, client = pair()
    client.join("lifecycle")
    switches = []
    hub = gevent.get_hub()
    greenlet = gevent.getcurrent()
    for n in range(50):
        node.lifecycle_feed.publish(created(f"s{n}"))
        switches.append(gevent.getcurrent() is greenlet and hub is gevent.get_hub())
    assert all(switches) and len(phoenix.queue) == 50  # nothing written yet: this greenlet never yielded
    assert [client.next()[4]["event"]["session_id"] for _ in range(50)] == [f"s{n}" for n in range(50)]


def test_a_socket_too_far_behind_is_closed(pair):
    node, phoenix, client = pair()
    client.join("lifecycle")
    for n in range(MAX_QUEUED + 1):
        node.lifecycle_feed.publish(created(f"s{n}"))
    with pytest.raises(ConnectionError):
        client.wait_for(lambda m: False, timeout=5)
    assert client.closed == (1008, "too_far_behind") and not len(node.lifecycle_feed)


class FakeHub:
    def __init__(self, peers):
        self.links = dict.fromkeys(peers)
        self.handlers = {}
        self.sent = []

    def send(self, peer, message):
        self.sent.append((peer, message))
        return True


def test_the_relay_passes_on_only_what_a_leader_applies_and_what_peers_relay():
    feed, hub = LifecycleFeed(), FakeHub(["n2", "n3"])
    relay = LifecycleRelay(feed, hub, leads=lambda session_id: session_id == "mine")
    heard = []
    relay.subscribe(heard.append)
    feed.publish(created("mine"))
    feed.publish(created("theirs"))  # applied here as a follower: its leader relays it
    assert heard == [created("mine")]
    assert hub.sent == [("n2", ("lifecycle", created("mine"))), ("n3", ("lifecycle", created("mine")))]
    hub.handlers["lifecycle"]("n2", ("lifecycle", created("theirs")))
    assert heard == [created("mine"), created("theirs")]


def test_a_lone_process_relays_to_its_own_subscribers_only():
    feed = LifecycleFeed()
    relay = LifecycleRelay(feed, None, leads=lambda _session_id: True)
    heard = []
    relay.subscribe(heard.append)
    feed.publish(created("s1"))
    assert heard == [created("s1")]
