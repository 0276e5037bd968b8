"""Tests of structured logs and request ids: `starcite.telemetry.logs` alone, then a real node.

Owns: unit tests of the request id, the log context under gevent, the JSON
formatter and the secret scrubbing; and end-to-end runs of `starcite serve`
(tests/server.py) with ``STARCITE_LOG_FORMAT=json`` and in the default text
mode, reading the node's whole output. Must not: leave a node running (each
fixture stops its node) or use anything but loopback.
"""

import datetime
import json
import logging
import pathlib
import subprocess
import sys

import gevent
import pytest

from starcite.telemetry import logs
from starcite.config.settings import load_config
from tests.server import StarciteServer

CLUSTER_SECRET = "cluster-secret-value-0123456789"
SECRET_KEY_BASE = "secret-key-base-value-abcdef"
ACCESS_TOKEN = "secret123"
BEARER_TOKEN = "bearer-token-value-456"
SECRETS = (CLUSTER_SECRET, SECRET_KEY_BASE, ACCESS_TOKEN, BEARER_TOKEN)


# -- request ids and context ---------------------------------------------------------------------


def test_request_id_keeps_a_clean_client_id():
    assert logs.request_id_from("req-42.a:b_C") == "req-42.a:b_C"


def test_request_id_is_sanitised_and_bounded():
    assert logs.request_id_from('a b"<script>\\x') == "abscriptx"
    assert len(logs.request_id_from("x" * 1000)) == logs.REQUEST_ID_MAX_LENGTH


@pytest.mark.parametrize("header", [None, "", "<>\"' "])
def test_request_id_is_generated_when_missing_or_nothing_is_left(header):
    first, second = logs.request_id_from(header), logs.request_id_from(header)
    assert first != second and len(first) == 32 and first.isalnum()


_GREENLET_CONTEXT_CHECK = """
import gevent
from starcite.telemetry import logs

def request(number):
    assert logs.current_context() == {}  # a new greenlet starts empty
    logs.bind_request(f"req-{number}")
    logs.bind_session(f"ses-{number}", number)
    gevent.sleep(0.01)  # the others run and bind theirs meanwhile
    return logs.current_context()

greenlets = [gevent.spawn(request, n) for n in range(5)]
gevent.joinall(greenlets, timeout=5)
assert [g.value for g in greenlets] == [{"request_id": f"req-{n}", "session_id": f"ses-{n}", "group": n}
                                        for n in range(5)], [g.value for g in greenlets]
assert logs.current_context() == {}
print("ok")
"""


def test_each_greenlet_has_its_own_log_context():
    """gevent gives every greenlet its own contextvars: concurrent requests never see each other's ids.
    Checked in a fresh interpreter: other tests leave greenlets and hub state in this one."""
    result = subprocess.run([sys.executable, "-c", _GREENLET_CONTEXT_CHECK], capture_output=True, text=True,
                            timeout=60, cwd=str(pathlib.Path(__file__).resolve().parent.parent))
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_bind_request_forgets_the_previous_request_of_the_greenlet():
    def two_requests():
        logs.bind_request("first")
        logs.bind_session("ses-1", 3)
        logs.bind_request("second")
        return logs.current_context()

    assert gevent.spawn(two_requests).get(timeout=5) == {"request_id": "second"}


# -- the formatter -------------------------------------------------------------------------------


def record(msg, *args, exc_info=None, **extra):
    made = logging.LogRecord("starcite.test", logging.WARNING, __file__, 1, msg, args, exc_info)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


@pytest.fixture
def formatter():
    return logs.JsonFormatter("n1", logs.Scrubber([CLUSTER_SECRET, SECRET_KEY_BASE]))


