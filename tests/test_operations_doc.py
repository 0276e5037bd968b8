"""docs/operations.md runs as written: every command block, in order, against a local cluster.

Owns: reading the page's fenced blocks and running them top to bottom. A
`bash` block runs as one `bash -euo pipefail` script from the repository
root, with only the local cluster's state directory (`ops/.cluster`) and
port ranges (4000.., 4400..) moved to private ones and `.venv/bin/` pointed
at this interpreter's; it must exit 0. A `toml` block (a node's config file)
must load, as `starcite serve --config` would, as a cluster member whose API
other hosts can reach. Around the backup drill, every session and its last
seq from before the backups must be there after the restore. Must not: skip
a block, run one without a time bound, reach beyond loopback, or leave a
node running.
"""

import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest
import requests

from starcite.cli import api_reach_warning
from starcite.config.settings import load_config
from tests.server import free_port_range, group_alive

ROOT = pathlib.Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "operations.md"
BIN = os.path.dirname(sys.executable) + os.sep
SIZE = 3
BLOCK_TIMEOUT_S = 300


def blocks() -> list:
    """``[(language, body)]`` of the page's command blocks (`bash`) and config files (`toml`), in order."""
    found = re.findall(r"^```(\w*)\n(.*?)^```", OPERATIONS.read_text(), re.M | re.S)
    return [(lang, body) for lang, body in found if lang in ("bash", "toml")]


def check_config_file(body: str, tmp_path):
    """The example config loads as every node's (each with its own name) and faces other hosts."""
    for name in ("n1", "n2", "n3"):
        path = tmp_path / f"{name}.toml"
        path.write_text(body.replace('name = "n1"', f'name = "{name}"'))
        config = load_config(str(path), {"STARCITE_CLUSTER_SECRET": "s" * 32})
        assert config.node_name == name and sorted(config.peers) == ["n1", "n2", "n3"]
        assert config.host == "0.0.0.0" and api_reach_warning(config) is None


class LocalCluster:
    """Where the page's `ops/.cluster` and ports 4000.. and 4400.. are, for this test."""

    def __init__(self, tmp_path):
        self.state = tmp_path / "cluster"
        self.api_base = free_port_range(SIZE)
        self.peer_base = free_port_range(SIZE, [self.api_base])
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith(("STARCITE_", "NODE_NAME", "CLUSTER_NODES", "PORT"))}
        self.env.update(STARCITE_CLUSTER_STATE=str(self.state), STARCITE_API_BASE_PORT=str(self.api_base),
                        STARCITE_PEER_BASE_PORT=str(self.peer_base), READY_TIMEOUT_S="90")
        self.seen = set()

    def script(self, body: str) -> str:
        body = body.replace("ops/.cluster", str(self.state)).replace(".venv/bin/", BIN)
        body = re.sub(r"127\.0\.0\.1:40(\d\d)", lambda m: f"127.0.0.1:{self.api_base + int(m.group(1))}", body)
        return body

    def run(self, body: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-euo", "pipefail", "-c", self.script(body)], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)

    def sessions(self) -> dict:
        """``{session id: last_seq}`` as node n1 lists them (every page)."""
        found, cursor = {}, None
        for _ in range(1000):
            query = f"?limit=100&cursor={cursor}" if cursor else "?limit=100"
            page = requests.get(f"http://127.0.0.1:{self.api_base}/v1/sessions{query}", timeout=10).json()
            found.update({s["id"]: s["last_seq"] for s in page["sessions"]})
            cursor = page["next_cursor"]
            if not cursor:
                return found
        raise AssertionError("too many pages")

    def note_nodes(self):
        """Remember every node process group recorded so far (a later start rewrites the pid files)."""
        for pidfile in self.state.parent.glob("cluster*/n*.pid"):
            try:
                self.seen.add(int(pidfile.read_text()))
            except (OSError, ValueError):
                pass

    def stop_everything(self):
        """The page's own stop, then SIGKILL to any node process group left, wherever the drill moved it."""
        subprocess.run([str(ROOT / "ops" / "stop-cluster.sh")], env=self.env, capture_output=True, timeout=120)
        self.note_nodes()
        for pgid in self.seen:
            if group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)


def test_every_command_block_of_operations_md_runs_in_order(tmp_path):
    cluster = LocalCluster(tmp_path)
    ran, before_backup = [], None
    try:
        for number, (lang, body) in enumerate(blocks(), 1):
            if lang == "toml":
                check_config_file(body, tmp_path)
                continue
            if "starcite backup" in body:
                before_backup = cluster.sessions()
                assert before_backup, "the drills before the backup created sessions"
            done = cluster.run(body)
            cluster.note_nodes()
            ran.append(body.splitlines()[0])
            assert done.returncode == 0, (f"block {number} of docs/operations.md failed ({done.returncode}):\n"
                                          f"{body}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n"
                                          f"{done.stderr[-3000:]}")
            if "starcite restore" in body:
                after = cluster.sessions()
                lost = {sid: seq for sid, seq in before_backup.items() if after.get(sid, -1) < seq}
                assert not lost, f"sessions lost or shortened by the backup drill: {lost}"
    finally:
        cluster.stop_everything()
    assert any("ops/start-cluster.sh 3" in first for first in ran) and len(ran) >= 8, ran
    assert before_backup is not None, "the page has no backup drill"


@pytest.mark.parametrize("line, expected", [
    ("curl -fsS http://127.0.0.1:4000/health/ready", "curl -fsS http://127.0.0.1:{api}/health/ready"),
    ("kill -KILL -- -$(cat ops/.cluster/n3.pid)", "kill -KILL -- -$(cat {state}/n3.pid)"),
    (".venv/bin/starcite ops status", "{bin}starcite ops status"),
])
def test_the_blocks_are_moved_to_the_private_cluster_only_where_they_name_it(tmp_path, line, expected):
    cluster = LocalCluster(tmp_path)
    assert cluster.script(line) == expected.format(api=cluster.api_base, state=cluster.state, bin=BIN)
