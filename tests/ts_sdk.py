"""The official TypeScript SDK, built from its public source, installed for tests and run by Node.

Owns: finding a build in `../shared/clients/` (beside the project's root; see
its README), copying it to a temp dir once per test session and installing its
pinned dependencies with npm, and running a `tests/js/*.mjs` script against
it. Where Node, npm or `../shared` is absent the test is skipped with one line
saying which, unless STARCITE_REQUIRE_NODE=1 (CI), when it fails instead.
Must not: install anything into the checkout, or run a script without a time bound.
"""

import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CLIENTS = ROOT.parent / "shared" / "clients"
JS_DIR = ROOT / "tests" / "js"
NEWEST = "starcite-ts-sdk-4853f55"  # 0.0.16: Phoenix Channels, /api/v1/session-tokens


def _unavailable(why: str):
    if os.environ.get("STARCITE_REQUIRE_NODE") == "1":
        pytest.fail(f"{why} (required: STARCITE_REQUIRE_NODE=1)")
    pytest.skip(why)


def install_sdk(build: str, tmp_dir: pathlib.Path) -> pathlib.Path:
    """A copy of ``build`` with its dependencies installed, under ``tmp_dir``; skips (or fails) when it cannot be."""
    source = CLIENTS / build
    if not (source / "dist" / "index.js").is_file():
        _unavailable(f"the TypeScript SDK build {source} is absent (a clone without ../shared)")
    if not (shutil.which("node") and shutil.which("npm")):
        _unavailable("node and npm are not installed")
    target = tmp_dir / build
    shutil.copytree(source, target)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=target, check=True, timeout=300,
                   stdout=subprocess.DEVNULL)
    return target


def run_script(script: str, *args, timeout: float = 60) -> subprocess.CompletedProcess:
    """``node tests/js/<script> args...``, bounded by ``timeout`` seconds."""
    return subprocess.run(["node", str(JS_DIR / script), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