def test_json_line_has_the_fields(formatter):
    line = json.loads(formatter.format(record("appended %d", 3, context={"request_id": "r1", "group": 0})))
    assert line["level"] == "warning" and line["logger"] == "starcite.test" and line["node"] == "n1"
    assert line["msg"] == "appended 3" and line["request_id"] == "r1" and line["group"] == 0
    assert "session_id" not in line
    assert line["ts"].endswith("Z")
    ts = datetime.datetime.fromisoformat(line["ts"].replace("Z", "+00:00"))
    assert ts.utcoffset() == datetime.timedelta(0)


def test_json_line_takes_the_current_context(formatter):
    def log_in_request():
        logs.bind_request("ctx-1")
        logs.bind_session("ses-9", 7)
        return json.loads(formatter.format(record("x")))

    line = gevent.spawn(log_in_request).get(timeout=5)
    assert (line["request_id"], line["session_id"], line["group"]) == ("ctx-1", "ses-9", 7)


def test_a_traceback_stays_on_one_line(formatter):
    try:
        raise ValueError("boom")
    except ValueError:
        text = formatter.format(record("failed", exc_info=sys.exc_info()))
    assert "\n" not in text
    assert "ValueError: boom" in json.loads(text)["exc"]


def test_bad_format_arguments_still_make_one_json_line(formatter):
    assert json.loads(formatter.format(record("count %d", "not a number")))["msg"] == "count %d ('not a number',)"


def test_secrets_are_scrubbed_from_every_field(formatter):
    text = formatter.format(record(f"GET /x?access_token={ACCESS_TOKEN} Authorization: Bearer {BEARER_TOKEN} "
                                   f"{CLUSTER_SECRET}", fields={"path": f"/t?a=1&access_token={ACCESS_TOKEN}",
                                                                "note": [SECRET_KEY_BASE]}))
    for secret in SECRETS:
        assert secret not in text
    line = json.loads(text)
    assert line["path"] == "/t?a=1&access_token=[REDACTED]" and line["note"] == ["[REDACTED]"]


def test_config_secrets_include_the_postgres_password(tmp_path):
    config = load_config(None, {"DATABASE_URL": "postgres://u:pg-password-1@db/x", "STARCITE_ARCHIVE_ADAPTER":
                                "postgres", "SECRET_KEY_BASE": SECRET_KEY_BASE, "STARCITE_DATA_DIR": str(tmp_path)})
    assert {"pg-password-1", SECRET_KEY_BASE} <= set(logs.config_secrets(config))


_STRAY_OUTPUT_SCRIPT = """
import gevent, warnings
from starcite.telemetry import logs
from starcite.config.settings import load_config
logs.configure(load_config(None, {"STARCITE_LOG_FORMAT": "json", "NODE_NAME": "n1"}))
logs.log_greenlet_errors(gevent.get_hub())
gevent.spawn(lambda: 1 / 0).join(timeout=5)
warnings.warn("deprecated thing")
"""


def test_json_mode_turns_greenlet_errors_and_warnings_into_json_lines():
    result = subprocess.run([sys.executable, "-c", _STRAY_OUTPUT_SCRIPT], capture_output=True, text=True, timeout=60)
    events = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert [e["logger"] for e in events] == ["starcite.greenlet", "py.warnings"], result.stderr
    assert "ZeroDivisionError" in events[0]["exc"] and "deprecated thing" in events[1]["msg"]


# -- a real node ---------------------------------------------------------------------------------


def exercise(server):
    """Requests of every kind; returns ``{label: response}``."""
    responses = {
        "ready": server.request("GET", f"/health/ready?access_token={ACCESS_TOKEN}",
                                headers={"X-Request-Id": "client-req-1", "Authorization": f"Bearer {BEARER_TOKEN}"}),
        "create": server.request("POST", "/v1/sessions", {"id": "ses_logs"}, headers={"X-Request-Id": "create-1"}),
    }
    responses["append"] = server.append("ses_logs", 1)
    responses["bad_json"] = server.request("POST", "/v1/sessions/ses_logs/append", raw="{not json",
                                           headers={"X-Request-Id": "bad<json>"})
    responses["missing"] = server.request("GET", "/v1/sessions/ses_nope", headers={"X-Request-Id": "y" * 300})
    responses["tail_token"] = server.request("GET", f"/v1/sessions/ses_logs/tail?cursor=0&access_token={ACCESS_TOKEN}")
    return responses


