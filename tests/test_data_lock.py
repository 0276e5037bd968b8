"""One node per data directory: a second `starcite serve` on a used directory exits at once,
names the directory and the holder's pid, and changes nothing there (real processes)."""

import os
import signal
import subprocess

from tests.server import STARCITE, free_port


def _second_node(env, data_dir, **extra):
    """Run a second node on ``data_dir`` (another port); ``(exit code, stderr)``."""
    run_env = {**os.environ, **env, "PORT": str(free_port()), "STARCITE_DATA_DIR": str(data_dir), **extra}
    done = subprocess.run([STARCITE, "serve"], env=run_env, capture_output=True, text=True, timeout=30)
    return done.returncode, done.stderr


def _tree(directory):
    """Every path under ``directory`` with its inode, size and mtime (the test's own logs left out)."""
    found = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(root, name)
            if name.startswith("server-") and name.endswith(".log"):
                continue
            st = os.lstat(path)
            found[os.path.relpath(path, directory)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return found


def test_a_second_node_on_a_used_data_dir_is_refused_and_changes_nothing(make_server):
    first = make_server()
    first.create("locked")
    assert first.append("locked", 1).status_code == 201
    os.killpg(first.proc.pid, signal.SIGSTOP)  # the first node writes nothing while we look
    try:
        before = _tree(first.data_dir)
        code, stderr = _second_node(first.env, first.data_dir)
        after = _tree(first.data_dir)
    finally:
        os.killpg(first.proc.pid, signal.SIGCONT)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert os.path.abspath(first.data_dir) in lines[0] and f"pid {first.proc.pid}" in lines[0], lines[0]
    assert after == before  # not the journals, not the layout record, not ops.sock
    assert first.ops_status()["ready"]  # the first node's ops socket still answers
    assert first.append("locked", 2).status_code == 201


def test_the_lock_goes_with_the_node_even_on_sigkill(make_server, tmp_path):
    first = make_server(data_dir=tmp_path / "node")
    first.create("after-kill")
    assert first.append("after-kill", 1).status_code == 201
    first.kill()
    second = make_server(data_dir=tmp_path / "node")  # no stale lock to clean
    assert second.request("GET", "/v1/sessions/after-kill").json()["last_seq"] == 1


def test_a_shared_raft_dir_or_ops_socket_is_refused_too(make_server, tmp_path):
    raft_dir, socket_path = tmp_path / "raft", str(tmp_path / "ops" / "node.sock")
    first = make_server(env={"STARCITE_RAFT_DATA_DIR": str(raft_dir), "STARCITE_OPS_SOCKET": socket_path},
                        data_dir=tmp_path / "a")
    code, stderr = _second_node(first.env, tmp_path / "b")  # another data dir, the same Raft dir
    assert code == 2 and str(raft_dir) in stderr and f"pid {first.proc.pid}" in stderr, stderr
    code, stderr = _second_node(first.env, tmp_path / "c", STARCITE_RAFT_DATA_DIR=str(tmp_path / "c-raft"))
    assert code == 2 and socket_path in stderr, stderr
    assert first.ops_status()["ready"]
