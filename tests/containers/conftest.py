"""Fixtures of the container tests (tests/containers/): podman, the images, this run's resources.

Owns: the `containers` marker on every test here; the decision to run, skip or fail them (skipped,
with one summary line saying why, where podman cannot run; a failure instead with
STARCITE_REQUIRE_CONTAINERS=1, which .ci/run sets); the session's `Podman` (cleaned up even after a
failure) and the images built once per session. Must not: start nodes or assert behaviour (the test
modules do).
"""

import os

import pytest

from tests.containers import podman as engine

HERE = os.path.dirname(os.path.abspath(__file__))
_why_not = []


def pytest_configure(config):
    config.addinivalue_line("markers", "containers: needs podman (tests/containers/); "
                                       "STARCITE_REQUIRE_CONTAINERS=1 makes its absence a failure")


def pytest_collection_modifyitems(config, items):
    mine = [item for item in items if str(item.path).startswith(HERE + os.sep)]
    for item in mine:
        item.add_marker(pytest.mark.containers)
    if not mine or os.environ.get("STARCITE_REQUIRE_CONTAINERS") == "1":
        return
    reason = engine.unavailable_reason()
    if reason:
        _why_not.append(f"{len(mine)} container tests skipped: {reason}")
        for item in mine:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter):
    for line in _why_not + engine.REPORT:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def podman():
    reason = engine.unavailable_reason()
    if reason:  # only reached with STARCITE_REQUIRE_CONTAINERS=1 (otherwise the tests were skipped)
        pytest.fail(f"STARCITE_REQUIRE_CONTAINERS=1 but {reason}")
    run = engine.Podman()
    yield run
    run.cleanup()


@pytest.fixture(scope="session")
def base_image(podman):
    return engine.base_image()


@pytest.fixture(scope="session")
def image(podman, base_image):
    """The Starcite image, built from the Dockerfile for this run (removed at its end)."""
    tag = f"localhost/starcite-test:{podman.run_id}"
    podman.images.append(tag)
    return engine.build(tag, base_image, cache=False)


@pytest.fixture(scope="session")
def s3_image(podman, base_image):
    return engine.s3_standin_image(base_image)
