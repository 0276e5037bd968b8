"""The router between two nodes, in one process: retries of leader changes and the read barrier.

Owns: two `Router`s joined by an in-memory hub, each over a scripted stand-in for its node's
`LocalReplicas`. It pins what the cluster tests can only meet by chance: a forwarded command
whose leader lost its leadership before the commit is retried at the new leader rather than
answered 503; a real loss of every leader is a 503 at the deadline; a fresh read asks the
leader's read index and waits for the local replica to apply it. Must not: start Raft, actors or
sockets.
"""

import time
from types import SimpleNamespace

import pytest

from starcite.actors.raft_errors import NotLeader, RaftUnavailable
from starcite.cluster.routing import Router
from starcite.core.errors import StarciteError


class Hubs:
    """An in-memory peer hub per node: `call` runs the other router's method, and a StarciteError
    crosses as a plain StarciteError, as it does over the wire (`starcite.peers.link`)."""

    def __init__(self):
        self.by_name = {}

    def hub(self, name):
        hubs = self

        class Hub:
            methods = {}

            def connected(self, peer):
                return peer in hubs.by_name

            def call(self, peer, method, args, timeout):
                try:
                    return hubs.by_name[peer].methods[method](name, *args)
                except StarciteError as exc:
                    raise StarciteError(exc.status, exc.code, exc.message, exc.headers) from None

        hub = Hub()
        hub.methods = {}
        self.by_name[name] = hub
        return hub


class Replica:
    def __init__(self, leader):
        self.leader = leader
        self.applied_waits = []
        self.hastened = 0
        self.replaying = False  # `catching_up`: just restarted, its journal not applied yet

    def catching_up(self):
        return self.replaying

    def leader_name(self):
        return self.leader

    def wait_applied(self, index, timeout):
        self.applied_waits.append(index)

    def hasten_commit_news(self):
        self.hastened += 1


class Local:
    """A node's replicas: ``answers`` is what each successive command returns (or raises)."""

    def __init__(self, name, leader, answers=()):
        self.name, self.group = name, Replica(leader)
        self.answers = list(answers)
        self.commands = []

    def replica(self, group_id):
        return self.group

    def command(self, group_id, kind, args, timeout):
        self.commands.append(kind)
        if self.group.leader != self.name:
            raise NotLeader(group_id, self.group.leader)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def read(self, group_id, kind, args):
        return None if self.group.replaying else ("read", kind)


class Counter:
    def labels(self, kind):
        return self

    def inc(self):
        pass


def two_nodes(leader_answers, timeout_ms=2000):
    """Node a follows, node b leads group 0; returns (router a, local a, local b)."""
    hubs = Hubs()
    config = dict(write_node_ids=["a", "b"], replication_factor=2, raft_timeout_ms=timeout_ms)
    locals_ = {"a": Local("a", "b"), "b": Local("b", "b", leader_answers)}
    routers = {}
    for name in ("a", "b"):
        router = Router(locals_[name], hubs.hub(name), SimpleNamespace(**config, node_name=name), Counter())
        router.control = SimpleNamespace(drained=set(), replicas=["a", "b"])
        routers[name] = router
    return routers["a"], locals_["a"], locals_["b"]


LOST = RaftUnavailable("raft_unavailable", "Raft leadership changed before commit (reason 2)")


def test_a_forwarded_command_whose_leader_changed_before_commit_is_retried_not_answered_503():
    router, _a, b = two_nodes([LOST, ("ok", 5)])
    assert router.command(0, "append", ("s", {}, "t", 1)) == ("ok", 5)
    assert b.commands == ["append", "append"]


def test_without_any_leader_that_commits_the_answer_is_503_at_the_deadline():
    router, _a, _b = two_nodes([LOST], timeout_ms=300)
    started = time.monotonic()
    with pytest.raises(RaftUnavailable) as raised:
        router.command(0, "append", ("s", {}, "t", 1))
    assert raised.value.status == 503 and raised.value.code == "raft_timeout"
    assert time.monotonic() - started < 2


def test_a_fresh_read_waits_for_the_leaders_read_index_on_the_local_replica():
    router, a, b = two_nodes([17])
    assert router.read(0, "get_session", ("s",)) == ("read", "get_session")
    assert b.commands == ["read_index"]
    assert a.group.applied_waits == [17]
    assert b.group.hastened == 1  # the leader sends its commit index at once to the waiting follower


def test_a_stale_read_asks_nobody():
    router, a, b = two_nodes([17])
    assert router.read(0, "read_hot", ("s", 0, 1), fresh=False) == ("read", "read_hot")
    assert b.commands == [] and a.group.applied_waits == []


def test_a_replica_still_replaying_its_journal_answers_503_not_not_found():
    """A node without a replica reads from one that has just restarted: "nothing there" would be a
    404 for a session that exists (a tail opened on the other worker of a node just restarted)."""
    router, a, b = two_nodes([17])
    a.replica = lambda group_id: None  # a holds no replica: it asks b
    b.group.replaying = True
    with pytest.raises(StarciteError) as raised:
        router.read(0, "get_session", ("s",), fresh=False)
    assert raised.value.status == 503 and raised.value.code == "raft_unavailable"
    b.group.replaying = False
    assert router.read(0, "get_session", ("s",), fresh=False) == ("read", "get_session")