def exercised_node(data_dir, **env):
    """Start a node, `exercise` it, stop it (SIGTERM): ``(responses, the node's whole output)``."""
    server = StarciteServer(data_dir, env={"STARCITE_CLUSTER_SECRET": CLUSTER_SECRET,
                                           "SECRET_KEY_BASE": SECRET_KEY_BASE, **env})
    server.start()
    try:
        responses = exercise(server)
    finally:
        server.stop()
    return responses, server.output()


@pytest.fixture(scope="module")
def json_node(tmp_path_factory):
    return exercised_node(tmp_path_factory.mktemp("json-node"), STARCITE_LOG_FORMAT="json", NODE_NAME="log-node",
                          STARCITE_LOG_LEVEL="debug")


def test_json_mode_every_line_is_a_json_object_with_the_fields(json_node):
    _responses, output = json_node
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) >= 10
    for line in lines:
        event = json.loads(line)  # every line, not only the access log
        assert isinstance(event, dict), line
        assert {"ts", "level", "logger", "msg", "node"} <= set(event), line
        assert event["node"] == "log-node" and event["ts"].endswith("Z")
    loggers = {json.loads(line)["logger"] for line in lines}
    assert {"gunicorn.error", "gunicorn.access"} <= loggers


def test_json_access_lines_carry_the_request(json_node):
    responses, output = json_node
    access = [e for e in map(json.loads, output.splitlines()) if e["logger"] == "gunicorn.access"]
    assert len(access) >= len(responses)  # and the start-up readiness polls
    for event in access:
        assert {"method", "path", "status", "duration_ms", "request_id", "remote"} <= set(event), event
        assert event["remote"] == "127.0.0.1" and event["duration_ms"] >= 0
    ready = next(e for e in access if e["request_id"] == "client-req-1")
    assert ready == {**ready, "method": "GET", "status": 200, "path": "/health/ready?access_token=[REDACTED]"}
    append = next(e for e in access if e["path"] == "/v1/sessions/ses_logs/append" and e["status"] == 201)
    assert append["session_id"] == "ses_logs" and isinstance(append["group"], int)
    by_id = {e["request_id"]: e for e in access}
    for label, response in responses.items():
        request_id = response.headers["X-Request-Id"]
        assert request_id in by_id, label  # the id the client got back is the one in the log
        assert by_id[request_id]["status"] == response.status_code, label


def test_request_id_round_trips_sanitised(json_node):
    responses, _output = json_node
    assert responses["ready"].headers["X-Request-Id"] == "client-req-1"
    assert responses["create"].headers["X-Request-Id"] == "create-1"
    assert responses["bad_json"].status_code == 400 and responses["bad_json"].headers["X-Request-Id"] == "badjson"
    assert responses["missing"].status_code == 404 and responses["missing"].headers["X-Request-Id"] == "y" * 128
    generated = responses["append"].headers["X-Request-Id"]
    assert len(generated) == 32 and generated != responses["tail_token"].headers["X-Request-Id"]


def test_json_mode_never_logs_a_secret(json_node):
    _responses, output = json_node
    for secret in SECRETS:
        assert secret not in output


@pytest.fixture(scope="module")
def text_node(tmp_path_factory):
    return exercised_node(tmp_path_factory.mktemp("text-node"), NODE_NAME="text-node")


def test_text_mode_is_unchanged_but_returns_request_ids(text_node):
    responses, output = text_node
    assert responses["ready"].headers["X-Request-Id"] == "client-req-1"
    lines = [line for line in output.splitlines() if line.strip()]
    assert not any(line.startswith("{") for line in lines)
    assert any('"GET /health/ready?access_token=[REDACTED] HTTP/1.1" 200' in line for line in lines)
    for secret in SECRETS:
        assert secret not in output
