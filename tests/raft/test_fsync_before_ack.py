"""Fsync before every acknowledgement, on the production path: three real `RaftGroup`s in one process.

Owns: proving that an entry is durable (fdatasync / fsync / syncfs, as
`starcite.actors.raft_journal` issues them) before any reply that acknowledges
it leaves: a follower's success reply (which counts toward the leader's
quorum), and the leader's answer to the client (the reply future of a create
or an append), by which time a majority must hold it durably. The groups are
the real `RaftGroup` on the real `DurableFileJournal` and `JournalSyncer`; only
the peer links are in memory (`LoopbackPeers`, pickled as the real links do),
and the sync calls are recorded where they reach the OS.

A sync covers the journal writes made before the call: each `add` takes a
number from one counter after its bytes are in the mmap, and each sync call
credits its file (or, for syncfs, every journal) with the counter read before
the call.

Must not: start node processes, open sockets, or decide anything by timing
(every wait is bounded; the checks read the order of events, not clocks).
"""

import contextlib
import os
import pickle
import signal
import threading
import time
import uuid
from unittest import mock

import gevent
import gevent.event
import pytest

from starcite.actors import raft_journal
from starcite.actors.group_actor import _reply_from_raft
from starcite.actors.raft_errors import RaftUnavailable
from starcite.actors.raft_group import RaftGroup
from starcite.actors.raft_journal import DurableFileJournal
from starcite.config.settings import load_config
from starcite.peers.raft_transport import RaftHub

NODES = ("n1", "n2", "n3")
GROUP = 0
WRITERS, APPENDS_EACH = 4, 12
WAIT_S = 20.0
STARVED_AFTER_S = 60.0   # the whole run; a normal one takes about a second


class SyncLedger:
    """Which journal writes each sync call made durable, and every acknowledgement checked against it."""

    def __init__(self):
        self.journals = []        # every group's journal, registered once the group exists
        self.writes = 0           # bumped after each journal write (the groups' greenlets)
        self.written = {}         # (id(journal), idx) -> (term, write number) of the last write at idx
        self.durable = {}         # id(journal) -> highest write number a sync of its file covered
        self.durable_all = 0      # highest write number a syncfs covered (one filesystem)
        self.sync_calls = []      # ("fdatasync" | "fsync" | "syncfs", fd)
        self.lock = threading.Lock()   # sync calls run in the hub's thread pool
        self.violations = []      # one line per acknowledgement that came before its sync
        self.follower_acks = 0    # success replies checked
        self.client_acks = 0      # answers to the client checked
        self.early_follower_acks = self.early_client_acks = 0

    # -- recording --------------------------------------------------------------------

    def on_write(self, journal, idx, term):
        self.writes += 1
        self.written[(id(journal), idx)] = (term, self.writes)

    def synced_file(self, kind, fd, covered):
        with self.lock:
            self.sync_calls.append((kind, fd))
            for journal in self.journals:
                if journal._file().fileno() == fd:
                    self.durable[id(journal)] = max(self.durable.get(id(journal), 0), covered)

    def synced_filesystem(self, fd, covered):
        with self.lock:
            self.sync_calls.append(("syncfs", fd))
            self.durable_all = max(self.durable_all, covered)

    def recording(self, real, kind):
        def sync(fd):
            covered = self.writes   # read before the call: these writes precede it
            result = real(fd)
            if kind == "syncfs":
                if result == 0:
                    self.synced_filesystem(fd, covered)
            else:
                self.synced_file(kind, fd, covered)
            return result
        return sync

    # -- checking -----------------------------------------------------------------------

    def is_durable(self, journal, idx, term) -> bool:
        written = self.written.get((id(journal), idx))
        if written is None or written[0] != term:
            return False
        return written[1] <= max(self.durable.get(id(journal), 0), self.durable_all)

    def check_follower_ack(self, group, next_idx):
        """`group` is about to tell its leader it holds every entry below ``next_idx``."""
        self.follower_acks += 1
        for _command, idx, term in group.journal[:]:
            if idx < next_idx and not self.is_durable(group.journal, idx, term):
                self.early_follower_acks += 1
                self.violations.append(f"{group.self_name} acknowledged entry {idx} (term {term}) "
                                       f"before syncing it")
                return

    def check_client_ack(self, leader, groups, marker):
        """``leader`` is about to answer the client for the entry carrying ``marker``."""
        self.client_acks += 1
        found = [(idx, term) for command, idx, term in leader.journal[:] if marker in command]
        if not found:
            self.violations.append(f"no entry on {leader.self_name} carries {marker!r}")
            return
        idx, term = found[-1]
        holders = [g.self_name for g in groups if self.is_durable(g.journal, idx, term)]
        if leader.self_name not in holders or len(holders) <= len(groups) // 2:
            self.early_client_acks += 1
            self.violations.append(f"leader {leader.self_name} answered the client for entry {idx} "
                                   f"while it was durable only on {holders}")

    def report(self) -> str:
        return (f"{self.early_follower_acks} of {self.follower_acks} follower acks and "
                f"{self.early_client_acks} of {self.client_acks} client answers came before the sync; "
                f"first: {self.violations[:3]}")


