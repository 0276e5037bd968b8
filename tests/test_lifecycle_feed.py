"""The lifecycle feed (`starcite.node.lifecycle_feed`) and the state machine's lifecycle hook.

Owns: subscribe/unsubscribe, every subscriber hearing each event once, a
raising subscriber not stopping the others (nor the publisher), the event's
shape (`lifecycle_event`), and `SessionStateMachine` calling its hook once per
applied create, patch, archive and unarchive, never for a refused command, a
retried create or patch, or an archive that changes nothing (commands
applied directly, pysyncobj's ``_doApply``, as a replica applies its log);
and a one-node `Node` in this process announcing what its replica applies,
once, and not the journal it replays after a restart. Must not: start HTTP,
or wait without a bound.
"""

import logging
import time

import gevent

from starcite.actors.raft_group import SessionStateMachine
from starcite.config.settings import load_config
from starcite.core import rules
from starcite.node.lifecycle_feed import KINDS, LifecycleFeed, lifecycle_event
from starcite.node.node import Node

T0 = "2024-01-01T00:00:00.000000Z"
T1 = "2024-01-01T00:00:01.000000Z"


def test_every_subscriber_hears_each_event_once_until_it_unsubscribes():
    feed = LifecycleFeed()
    first, second = [], []
    unsubscribe = feed.subscribe(first.append)
    feed.subscribe(second.append)
    feed.publish({"kind": "session.created"})
    unsubscribe()
    unsubscribe()  # harmless twice
    feed.publish({"kind": "session.updated"})
    assert [e["kind"] for e in first] == ["session.created"]
    assert [e["kind"] for e in second] == ["session.created", "session.updated"]
    assert len(feed) == 1


def test_a_raising_subscriber_is_logged_and_the_others_still_hear(caplog):
    feed = LifecycleFeed()
    heard = []

    def broken(event):
        raise RuntimeError("subscriber bug")
    feed.subscribe(broken)
    feed.subscribe(heard.append)
    with caplog.at_level(logging.ERROR, logger="starcite.lifecycle"):
        feed.publish({"kind": "session.archived", "session_id": "s"})
    assert heard == [{"kind": "session.archived", "session_id": "s"}]
    assert "subscriber bug" in caplog.text


def test_the_event_carries_kind_session_tenant_and_the_record():
    record = {"id": "s", "title": None, "metadata": {"tenant_id": "acme"}, "tenant_id": "acme", "version": 2,
              "archived": False, "last_seq": 0, "created_at": T0, "updated_at": T1}
    event = lifecycle_event("session.updated", record)
    assert event == {"kind": "session.updated", "session_id": "s", **record}
    assert lifecycle_event("session.created", {"id": "t", "metadata": {}})["tenant_id"] == "service"  # auth off
    assert KINDS == ("session.created", "session.updated", "session.archived", "session.unarchived")


def test_the_state_machine_announces_each_applied_change_once():
    heard = []
    machine = SessionStateMachine(None, None, lambda kind, record: heard.append((kind, record["id"], record["version"])))

    def apply(method, *args):
        return getattr(machine, method)(*args, _doApply=True)
    apply("create_session", "s", "T", {}, T0, None, 7)
    apply("create_session", "s", "T", {}, T0, None, 7)          # the node's retry of the same create
    apply("create_session", "s", "T", {}, T0, None, 8)          # 409
    patch = rules.validate_patch({"title": "U"})
    apply("patch_session", "s", patch, T1, 9)
    apply("patch_session", "s", patch, T1, 9)                    # the node's retry of the same patch
    apply("patch_session", "s", rules.validate_patch({"title": "V", "expected_version": 1}), T1, 10)  # 409
    apply("set_archived", "s", True, T1)
    apply("set_archived", "s", True, T1)                         # already archived
    apply("set_archived", "s", False, T1)
    apply("patch_session", "nope", patch, T1, 11)                # 404
    assert heard == [("session.created", "s", 1), ("session.updated", "s", 2), ("session.archived", "s", 2),
                     ("session.unarchived", "s", 2)]


def test_a_machine_without_a_hook_applies_as_before():
    machine = SessionStateMachine(None, None)
    assert machine.create_session("s", None, {}, T0, None, _doApply=True)[0] == "ok"
    assert machine.set_archived("s", True, T1, _doApply=True)[1]["archived"] is True


# -- a node (in this process): what its replicas apply, announced once -------------------------


def run_node(data_dir, work):
    """Start a one-node `Node` on ``data_dir``, subscribe to its feed, run ``work(node)``, stop it;
    the events heard, as ``(kind, session_id, version, archived)``."""
    node = Node(load_config(environ={"STARCITE_DATA_DIR": str(data_dir), "STARCITE_NUM_GROUPS": "2"}))
    heard = []
    node.lifecycle_feed.subscribe(lambda e: heard.append((e["kind"], e["session_id"], e["version"], e["archived"])))
    try:
        deadline = time.monotonic() + 20
        while not node.views.readiness()[0]:
            assert time.monotonic() < deadline, "node not ready"
            gevent.sleep(0.05)
        work(node)
    finally:
        node.shutdown()
    return heard


def test_a_node_announces_what_its_replica_applies_and_not_its_journal_again_after_a_restart(tmp_path):
    def changes(node):
        node.create_session({"id": "s1"})
        node.patch_session("s1", rules.validate_patch({"title": "x"}))
        node.set_archived("s1", True)
        node.set_archived("s1", False)
    assert run_node(tmp_path, changes) == [("session.created", "s1", 1, False), ("session.updated", "s1", 2, False),
                                          ("session.archived", "s1", 2, True), ("session.unarchived", "s1", 2, False)]
    assert run_node(tmp_path, lambda node: node.create_session({"id": "s2"})) == [("session.created", "s2", 1, False)]
