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
    reply: Any


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
class Subscribe:
    session_id: str
    tail: Any             # TailActor address


@dataclass(slots=True)
class Unsubscribe:
    session_id: str
    tail: Any


@dataclass(slots=True)
class Committed:
    """From the state machine: events just applied for one session."""
    session_id: str
    entries: list         # [(seq, json), ...] ascending


@dataclass(slots=True)
class SetLive:
    """Tail -> group: put committed batches straight into ``outbox`` (None: stop)."""
    session_id: str
    tail: Any
    outbox: Any


@dataclass(slots=True)
class LastSeq:
    """Tail -> group: what is the session's last seq? Answered with `LastSeqIs`."""
    session_id: str
    tail: Any


@dataclass(slots=True)
class LastSeqIs:
    last_seq: int


@dataclass(slots=True)
class TailStart:
    session_id: str
    cursor: int
    outbox: Any           # gevent Queue drained by the WebSocket greenlet
    group: Any            # RaftGroupActor address


@dataclass(slots=True)
class GoLive:
    cursor: int


@dataclass(slots=True)
class GoReplay:
    """Socket pump -> tail: a gap or a failed catch-up check; replay from the store."""
    pass


@dataclass(slots=True)
class TailStop:
    pass


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
class ControlCommand:
    """A Raft command of the control group (``method`` of `ControlStateMachine`), on its leader."""
    method: str
    args: tuple
    reply: Any
