"""`Node`: one Starcite node's data plane, assembled, and the calls the edge makes on it.

Owns: building the in-process actor system (Thespian simpleSystemBase, driven
inline from greenlets), the Raft groups this node replicates and their
actors, the archiver, the observer, the archive adapter and read cache, the
node's timers (archive tick, tail catch-up, cache cleanup), readiness, and
graceful shutdown. The node is composed of named parts (see
`starcite.node`): `reads` (`SessionReads`), `tails` (`NodeTails`), `views`
(`NodeViews`), `long_polls` (`LongPolls`), `cap` (`EventStoreCap`, the event
store cap and backpressure), `lifecycle_feed` (`LifecycleFeed`: the sessions
created, patched, archived and unarchived as this node's replicas apply
them) and `local` (`LocalReplicas`, the only view of
this node the router is handed). Every command becomes a message
with its own reply future, so no reply can reach another caller; local reads
are direct, non-yielding calls on the replica's state.

Must not: parse HTTP, know about auth, or decide session rules.
"""

import logging
import secrets

import gevent
from gevent.event import AsyncResult
from gevent.lock import BoundedSemaphore
from thespian.actors import ActorExitRequest, ActorSystem

from starcite.actors import messages as m
from starcite.actors.archiver import ArchiverActor, flush_cycle
from starcite.actors.observer import ObserverActor
from starcite.actors.group_actor import RaftGroupActor
from starcite.actors.raft_group import RaftGroup, RaftUnavailable
from starcite.adapters import ArchiveUnavailable, build_adapter
from starcite.adapters.chunks import InvalidCursor
from starcite.adapters.read_cache import ArchiveReadCache
from starcite.core.errors import StarciteError
from starcite.core.records import listed
from starcite.core.rules import RuleError, parse_result
from starcite.telemetry.connections import ConnectionCounts
from starcite.telemetry.metrics import Metrics
from starcite.node.backup import ArchivePauses, serve_sibling_backups
from starcite.node.deletions import EXPIRY_CHECK_INTERVAL_MS, SessionDeletions
from starcite.node.event_store_cap import EventStoreCap
from starcite.node.lifecycle_feed import LifecycleFeed, lifecycle_event
from starcite.node.lifecycle_relay import LifecycleRelay
from starcite.node.local_replicas import LocalReplicas
from starcite.node.long_poll import LongPolls
from starcite.node.reads import SessionReads
from starcite.node.tails import NodeTails
from starcite.node.command_stamps import now_iso, request_token
from starcite.node.tier_reads import ArchiveReadError
from starcite.node.views import NodeViews
from starcite.peers.link import PeerHub
from starcite.peers.raft_transport import RaftHub
from starcite.cluster.remote_tails import RemoteTails
from starcite.cluster.control_plane import ControlPlane
from starcite.cluster.replica_digests import DigestExchange
from starcite.cluster.routing import Router
from starcite.cluster.placement import group_for, replicas_for

log = logging.getLogger("starcite.node")

ARCHIVE_IO_THREADS = 4  # most thread-pool threads blocking archive I/O may hold at once
LIST_PAGE_READS = 20  # index pages a listing reads at most to fill one page of its archived filter


def _outcome(fn, args):
    try:
        return True, fn(*args)
    except Exception as exc:  # handed back to the caller's greenlet, which re-raises it
        return False, exc


