"""The SDK's pure parts, without a server: error mapping, backoff bounds, tail position, packaging.

Owns: `starcite_client.errors.error_for`, `_core.Backoff`, `_core.TailPosition`,
`_core.ProducerSequence`, and the promise that the client
distribution pins httpx and websockets and imports nothing of the server.
Must not: start a server or use the network.
"""

import json
import pathlib
import subprocess
import sys
import tomllib

import pytest

import starcite_client as sc
from starcite_client import _core

CLIENT = pathlib.Path(__file__).resolve().parents[2] / "clients" / "python"


@pytest.mark.parametrize("status, code, cls", [
    (400, "invalid_event", sc.BadRequest), (401, "invalid_token", sc.Unauthorized),
    (401, "token_expired", sc.TokenExpired), (403, "forbidden_scope", sc.Forbidden),
    (404, "session_not_found", sc.SessionNotFound), (404, "not_found", sc.NotFound),
    (409, "session_exists", sc.SessionExists), (409, "producer_seq_conflict", sc.ProducerSeqConflict),
    (409, "producer_replay_conflict", sc.ProducerReplayConflict),
    (409, "expected_seq_conflict", sc.ExpectedSeqConflict), (413, "payload_too_large", sc.PayloadTooLarge),
    (426, "upgrade_required", sc.UpgradeRequired), (429, "event_store_backpressure", sc.Backpressure),
    (503, "raft_unavailable", sc.RaftUnavailable), (503, "raft_timeout", sc.RaftTimeout),
    (503, "archive_read_unavailable", sc.ArchiveReadUnavailable), (503, "node_stopping", sc.NodeStopping),
    (503, "auth_unavailable", sc.Unavailable), (500, "internal_error", sc.ServerError),
])
def test_every_error_code_has_its_type(status, code, cls):
    error = sc.error_for(status, {"error": code, "message": "m", "expected_producer_seq": 4}, {"Retry-After": "2"})
    assert type(error) is cls and isinstance(error, sc.StarciteError)
    assert (error.status, error.code, error.message, error.retry_after) == (status, code, "m", 2.0)
    if cls is sc.ProducerSeqConflict:
        assert error.expected_producer_seq == 4


def test_backoff_is_bounded_and_jittered():
    backoff = _core.Backoff(0.05, 2.0)
    delays = [backoff.next_delay() for _ in range(30)]
    assert all(0.025 <= d <= 2.0 for d in delays) and max(delays) > 1.0 and len(set(delays)) > 20
    backoff.reset()
    assert backoff.next_delay() <= 0.05


def test_tail_position_drops_repeats_and_refuses_gaps():
    position = _core.TailPosition(2)
    event = lambda seq: {"seq": seq}  # noqa: E731
    assert position.accept(json.dumps([event(1), event(2), event(3)])) == [event(3)]
    assert position.accept(json.dumps(event(3))) == []
    with pytest.raises(_core.TailGap):
        position.accept(json.dumps(event(5)))
    assert position.last_seq == 3
    with pytest.raises(_core.TailGap):
        position.accept(json.dumps([event(4), event(6)]))
    assert position.last_seq == 3  # a frame with a gap delivers nothing: the reconnect replays 4 too


def test_producer_sequence_resumes_once_when_asked():
    conflict = sc.error_for(409, {"error": "producer_seq_conflict", "message": "m", "expected_producer_seq": 7}, {})
    assert not _core.ProducerSequence("p").adopt(conflict)
    sequence = _core.ProducerSequence("p", resume=True)
    assert sequence.adopt(conflict) and sequence.next_seq == 7 and not sequence.adopt(conflict)
    replayed = sc.error_for(409, {"error": "producer_replay_conflict", "message": "m"}, {})
    sequence = _core.ProducerSequence("p", next_seq=3, resume=True)
    assert sequence.adopt(replayed) and sequence.next_seq == 4  # 3 was the last one used


def test_the_distribution_pins_its_two_dependencies_and_imports_nothing_of_the_server():
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert sorted(d.split("==")[0] for d in project["dependencies"]) == ["httpx", "websockets"]
    assert all("==" in d for d in project["dependencies"])
    assert (CLIENT / "src" / "starcite_client" / "py.typed").exists()
    code = ("import sys, starcite_client, starcite_client.cli; "
            "print(sorted(m for m in ('starcite', 'falcon', 'gevent', 'thespian', 'pysyncobj') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "[]"
