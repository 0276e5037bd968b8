"""The official TypeScript SDK 0.0.5 still works: a session from a principal token, appends, and
`on("event")` over the raw WebSocket tail (`tests/js/sdk_005_flow.mjs`), on a JWT node.

Owns: that flow. The build is installed by `tests.ts_sdk` (skipped with one line where
``../shared/clients`` or Node is absent, unless STARCITE_REQUIRE_NODE=1). Must not: wait without a bound.
"""

import json
import os
import shutil
import subprocess

import pytest

from tests.auth.conftest import claims, jwt_env, remember
from tests.auth.node_helpers import create, principal
from tests.ts_sdk import install_sdk

OLDEST = "starcite-ts-sdk-7f912ba"  # 0.0.5: raw WebSocket tails
FLOW = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "js", "sdk_005_flow.mjs")


@pytest.fixture(scope="module")
def sdk_005(tmp_path_factory):
    return shutil.which("node"), str(install_sdk(OLDEST, tmp_path_factory.mktemp("ts-sdk-005")))


def test_sdk_0_0_5_appends_and_follows_a_session(make_server, module_jwks, rsa_key, sdk_005, sid):
    node = make_server(jwt_env(module_jwks.url))
    service = remember(rsa_key.sign(claims()))
    create(node, service, sid)
    token = principal(node, service, principal_id="writer", kind="agent", session_ids=[sid])
    node_bin, sdk_dir = sdk_005
    result = subprocess.run([node_bin, FLOW, sdk_dir, node.base + "/v1", token], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, (result.stdout, result.stderr[-2000:])
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["seqs"] == [1, 2, 3]
    assert out["actors"] == ["agent:writer"] * 3
