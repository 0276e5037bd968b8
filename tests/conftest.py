"""Shared fixtures: real `starcite serve` processes on free loopback ports; the private Postgres ends with the session."""

import re
import uuid

import pytest

from tests.private_postgres import stop_shared
from tests.server import StarciteServer


@pytest.fixture
def make_server(tmp_path):
    servers = []

    def make(env=None, data_dir=None, start=True, config_file=None):
        server = StarciteServer(data_dir or tmp_path / f"node{len(servers)}", env, config_file)
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server):
    """A fresh node for this test alone."""
    return make_server()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One node shared by a module's tests: they must use their own session ids (`sid`)."""
    server = StarciteServer(tmp_path_factory.mktemp("shared"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sid(request):
    """A session id unique to this test."""
    name = re.sub(r"[^A-Za-z0-9_.~-]", "_", request.node.name)[:200]  # a valid session id (`rules.SESSION_ID`)
    return f"{name}-{uuid.uuid4().hex[:8]}"


def pytest_sessionfinish(session):
    """The private Postgres (`tests.private_postgres`) lives as long as the test session."""
    stop_shared()
