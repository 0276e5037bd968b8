"""Messages exchanged between the edge, the node and the actors.

Owns: the message types. Every request message carries its own ``reply``
future (a `gevent.event.AsyncResult`), so a reply can never reach another
caller. Must not: contain behaviour beyond trivial constructors.
"""

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class StartGroup:
    group: Any            # the RaftGroup (pysyncobj) this actor owns
    group_id: int


@dataclass(slots=True)
class CreateSession:
    session_id: str
    title: Any
    metadata: dict
    created_at: str
    creator_principal: Any
    request: Any  # the API request's token: a retried create recognises its own commit (`rules.same_request`)
    # The expiry a create asks for; a create without one leaves both out of its args, so that a node of
    # an earlier version (a rolling upgrade) still takes it. Every field is given by name or position
    # before ``reply``, which is always given by name (`LocalReplicas.command`).
    expires_at: Any = None  # RFC 3339
    ttl_seconds: Any = None
    reply: Any = None


@dataclass(slots=True)
class Append:
    session_id: str
    append: dict
    inserted_at: str
    nbytes: int
    reply: Any


@dataclass(slots=True)
class AckArchived:
    session_id: str
    upto_seq: int
    reply: Any


@dataclass(slots=True)
class GetSession:
    session_id: str
    reply: Any


@dataclass(slots=True)
class ReadHot:
    """Reply: ``(archived_seq, last_seq, [(seq, json, nbytes), ...])`` or None if unknown."""
    session_id: str
    after_seq: int
    limit: int
    reply: Any


@dataclass(slots=True)
class PendingArchive:
    """Reply: ``[(session_id, archived_seq, last_seq), ...]`` when this node leads, else []."""
    reply: Any


@dataclass(slots=True)
class GroupStatus:
    reply: Any


@dataclass(slots=True)
class Committed:
    """From the state machine: events just applied for one session."""
    session_id: str
    entries: list         # [(seq, json), ...] ascending


@dataclass(slots=True)
class GoLive:
    """Tail -> group: the socket has sent everything up to ``cursor``. In one dispatch the
    group compares it with the session's last seq: behind -> puts ``("replay",)`` on
    ``outbox``; caught up -> registers ``outbox`` for committed batches."""
    session_id: str
    outbox: Any           # has put(item); the tail's identity in the group's registry
    cursor: int


@dataclass(slots=True)
class LeaveLive:
    """Tail -> group: stop putting committed batches into ``outbox`` (replaying or closed)."""
    session_id: str
    outbox: Any


@dataclass(slots=True)
class ArchiveTick:
    pass


@dataclass(slots=True)
class FlushDone:
    stats: dict = field(default_factory=dict)


@dataclass(slots=True)
class ObserverQuery:
    reply: Any


@dataclass(slots=True)
class DrainState:
    """The drain state the cluster agreed on (the control group), for the Observer."""
    drained: frozenset


@dataclass(slots=True)
class ConfigureObserver:
    lost_after: float     # seconds a node stays suspect before it is lost


@dataclass(slots=True)
class NodeSeen:
    node: str
    alive: bool


@dataclass(slots=True)
class StartArchiver:
    node: Any             # the Node: groups, adapter, metrics


@dataclass(slots=True)
class SessionCommand:
    """A Raft command of a session group by name (a method of `SessionStateMachine`: ``patch_session``,
    ``set_archived``, ``delete_session``, ``expire_sessions``, ``forget_deleted``), on its leader."""
    method: str
    args: tuple
    reply: Any


@dataclass(slots=True)
class ControlCommand:
    """A Raft command of the control group (``method`` of `ControlStateMachine`), on its leader."""
    method: str
    args: tuple
    reply: Any