class Node:
    def __init__(self, config):
        self.config = config
        self.name = config.node_name
        self.write_nodes = config.write_node_ids or [self.name]
        self.peer_hub = PeerHub(self.name, config.peers, config.cluster_secret) if not config.single_node else None
        self.raft_hub = RaftHub(self.peer_hub) if self.peer_hub is not None else None
        self.groups = {}         # group id -> this node's `RaftGroup` replica
        self.group_actors = {}   # group id -> its `RaftGroupActor` (the control group's too)
        self.views = NodeViews(self)
        self.metrics = Metrics(self.views.snapshot)
        self.local = LocalReplicas(self.groups, self.group_actors, self.ask, lambda: self.cap.check())
        self.router = Router(self.local, self.peer_hub, config.replace(write_node_ids=self.write_nodes),
                             self.metrics.forwarded)
        self.tails = NodeTails(self.groups, self.group_of, self.read_hot)
        self.remote_tails = RemoteTails(self, self.peer_hub, self.router) if self.peer_hub is not None else None
        self.tails.remote_tails = self.remote_tails
        self.digests = DigestExchange(self, self.peer_hub) if self.peer_hub is not None else None
        self.mode = "write_node" if self.name in self.write_nodes else "router_node"
        # The node's other worker processes (`starcite.config.worker_members`), none for one worker.
        self.host_name = config.host_of(self.name)  # the node's name, also when this is one of its workers
        self.siblings = [member for member in self.write_nodes
                         if member != self.name and config.host_of(member) == config.host_of(self.name)]
        self.draining = False
        self.stopping = False
        self.stopped = False
        self.inflight = 0
        self.long_polls = LongPolls()  # held `GET .../events?wait_ms=` requests
        self.lifecycle_feed = LifecycleFeed()  # sessions created/patched/(un)archived, as this node applies them
        self.lifecycle_events = LifecycleRelay(self.lifecycle_feed, self.peer_hub, self._leads)  # the cluster's, once
        self.reads = SessionReads(self.read_hot, self._read_cold_lines, self.long_polls,
                                  lambda session_id: self.group_of(session_id) in self.groups,
                                  lambda: self.stopping)
        self.gauge_sources = []  # callables returning {gauge: value}, merged into the metrics snapshot
        self.connections = ConnectionCounts()  # the API's open connections by kind (the worker and the tails count)
        self.unindexed = set()
        self.archive_pauses = ArchivePauses()  # backups hold archiving still while they copy
        self.archiving = False  # a flush cycle is running (set by the archiver's cycle)
        self.adapter = build_adapter(config)
        self.adapter.check()
        self.blocking_io = getattr(self.adapter, "blocking_io", False)
        self._io_slots = BoundedSemaphore(ARCHIVE_IO_THREADS)
        self.cold = ArchiveReadCache.from_config(config, self.adapter)
        self.deletions = SessionDeletions(self.groups, self.router.command, self.tails, self.long_polls, self.cold,
                                          self.reads, config)
        self.cap = EventStoreCap(self.replicas, self.cold, config.event_store_max_bytes, config.max_body_bytes,
                                 self.metrics.backpressure)
        self.asys = ActorSystem("simpleSystemBase")
        self.observer = self.asys.createActor(ObserverActor)
        self.tell(self.observer, m.ConfigureObserver(config.observer_lost_after_ms / 1000.0))
        for node in self.write_nodes:
            # Every write node starts out seen; a peer whose link does not come up turns
            # suspect when the hub reports it down (and at once for the ones that never dial).
            self.tell(self.observer, m.NodeSeen(node, node == self.name or self.peer_hub is None))
        # Journal fsyncs (one per group per tick) and local archive I/O run in the hub's
        # thread pool: size it so every group can sync at once.
        pool = gevent.get_hub().threadpool
        pool.maxsize = max(pool.maxsize, config.num_groups + 4)
        for group_id in range(config.num_groups):
            replicas = replicas_for(group_id, self.write_nodes, config.replication_factor, config.host_of)
            if self.name in replicas:
                self._start_group(group_id, replicas)
        if self.siblings:
            self.views.serve_siblings()
            serve_sibling_backups(self)
        if self.peer_hub is not None:
            self.peer_hub.link_listeners.append(lambda peer, up: self.tell(self.observer, m.NodeSeen(peer, up)))
            self.peer_hub.start()
            self.digests.start()
        self.control = ControlPlane(self)
        self.router.control = self.control
        self.local.control_group = self.control.group
        self.archiver = self.asys.createActor(ArchiverActor)
        self.tell(self.archiver, m.StartArchiver(self))
        self._timers = [
            gevent.spawn(self._every, config.archive_flush_interval_ms, self._archive_tick),
            gevent.spawn(self._every, config.tail_catchup_interval_ms, self.tails.catch_up_tick),
            gevent.spawn(self._every, config.read_cache_cleanup_interval_ms, self._cache_cleanup),
            gevent.spawn(self._every, EXPIRY_CHECK_INTERVAL_MS, self._expiry_tick),
        ]

    # -- assembly -------------------------------------------------------------

    def _start_group(self, group_id, replicas):
        address = self.asys.createActor(RaftGroupActor)
        run_callback = gevent.get_hub().loop.run_callback

        def on_committed(session_id, entries):
            # Runs inside the apply, before pysyncobj acknowledges the append: fan out to
            # tails only after the ack callbacks (FIFO on the hub). Safe for the tails: the
            # state already shows the new last_seq, so a tail probing before this
            # notification lands goes back to replay instead of skipping it.
            if session_id in self.groups[group_id].live_tails:
                run_callback(self.tell, address, m.Committed(session_id, entries))
            if session_id in self.long_polls:  # every replica applies: a follower wakes its own waiters
                run_callback(self.long_polls.wake, session_id)

        def on_trimmed(session_id, count):
            self.metrics.archive_trimmed.inc(count)

        def on_lifecycle(kind, record):
            # Inside the apply; not for entries the journal held at start (announced before a restart).
            group = self.groups.get(group_id)
            if group is not None and not group.replaying_journal():
                self.lifecycle_feed.publish(lifecycle_event(kind, record))

        def on_deleted(session_id):  # inside the apply, as on_committed: the effects run from the hub
            run_callback(self.deletions.forget_locally, session_id)

        peers = [p for p in replicas if p != self.name]
        group = RaftGroup(group_id, self.name, peers, self.config.raft_data_dir, self.config, on_committed,
                          on_trimmed, raft_hub=self.raft_hub, on_lifecycle=on_lifecycle, on_deleted=on_deleted)
        self.groups[group_id] = group
        self.group_actors[group_id] = address
        self.tell(address, m.StartGroup(group, group_id))

    def replica_ids(self) -> list:
        """The ids of this node's Raft groups (its session groups', and the control group's if it has it)."""
        return [*self.groups, *([self.control.group.group_id] if self.control.group is not None else [])]

    def replicas(self) -> tuple:
        """This node's Raft groups: its session groups' replicas and the control group's."""
        control = self.control.group
        return (*self.groups.values(), control) if control is not None else tuple(self.groups.values())

    def tell(self, address, message):
        self.asys.tell(address, message)

    def ask(self, address, message, timeout=None):
        self.tell(address, message)
        try:
            return message.reply.get(timeout=timeout)
        except gevent.Timeout:
            raise RaftUnavailable("raft_timeout", "Timed out waiting for the Raft commit") from None

    def group_of(self, session_id) -> int:
        return group_for(session_id, self.config.num_groups)

    def _read(self, session_id, kind, args, fresh):
        """A read from the local replica, else a remote one. ``fresh``: it reflects every write
        acknowledged before it began (`Router.read_barrier`). A stale read (the list, the archiver,
        the tails' catch-up) on a follower that does not know the session yet asks the leader; a
        replica still replaying its journal after a restart answers 503, never a 404 it cannot vouch for."""
        group_id = self.group_of(session_id)
        value = self.router.read(group_id, kind, args, fresh)
        group = self.groups.get(group_id)
        if value is None and not fresh and group is not None and not group.is_leader() and self.peer_hub is not None:
            value = self.router.command(group_id, kind, args)
        if value is None and group is not None and group.catching_up():
            # Just restarted, the replica has not applied its journal yet: "not found" would be a lie.
            raise RaftUnavailable("raft_unavailable", "This node's replica is still catching up; retry")
        return value

    @property
    def command_timeout(self):
        return self.config.raft_timeout_ms / 1000.0

    def run_io(self, fn, *args):
        """Run an archive call: in the hub's thread pool when the adapter blocks its thread (local disk),
        at most `ARCHIVE_IO_THREADS` at once so journal fsyncs always find a free thread; on the hub
        otherwise (network adapters yield cooperatively)."""
        if not self.blocking_io:
            return fn(*args)
        with self._io_slots:
            ok, value = gevent.get_hub().threadpool.apply(_outcome, (fn, args))
        if not ok:
            raise value  # re-raised here: gevent would print a traceback for it in the thread
        return value

    # -- sessions -------------------------------------------------------------

    def create_session(self, spec: dict, creator_principal=None) -> dict:
        session_id = spec.get("id") or f"ses_{secrets.token_urlsafe(12)}"
        expires_at, ttl_seconds = spec.get("expires_at"), spec.get("ttl_seconds")
        if expires_at is None and ttl_seconds is None:
            ttl_seconds = self.config.session_ttl_s  # STARCITE_SESSION_TTL: None, no expiry
        args = (session_id, spec.get("title"), spec.get("metadata") or {}, now_iso(), creator_principal,
                request_token())
        if expires_at is not None or ttl_seconds is not None:  # left out otherwise: see `messages.CreateSession`
            args += (expires_at, ttl_seconds)
        record = parse_result(self.router.command(self.group_of(session_id), "create", args))[1]
        self._index_session(record)
        return record

    def patch_session(self, session_id: str, patch: dict) -> dict:
        """A validated patch (`rules.validate_patch`) through the group's leader (its request token: the
        router's retry applies it once); the new record."""
        args = (session_id, patch, now_iso(), request_token())
        record = parse_result(self.router.command(self.group_of(session_id), "patch", args))[1]
        self._index_session(record)  # the index's metadata filters see the patched metadata
        return record

    def set_archived(self, session_id: str, archived: bool) -> dict:
        """Archive (``archived`` True) or unarchive a session; the record after it."""
        args = (session_id, archived, now_iso())
        record = parse_result(self.router.command(self.group_of(session_id), "archive", args))[1]
        self._index_session(record)
        return record

    def _index_session(self, record) -> bool:
        """Upsert the session record in the archive's index; on an outage (or while a backup holds the
        archive still) remember it for the next tick."""
        if self.archive_pauses.active():
            self.unindexed.add(record["id"])
            return False
        try:
            self.run_io(self.adapter.upsert_session, record)
            self.unindexed.discard(record["id"])
            return True
        except ArchiveUnavailable as exc:
            log.warning("session index upsert deferred for %s: %s", record["id"], exc)
            self.unindexed.add(record["id"])
            return False

    def get_session(self, session_id: str, fresh=True):
        """The session's record, or None. ``fresh`` (the API's reads): it reflects every write
        acknowledged before this call; False: what the replica has applied (may lag)."""
        return self._read(session_id, "get_session", (session_id,), fresh)

    def require_session(self, session_id: str, fresh=True) -> dict:
        record = self.get_session(session_id, fresh)
        if record is None:
            raise RuleError(404, "session_not_found", f"Session {session_id} not found")
        return record

    def delete_session(self, session_id: str) -> dict:
        """Delete the session and all its events (a Raft command, ordered with the appends): ``{id,
        deleted_at}``, or 404. The archive copy goes later (`starcite.actors.archiver.purge_deleted`)."""
        args = (session_id, now_iso(), request_token())
        return parse_result(self.router.command(self.group_of(session_id), "delete", args))[1]

    def list_sessions(self, limit, cursor=None, tenant_id=None, metadata_filters=None, archived="false"):
        """A page of the session index as this node's replicas know each record now, ``archived`` filtered
        (`records.listed`); the index is read for what the page lacks until it is full, the index ends, or
        `LIST_PAGE_READS` reads (then a page holds fewer than ``limit``, and the cursor goes on). Every
        session lives in its group's memory: an index record without one is a deleted session whose
        archive copy is not gone yet, and is left out."""
        page = []
        for _read in range(LIST_PAGE_READS):
            try:
                records, cursor = self.run_io(self.adapter.list_sessions, limit - len(page), cursor, tenant_id,
                                              metadata_filters or {})
            except ArchiveUnavailable as exc:
                raise ArchiveReadError(f"Session index unavailable: {exc}") from None
            except InvalidCursor:
                raise StarciteError(400, "invalid_cursor", "cursor is not one this service returned") from None
            live = (self.get_session(record["id"], fresh=False) for record in records)
            page.extend(record for record in live if record is not None and listed(record, archived))
            if len(page) >= limit or cursor is None:
                break
        return page, cursor

    # -- appends --------------------------------------------------------------

    def append(self, session_id: str, append: dict, nbytes: int) -> dict:
        # Backpressure is checked once, where the hot store is: on the group's leader (`LocalReplicas.command`).
        # The request token makes the router's retries across a leader change exactly-once (`rules.same_request`).
        args = (session_id, dict(append, request=request_token()), now_iso(), nbytes)
        _ok, seq, last_seq, deduped = parse_result(self.router.command(self.group_of(session_id), "append", args))
        if not deduped:
            self.metrics.append_total.inc()
            self.metrics.payload_bytes.inc(nbytes)
        return {"seq": seq, "last_seq": last_seq, "deduped": deduped}

    def ack_archived(self, session_id: str, upto_seq: int):
        return parse_result(self.router.command(self.group_of(session_id), "ack", (session_id, upto_seq)))

    # -- reads ----------------------------------------------------------------

    def _leads(self, session_id) -> bool:
        """Whether this member's replica leads the session's group (never blocks)."""
        group = self.groups.get(self.group_of(session_id))
        return group is not None and group.is_leader()

    def read_hot(self, session_id, after_seq, limit, fresh=False):
        """Hot events: ``fresh``, every one acknowledged before the call; otherwise as this node's
        replica has applied them (a remote replica's reads are always fresh)."""
        return self._read(session_id, "read_hot", (session_id, after_seq, limit), fresh)

    def _read_cold_lines(self, session_id, from_seq, to_seq):
        return self.run_io(self.cold.read_lines, session_id, from_seq, to_seq)

    def pending_archive(self, group_id):
        return self.ask(self.group_actors[group_id], m.PendingArchive(AsyncResult()))

    def local_groups(self):
        return sorted(self.groups)


    # -- timers ---------------------------------------------------------------

    def _every(self, interval_ms, fn):
        while not self.stopping:
            gevent.sleep(interval_ms / 1000.0)
            try:
                fn()
            except Exception:
                log.exception("timer %s failed", fn.__name__)

    def _archive_tick(self):
        if self.archive_pauses.active():
            return  # nothing is written to the archive while a backup holds it
        self.tell(self.archiver, m.ArchiveTick())
        for session_id in list(self.unindexed):
            record = self.get_session(session_id, fresh=False)
            if record is None:
                self.unindexed.discard(session_id)
            elif not self._index_session(record):
                break  # the archive is still down: the rest waits for the next tick

    def _expiry_tick(self):
        self.deletions.expiry_tick(now_iso())

    def _cache_cleanup(self):
        self.cold.cleanup()

    # -- shutdown -------------------------------------------------------------

    def begin_shutdown(self):
        """First step of a graceful stop: not ready any more, tails closed with a normal close."""
        self.stopping = True
        self.long_polls.wake_all()  # held long-polls answer their (empty) page at once
        self.tails.close_all(1000, "server_shutdown")

    def shutdown(self, flush_timeout=5.0):
        """Last step, once in-flight requests are done: flush what can be flushed, sync journals."""
        if self.stopped:
            return
        self.stopped = True
        self.begin_shutdown()
        with gevent.Timeout(flush_timeout, False):
            if not self.archive_pauses.active():
                flush_cycle(self)
        gevent.killall(self._timers, block=False)
        for group in self.groups.values():
            group.stop()
        self.control.stop()
        if self.peer_hub is not None:
            self.digests.stop()
            self.peer_hub.stop()
        for address in list(self.group_actors.values()) + [self.archiver, self.observer]:
            self.tell(address, ActorExitRequest())
        try:
            self.adapter.close()
        except Exception:
            log.exception("closing archive adapter")
