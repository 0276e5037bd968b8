"""Fixtures for the archive adapter tests: a moto S3 server, per-test buckets and Postgres schemas.

Owns: starting/stopping `moto_server` subprocesses on loopback (bounded waits,
always reaped), creating a bucket per test, creating and dropping a uniquely
named Postgres schema per test, and building each adapter kind for the
contract tests. Must not: skip when a service is missing (Postgres unreachable
fails loudly), use anything but loopback addresses, or wait without a bound.
"""

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import psycopg2
import pytest
from minio import Minio

from starcite.adapters.local import LocalArchiveAdapter
from starcite.adapters.postgres import PostgresArchiveAdapter
from starcite.adapters.s3 import S3ArchiveAdapter
from tests.server import free_port

PG_URL = os.environ.get("STARCITE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
S3_KEY, S3_SECRET = "testing", "testing"
MOTO_START_TIMEOUT_S = 30.0


class MotoServer:
    """One `moto_server` subprocess on a free loopback port."""

    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
        self.proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + MOTO_START_TIMEOUT_S
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=1).close()
                return
            except (urllib.error.URLError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not answer on {self.endpoint}")
                time.sleep(0.05)

    def client(self) -> Minio:
        return Minio(f"127.0.0.1:{self.port}", access_key=S3_KEY, secret_key=S3_SECRET, secure=False,
                     region="us-east-1")

    def make_bucket(self) -> str:
        bucket = f"bkt-{uuid.uuid4().hex[:16]}"
        self.client().make_bucket(bucket)
        return bucket

    def adapter(self, bucket, **kwargs) -> S3ArchiveAdapter:
        return S3ArchiveAdapter(bucket, endpoint=self.endpoint, region="us-east-1", access_key_id=S3_KEY,
                                secret_access_key=S3_SECRET, **kwargs)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def moto():
    server = MotoServer()
    yield server
    server.stop()


@contextlib.contextmanager
def tracked(build, close):
    """A factory that calls ``build``, remembering what it built, and ``close``-s all of it on exit."""
    built = []

    def make(*args, **kwargs):
        built.append(build(*args, **kwargs))
        return built[-1]

    try:
        yield make
    finally:
        for thing in built:
            close(thing)


@pytest.fixture
def private_moto():
    """``private_moto()`` -> a fresh `MotoServer` a test may stop; all reaped at teardown."""
    with tracked(MotoServer, MotoServer.stop) as start:
        yield start


@pytest.fixture
def s3_bucket(moto):
    return moto.make_bucket()


@pytest.fixture(scope="session")
def postgres_url():
    try:
        psycopg2.connect(PG_URL, connect_timeout=5).close()
    except psycopg2.OperationalError as exc:
        pytest.fail(f"Postgres is required for the adapter tests and is unreachable at {PG_URL}: {exc}")
    return PG_URL


@pytest.fixture
def pg_schema(postgres_url):
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = psycopg2.connect(postgres_url, connect_timeout=5)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.close()


@pytest.fixture
def pg_connect(postgres_url, pg_schema):
    """Plain psycopg2 connections on the test schema (what an operator would use)."""
    with tracked(lambda: psycopg2.connect(postgres_url, connect_timeout=5, options=f"-c search_path={pg_schema}"),
                 lambda conn: conn.close()) as connect:
        yield connect


@pytest.fixture
def make_adapter(request, tmp_path):
    """``make_adapter(kind)`` -> a fresh adapter of that kind on fresh storage; closed at teardown.

    Adapters of one kind made in the same test share their storage (two nodes on one archive).
    """
    storage = {}

    def build(kind, **kwargs):
        if kind == "local":
            return LocalArchiveAdapter(str(tmp_path / "archive"), **kwargs)
        if kind == "s3":
            moto = request.getfixturevalue("moto")
            if "bucket" not in storage:
                storage["bucket"] = moto.make_bucket()
            # the contract hammers one object from 4 threads; a real archive has one writer per session
            return moto.adapter(storage["bucket"], **{"max_write_retries": 20, **kwargs})
        if kind == "postgres":
            return PostgresArchiveAdapter(request.getfixturevalue("postgres_url"), pool_size=8,
                                          schema=request.getfixturevalue("pg_schema"), **kwargs)
        raise ValueError(kind)

    with tracked(build, lambda adapter: adapter.close()) as make:
        yield make
