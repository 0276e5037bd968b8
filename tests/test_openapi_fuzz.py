"""The OpenAPI fuzzer against a live node: /openapi.json describes the running service exactly.

Owns: one schemathesis run (the pinned version of the test extras, every
check, a fixed seed, bounded examples) per auth mode against a real `starcite
serve` on loopback: zero failures and zero 5xx. In jwt mode the fuzzer holds
a valid service token (every scope) so it reaches the handlers; it also
checks that missing and invalid tokens get 401. The repository's
`schemathesis.toml` says what the fuzzer cannot drive (the WebSocket tail)
and why. Must not: reach anything but 127.0.0.1, or run unbounded (the
examples are bounded and the run has a timeout).
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from starcite.api.auth.policy import SCOPES
from tests.auth.conftest import JwksServer, claims, jwt_env, make_rsa_key

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMATHESIS = os.path.join(os.path.dirname(sys.executable), "schemathesis")
MAX_EXAMPLES = 20  # per operation and phase: ~500 requests per mode
SEED = 20261201


def fuzz(node, *extra) -> str:
    args = [SCHEMATHESIS, "--config-file", str(ROOT / "schemathesis.toml"), "--no-color", "run",
            f"{node.base}/openapi.json", "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
            "--workers", "1", "--request-timeout", "10", "--output-truncate", "false", *extra]
    result = subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=node.data_dir)
    report = result.stdout + result.stderr
    assert result.returncode == 0 and "No issues found" in report, report[-20000:]
    return report


@pytest.fixture(scope="module")
def signing_key():
    return make_rsa_key("fuzz-1")


@pytest.mark.parametrize("mode", ["none", "jwt"])
def test_openapi_document_passes_the_fuzzer(make_server, signing_key, mode):
    quiet = {"STARCITE_ACCESS_LOG": "0", "STARCITE_RAFT_FSYNC": "0"}
    if mode == "none":
        node = make_server(quiet)
        report = fuzz(node)
    else:
        with JwksServer([signing_key.jwk()]) as jwks:
            node = make_server(jwt_env(jwks.url, **quiet))
            token = signing_key.sign(claims(exp=claims()["exp"] + 3600, scope=" ".join(sorted(SCOPES))))
            assert node.request("GET", "/v1/sessions", headers={"Authorization": f"Bearer {token}"}).ok
            report = fuzz(node, "--header", f"Authorization: Bearer {token}")
    spec = node.request("GET", "/openapi.json").json()
    assert ("security" in spec) == (mode == "jwt")
    assert "5xx" not in report and "Server error" not in report
    assert "Traceback" not in node.output()
    assert node.metric("starcite_events_append_total") > 0  # the fuzzer got through to the handlers
    # 5xx by route, except the readiness polls of the start-up (503 "starting" is that route's contract).
    assert not re.search(r'route="(?!/health/ready")[^"]*",status="5', node.request("GET", "/metrics").text)
