"""ops/rolling-restart.sh on a 3-node cluster under continuous appends and tails.

Zero failed acknowledged appends (clients retry the same producer_seq on another node), no tail gap
or repeat (a follower tail reconnects from its last seq, as the SDK would), and the longest pause in
acknowledgements during the roll is reported.
"""

import os
import signal
import time

from tests.cluster_tests.history import AppendClients, check_history
from tests.following_tail import FollowingTail
from tests.server import StarciteServer, free_port_range, group_alive
from tests.test_ops_scripts import _script

SIZE = 3


class ScriptCluster:
    """The nodes ops/start-cluster.sh started, seen through the test helpers' server objects."""

    def __init__(self, state, api_base):
        self.names = [f"n{i}" for i in range(1, SIZE + 1)]
        self.nodes = {}
        for i, name in enumerate(self.names):
            node = StarciteServer(os.path.join(state, name), env={"NODE_NAME": name})
            node.port = api_base + i
            node.base, node.ws_base = f"http://127.0.0.1:{node.port}", f"ws://127.0.0.1:{node.port}"
            self.nodes[name] = node

    def __getitem__(self, name):
        return self.nodes[name]

    def running(self):
        return list(self.nodes.values())


def test_rolling_restart_under_load_loses_nothing(tmp_path):
    api_base = free_port_range(SIZE)
    state = str(tmp_path / "cluster")
    env = {**os.environ, "STARCITE_CLUSTER_STATE": state, "STARCITE_API_BASE_PORT": str(api_base),
           "STARCITE_PEER_BASE_PORT": str(free_port_range(SIZE, [api_base])), "READY_TIMEOUT_S": "90"}
    pgids = []
    try:
        started = _script("start-cluster.sh", env, 150, str(SIZE))
        assert started.returncode == 0, started.stdout + started.stderr
        cluster = ScriptCluster(state, api_base)
        sessions = ["roll-a", "roll-b", "roll-c"]
        for sid in sessions:
            cluster["n1"].create(sid)
        clients = AppendClients(cluster, sessions).start()
        follower = FollowingTail([cluster[name] for name in cluster.names[::-1]], sessions[0])
        follower.start()
        time.sleep(2)
        rolled = _script("rolling-restart.sh", env, 400)
        print(rolled.stdout)
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        assert "rolled 3 node(s)" in rolled.stdout
        time.sleep(2)
        clients.stop()
        checked = check_history(cluster, clients, sessions)
        deadline = time.monotonic() + 30
        final = cluster["n1"].request("GET", f"/v1/sessions/{sessions[0]}").json()["last_seq"]
        while follower.last < final and time.monotonic() < deadline:
            time.sleep(0.1)
        follower.stop(10)
        assert not follower.errors, follower.errors[:5]
        assert follower.last == final
        print(f"rolling restart: {len(clients.acks)} acks, {clients.retries} retries, {checked} events checked, "
              f"longest pause in acks {clients.longest_pause():.2f} s, tail reconnects {follower.reconnects}")
    finally:
        pgids = [int(open(os.path.join(state, f"n{i}.pid")).read()) for i in range(1, SIZE + 1)
                 if os.path.exists(os.path.join(state, f"n{i}.pid"))]
        _script("stop-cluster.sh", env, 90)
        for pgid in pgids:
            if group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
