"""Archive services the tests run against: a `moto_server` S3 on loopback and a Postgres.

Owns: starting/stopping `moto_server` subprocesses (bounded waits, always
reaped; optionally recording every request so a killed server can come back
with its objects), and the per-test Postgres schema (created, then dropped)
on `pg_url()`: `STARCITE_TEST_POSTGRES_URL` when set, else the test
session's private server (`tests.private_postgres`, started on first use).
Used by the adapter fixtures (conftest.py) and the end-to-end node tests.
Must not: skip when a service is missing (Postgres unreachable fails loudly),
use anything but loopback addresses, or wait without a bound.
"""

import contextlib
import json
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

from starcite.adapters.s3 import S3ArchiveAdapter
from tests.private_postgres import PostgresUnavailable, shared_postgres_url
from tests.server import free_port

S3_KEY, S3_SECRET = "testing", "testing"
MOTO_START_TIMEOUT_S = 30.0


class MotoServer:
    """One `moto_server` subprocess on a free loopback port.

    With ``recording`` (a file path), every request is appended to that file;
    `restore_from_recording` replays the state-changing ones into a fresh server.
    """

    def __init__(self, recording=None):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.recording = recording
        env = dict(os.environ)
        if recording:
            env.update(MOTO_ENABLE_RECORDING="1", MOTO_RECORDER_FILEPATH=str(recording))
        moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
        self.proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(self.port)], env=env,
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

    @classmethod
    def restore_from_recording(cls, recording, timeout=60.0):
        """A new server holding what the (killed) server that wrote ``recording`` held."""
        with open(recording, "rb") as fh:
            requests = _recorded_requests(fh.read().decode(errors="replace"))
        with open(recording, "w") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in requests if r.get("method") not in ("GET", "HEAD")))
        server = cls(recording)
        request = urllib.request.Request(server.endpoint + "/moto-api/recorder/replay-recording", data=b"",
                                         method="POST")
        try:
            urllib.request.urlopen(request, timeout=timeout).close()
        except BaseException:
            server.stop()
            raise
        return server

    def client(self) -> Minio:
        return Minio(f"127.0.0.1:{self.port}", access_key=S3_KEY, secret_key=S3_SECRET, secure=False,
                     region="us-east-1")

    def make_bucket(self) -> str:
        bucket = f"bkt-{uuid.uuid4().hex[:16]}"
        self.client().make_bucket(bucket)
        return bucket

    def read_object(self, bucket, key) -> bytes:
        response = self.client().get_object(bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def adapter(self, bucket, **kwargs) -> S3ArchiveAdapter:
        return S3ArchiveAdapter(bucket, endpoint=self.endpoint, region="us-east-1", access_key_id=S3_KEY,
                                secret_access_key=S3_SECRET, **kwargs)

    def kill(self):
        """SIGKILL: the server dies mid-request, as a crashed archive would."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _recorded_requests(text):
    """The request objects of a moto recording, in order.

    moto's threads append each request as its JSON then a newline, in separate writes when the request
    is large: with concurrent requests the newlines can land out of place, so objects are decoded back
    to back rather than line by line. A truncated last one (the server died writing it) is dropped:
    that request was never processed.
    """
    decoder = json.JSONDecoder()
    requests, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return requests
        try:
            request, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return requests
        requests.append(request)


def pg_url() -> str:
    """The tests' Postgres (fails the test, never skips it, when there is none)."""
    try:
        return shared_postgres_url()
    except PostgresUnavailable as exc:
        pytest.fail(f"Postgres is required for the archive tests: {exc}")


def check_postgres(url=None):
    url = url or pg_url()
    try:
        psycopg2.connect(url, connect_timeout=5).close()
    except psycopg2.OperationalError as exc:
        pytest.fail(f"Postgres is required for the archive tests and is unreachable at {url}: {exc}")
    return url


@contextlib.contextmanager
def postgres_schema(url=None):
    """A fresh, uniquely named schema, dropped with everything in it on exit."""
    url = url or pg_url()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = psycopg2.connect(url, connect_timeout=5)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.close()
