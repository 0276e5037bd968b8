"""What this node's own replicas answer: the narrow interface the router is handed.

Owns: `LocalReplicas`, the only view `starcite.cluster.routing.Router` has of
this node: `replica(group_id)` (this node's `RaftGroup` of a session group or
of the control group, or None), `command(...)` (a Raft command as a message
to the group's actor, with its own reply future, so no reply can reach
another caller; `NotLeader` unless this node leads) and `read(...)` (a direct,
non-yielding call on the replica's state: `group_actor.session_record` /
`hot_read`, the same code the group's actor runs for GetSession / ReadHot).
A ``read_index`` command is the leader's answer to a fresh read
(`starcite.actors.read_index`).

Must not: route, forward or retry (the router does), parse HTTP, or decide
session rules.
"""

from gevent.event import AsyncResult

from starcite.actors import messages as m
from starcite.actors.control import CONTROL_GROUP
from starcite.actors.group_actor import hot_read, session_record
from starcite.actors.raft_errors import NotLeader

COMMANDS = {"append": m.Append, "create": m.CreateSession, "ack": m.AckArchived, "control": m.ControlCommand}
# Commands that are a method of the session group's state machine (`m.SessionCommand`), by kind.
SESSION_COMMANDS = {"patch": "patch_session", "archive": "set_archived", "delete": "delete_session",
                    "expire": "expire_sessions", "forget_deleted": "forget_deleted"}


class LocalReplicas:
    """``groups`` / ``group_actors``: this node's replicas and their actors by group id (the dicts the
    node fills); ``ask(address, message, timeout)``: a message and its reply; ``check_backpressure()``:
    raises 429 when the hot store is full (checked once, on the leader, before an append)."""

    def __init__(self, groups, group_actors, ask, check_backpressure):
        self.groups, self.group_actors = groups, group_actors
        self.ask, self.check_backpressure = ask, check_backpressure
        self.control_group = None  # this node's replica of the control group, once the control plane has one

    def replica(self, group_id):
        """This node's `RaftGroup` for ``group_id`` (a session group or the control group), or None."""
        group = self.groups.get(group_id)
        if group is None and group_id == CONTROL_GROUP:
            group = self.control_group
        return group

    def command(self, group_id, kind, args, timeout):
        """A Raft command on this node's replica of ``group_id`` (`NotLeader` unless it leads)."""
        address = self.group_actors.get(group_id)
        if address is None:
            raise NotLeader(group_id, None)
        message = COMMANDS.get(kind)
        if message is not None:
            if kind == "append":
                self.check_backpressure()
            return self.ask(address, message(*args, reply=AsyncResult()), timeout)
        if kind in SESSION_COMMANDS:
            return self.ask(address, m.SessionCommand(SESSION_COMMANDS[kind], tuple(args), AsyncResult()), timeout)
        if kind == "read_index":  # the leader's read index, once it has confirmed it still leads
            return self.groups[group_id].read_index(timeout)
        if not self.groups[group_id].is_leader():  # a read that must see every commit
            raise NotLeader(group_id, self.groups[group_id].leader_name())
        return self.read(group_id, kind, args)

    def read(self, group_id, kind, args):
        """A read from this node's replica of ``group_id``: a direct call on its state, the code
        the group's actor runs for GetSession / ReadHot (it never yields: see `group_actor`)."""
        group = self.groups[group_id]
        return session_record(group, *args) if kind == "get_session" else hot_read(group, *args)
