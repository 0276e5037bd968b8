"""The partition drill, run inside a network namespace of its own (`unshare -n`): python -m this module.

Brings `lo` up, starts 3 nodes, and with iptables DROP rules on one node's
peer port cuts it off from the other two while clients append through every
node. Checks: the cut-off node refuses appends (503) within the timeout, the
majority keeps acknowledging appends, and after the rules are removed every
replica converges on the same history (the history checker). Prints one
line per step and exits non-zero on the first failure. Must not: run outside
a namespace it owns (it changes the firewall).
"""

import subprocess
import sys
import tempfile
import time

from tests.cluster_helpers import Cluster
from tests.cluster_tests.history import AppendClients, check_history

RULES = ("INPUT", "OUTPUT")


def iptables(action, port):
    for chain in RULES:
        for direction in ("--dport", "--sport"):
            subprocess.run(["iptables", action, chain, "-p", "tcp", direction, str(port), "-j", "DROP"], check=True)


def main():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    root = tempfile.mkdtemp(prefix="starcite-partition-")
    cluster = Cluster(root, 3, env={"STARCITE_NUM_GROUPS": "4", "STARCITE_RAFT_TIMEOUT_MS": "3000"})
    cluster.start(60)
    print("cluster ready", flush=True)
    minority = cluster["n3"]
    peer_port = int(minority.env["CLUSTER_NODES"].split(",")[2].rsplit(":", 1)[1])
    sessions = []
    for i in range(200):
        sid = f"part-{i}"
        if cluster.group_of(sid) not in {cluster.group_of(s) for s in sessions}:
            sessions.append(sid)
            cluster["n1"].create(sid)
        if len(sessions) == 4:
            break
    clients = AppendClients(cluster, sessions, entry_nodes=["n1", "n2"]).start()
    try:
        time.sleep(1.0)
        iptables("-A", peer_port)
        print("n3 cut off", flush=True)
        time.sleep(4.0)  # links time out (keep-alives), n3's leaderships fall back, the majority re-elects
        before = clients.acked_count()
        refused = 0
        for i, sid in enumerate(sessions):
            started = time.monotonic()
            response = minority.request("POST", f"/v1/sessions/{sid}/append", {
                "type": "m", "payload": {}, "producer_id": f"minority-{i}", "producer_seq": 1}, timeout=15)
            took = time.monotonic() - started
            assert response.status_code == 503, (response.status_code, response.text)
            assert took < 5.0, took
            refused += 1
        print(f"minority refused {refused} appends, each within the timeout", flush=True)
        deadline = time.monotonic() + 20
        while clients.acked_count() < before + 50:
            assert time.monotonic() < deadline, f"majority stalled at {clients.acked_count()} acks"
            assert not clients.errors, clients.errors[:3]
            time.sleep(0.1)
        print(f"majority kept serving: {clients.acked_count() - before} acks during the partition", flush=True)
        iptables("-D", peer_port)
        print("healed", flush=True)
        time.sleep(3.0)
    finally:
        clients.stop()
    try:
        checked = check_history(cluster, clients, sessions)
        print(f"converged: {checked} events identical on every node, {len(clients.acks)} acks all present", flush=True)
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
