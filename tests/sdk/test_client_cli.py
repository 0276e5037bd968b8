"""`starcite-cli` (the client distribution's command) against a live node: output and exit codes.

Owns: each command (sessions create|get|ls, append, tail with and without
--follow, over --transport websocket|sse) run as a process, its JSON-lines output when piped and its
readable line on a terminal (a pty), --url/--token and STARCITE_URL/STARCITE_TOKEN, and
the exit codes of `starcite_client.cli.EXIT_CODES`. Must not: use anything
but loopback or leave a process running.
"""

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest

import starcite_client as sc
from starcite_client.cli import exit_code_for
from tests.auth.conftest import JwksServer, claims, jwt_env, make_rsa_key

CLI = os.path.join(os.path.dirname(sys.executable), "starcite-cli")


def cli(server, *args, env=None):
    result = subprocess.run([CLI, "--url", server.base, *args], capture_output=True, text=True, timeout=30,
                            env={**os.environ, **(env or {})})
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def test_sessions_create_get_ls(shared_server, sid):
    code, out, _ = cli(shared_server, "sessions", "create", "--id", sid, "--title", "T", "--metadata",
                       json.dumps({"cli": sid}))
    assert code == 0 and out[0]["id"] == sid and out[0]["title"] == "T"
    code, _, err = cli(shared_server, "sessions", "create", "--id", sid)
    assert code == 5 and "session_exists" in err
    code, out, _ = cli(shared_server, "sessions", "get", sid)
    assert code == 0 and out[0]["metadata"] == {"cli": sid}
    assert cli(shared_server, "sessions", "get", sid + "-missing")[0] == 3
    for n in range(2):
        cli(shared_server, "sessions", "create", "--id", f"{sid}-{n}", "--metadata", json.dumps({"cli": sid}))
    code, out, _ = cli(shared_server, "sessions", "ls", "-m", f"cli={sid}", "--page-size", "1")
    assert code == 0 and sorted(r["id"] for r in out) == sorted([sid, f"{sid}-0", f"{sid}-1"])


def test_append_and_tail(shared_server, sid):
    shared_server.create(sid)
    code, out, _ = cli(shared_server, "append", sid, "--type", "note", "--payload", '{"a":1}', "--producer", "P")
    assert code == 0 and out == [{"seq": 1, "last_seq": 1, "deduped": False, "producer_id": "P", "producer_seq": 1}]
    code, out, _ = cli(shared_server, "append", sid, "--type", "note", "--payload", '{"a":2}', "--producer", "P",
                       "--actor", "agent:x")
    assert code == 0 and (out[0]["seq"], out[0]["producer_seq"]) == (2, 2)  # a named producer resumes
    code, _, err = cli(shared_server, "append", sid, "--type", "n", "--payload", "{}", "--producer", "P",
                       "--producer-seq", "9")
    assert code == 5 and "producer_seq_conflict" in err
    assert cli(shared_server, "append", sid, "--type", "n", "--payload", "{bad")[0] == 2
    assert cli(shared_server, "append", sid, "--type", "n", "--payload", "[1]")[0] == 2
    assert cli(shared_server, "append", sid, "--type", "", "--payload", "{}")[0] == 6
    assert cli(shared_server, "append", sid + "-missing", "--type", "n", "--payload", "{}")[0] == 3
    code, out, _ = cli(shared_server, "tail", sid)
    assert code == 0 and [e["seq"] for e in out] == [1, 2] and out[1]["actor"] == "agent:x"
    code, out, _ = cli(shared_server, "tail", sid, "--cursor", "1")
    assert code == 0 and [e["payload"] for e in out] == [{"a": 2}]
    assert cli(shared_server, "tail", sid + "-missing", "--follow")[0] == 3
    assert cli(shared_server, "tail", sid + "-missing", "--follow", "--transport", "sse")[0] == 3
    code, out, _ = cli(shared_server, "tail", sid, "--transport", "sse")  # without --follow: pages
    assert code == 0 and [e["seq"] for e in out] == [1, 2]
    assert cli(shared_server, "tail", sid, "--transport", "pigeon")[0] == 2


def test_url_from_the_environment_and_an_unreachable_node(shared_server, sid):
    shared_server.create(sid)
    result = subprocess.run([CLI, "sessions", "get", sid], capture_output=True, text=True, timeout=30,
                            env={**os.environ, "STARCITE_URL": shared_server.base})
    assert result.returncode == 0 and json.loads(result.stdout)["id"] == sid
    result = subprocess.run([CLI, "--url", "http://127.0.0.1:9", "sessions", "get", sid], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 7 and "connection_failed" in result.stderr


def test_token_from_the_flag_or_the_environment(make_server, sid):
    key = make_rsa_key("cli-1")
    with JwksServer([key.jwk()]) as jwks:
        server = make_server(jwt_env(jwks.url))
        code, _, err = cli(server, "sessions", "create", "--id", sid)
        assert code == 4 and "unauthorized" in err
        reader = key.sign(claims(scope="session:read"))
        assert cli(server, "--token", reader, "sessions", "create", "--id", sid)[0] == 4  # forbidden_scope
        code, out, _ = cli(server, "sessions", "create", "--id", sid, env={"STARCITE_TOKEN": key.sign(claims())})
        assert code == 0 and out[0]["id"] == sid
        code, out, _ = cli(server, "--token", reader, "tail", sid)
        assert code == 0 and out == []


def read_lines(fd, count, timeout=10.0) -> list:
    buffer, deadline = b"", time.monotonic() + timeout
    while buffer.count(b"\n") < count and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                buffer += os.read(fd, 65536)
            except OSError:
                break
    return buffer.decode().splitlines()


def default_sigint():
    """In the child before exec: SIGINT at its default disposition, whatever pytest inherited.

    A command started in the background by a shell without job control (`make test &`, CI
    runners, nohup) inherits SIGINT *ignored*; exec keeps an ignored signal ignored, and Python
    then installs no KeyboardInterrupt handler at all, so Ctrl-C (here: SIGINT) does nothing.
    That, not the CLI, was the flake where `tail --follow` "did not exit within 10 s": a terminal
    user's Ctrl-C always reaches a foreground CLI with SIGINT at its default.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("transport", ["websocket", "sse"])
def test_follow_prints_readable_lines_on_a_terminal_until_interrupted(shared_server, sid, transport):
    shared_server.create(sid)
    shared_server.append(sid, 1, producer_id="w")
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([CLI, "--url", shared_server.base, "tail", sid, "--follow", "--transport", transport],
                            stdout=secondary, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=default_sigint)
    os.close(secondary)
    try:
        first = read_lines(primary, 1, timeout=30)  # printed: the handler is installed, the tail is open
        shared_server.append(sid, 2, producer_id="w")
        lines = first + read_lines(primary, 1, timeout=30)
        assert [line.split()[0] for line in lines] == ["#1", "#2"]
        assert lines[1].split()[2:] == ["message", "w/2", "actor=service:service", '{"n":2}']  # the default actor
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        proc.stderr.close()
        os.close(primary)


@pytest.mark.parametrize("status, code, exit_code", [
    (404, "session_not_found", 3), (401, "invalid_token", 4), (403, "forbidden_scope", 4),
    (409, "expected_seq_conflict", 5), (400, "invalid_event", 6), (413, "payload_too_large", 6),
    (503, "raft_timeout", 7), (429, "event_store_backpressure", 7), (500, "internal_error", 1),
])
def test_exit_codes_by_error(status, code, exit_code):
    assert exit_code_for(sc.error_for(status, {"error": code, "message": "m"}, {})) == exit_code