@pytest.fixture(params=["syncfs", "fdatasync"])
def ledger(request):
    """Records every sync call where it reaches the OS and every journal write, for one test.

    Here the three journals mostly share each flush, so the syncer issues syncfs; the
    ``fdatasync`` run takes syncfs away, as where libc lacks it (one fdatasync per file).
    A sync by any other call (msync, say) is not credited: the test would fail, not pass.
    """
    ledger = SyncLedger()
    real_add = DurableFileJournal.add

    def add(journal, command, idx, term):
        real_add(journal, command, idx, term)
        ledger.on_write(journal, idx, term)

    syncfs = raft_journal._SYNCFS if request.param == "syncfs" else None
    with mock.patch.object(DurableFileJournal, "add", add), \
            mock.patch.object(os, "fdatasync", ledger.recording(os.fdatasync, "fdatasync")), \
            mock.patch.object(os, "fsync", ledger.recording(os.fsync, "fsync")), \
            mock.patch.object(raft_journal, "_SYNCFS", syncfs and ledger.recording(syncfs, "syncfs")):
        yield ledger


class LoopbackNetwork:
    """The peer hubs of the three nodes, in memory; messages cross pickled, as on the real links."""

    def __init__(self, ledger):
        self.ledger = ledger
        self.hubs = {}
        self.groups = {}

    def send(self, src, dst, frame):
        message = frame[2]
        if message.get("type") == "next_node_idx" and message.get("success"):
            self.ledger.check_follower_ack(self.groups[src], message["next_node_idx"])
        hub = self.hubs.get(dst)
        if hub is None:
            return False
        hub.handlers["raft"](src, pickle.loads(pickle.dumps(frame)))
        return True


class LoopbackPeers:
    """What `RaftHub` needs of the node's `PeerHub`: handlers, link listeners, connected, send."""

    def __init__(self, name, network):
        self.name, self.network = name, network
        self.handlers = {}
        self.link_listeners = []
        network.hubs[name] = self

    def connected(self, peer) -> bool:
        return peer in self.network.hubs

    def send(self, peer, message) -> bool:
        return self.network.send(self.name, peer, message)


class AckedReply(gevent.event.AsyncResult):
    """The client's reply future: its success is checked against the ledger when it is set."""

    def __init__(self, ledger, groups, leader, marker):
        super().__init__()
        self.check = lambda: ledger.check_client_ack(leader, groups, marker)

    def set(self, value=None):
        if value and value[0] == "ok":
            self.check()
        super().set(value)


def start_groups(tmp_path, ledger):
    network = LoopbackNetwork(ledger)
    config = load_config(environ={}).replace(raft_fsync=True, num_groups=1)
    hubs = {name: RaftHub(LoopbackPeers(name, network)) for name in NODES}
    groups = []
    for name in NODES:
        group = RaftGroup(GROUP, name, [p for p in NODES if p != name], str(tmp_path / name), config,
                          on_committed=lambda *_: None, on_trimmed=lambda *_: None, raft_hub=hubs[name])
        network.groups[name] = group
        ledger.journals.append(group.journal)
        groups.append(group)
    return groups


def wait_for_leader(groups):
    with gevent.Timeout(WAIT_S, AssertionError("no leader elected")):
        while True:
            leaders = [g for g in groups if g.is_leader() and g.ready()]
            if leaders:
                return leaders[0]
            gevent.sleep(0.05)


def acknowledged(ledger, groups, submit, marker=None):
    """``submit(leader, reply, token)`` through the current leader until one answers; a leader change
    in between (possible on a loaded machine) is retried, as the node does. The entry checked for an
    answer is the one carrying ``marker``, else the attempt's own ``token``."""
    deadline = time.monotonic() + WAIT_S
    while True:
        leader = wait_for_leader(groups)
        token = uuid.uuid4().hex
        reply = AckedReply(ledger, groups, leader, (marker or token).encode())
        submit(leader, reply, token)
        try:
            return reply.get(timeout=WAIT_S)
        except RaftUnavailable:   # NotLeader too
            if time.monotonic() > deadline:
                raise


def writer(ledger, groups, session_id, producer):
    for producer_seq in range(1, APPENDS_EACH + 1):
        append = {"type": "note", "payload": {"n": producer_seq}, "producer_id": producer,
                  "producer_seq": producer_seq}

        def submit(leader, reply, token):
            # The request token is not part of the content, so a retry is a dedupe of the same append.
            leader.queue_append((session_id, dict(append, request=token), "2026-12-07T00:00:00Z", 64), reply)
        result = acknowledged(ledger, groups, submit)
        assert result[0] == "ok", result


def run_workload(ledger, groups):
    session_id = f"ses_{uuid.uuid4().hex[:12]}"

    def create(leader, reply, _token):
        leader.machine.create_session(session_id, "fsync", {}, "2026-12-07T00:00:00Z", None, session_id,
                                      callback=_reply_from_raft(reply))
    assert acknowledged(ledger, groups, create, marker=session_id)[0] == "ok"
    writers = [gevent.spawn(writer, ledger, groups, session_id, f"w{n}") for n in range(WRITERS)]
    gevent.joinall(writers, timeout=WAIT_S * 2, raise_error=True)
    assert all(w.dead for w in writers), "the writers did not finish in time"


class TickLoopStarved(BaseException):
    """Raised into a greenlet that kept the hub from running (a tick loop that never yields)."""


@contextlib.contextmanager
def starvation_guard(seconds=STARVED_AFTER_S):
    """Bounds the run even if a greenlet never yields, which no gevent timeout can: past
    ``seconds``, a timer signal raises `TickLoopStarved` in whatever runs, every half second
    (it ends one spinning tick loop; the bounded waits then fail the test)."""
    def starved(_signum, _frame):
        raise TickLoopStarved(f"the run passed {seconds:.0f} s: a tick loop never yielded?")
    previous = signal.signal(signal.SIGALRM, starved)
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.5)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def stop_groups(groups):
    for group in groups:
        group.stop()


def test_every_acknowledgement_follows_the_sync_of_its_entry(tmp_path, ledger):
    with starvation_guard():
        groups = start_groups(tmp_path, ledger)
        try:
            run_workload(ledger, groups)
        finally:
            stop_groups(groups)
    # Not trivially true: the workload was acknowledged, by followers and to the client.
    assert ledger.client_acks == 1 + WRITERS * APPENDS_EACH
    assert ledger.follower_acks > 0 and ledger.sync_calls
    assert not ledger.violations, ledger.report()
