"""The three archives of the end-to-end tests (local, s3 on moto, postgres), seen from outside the node.

Owns: for each adapter, the node's environment for it, reading back what it
stored (object by object in the S3 layout, checking keys, ordering and chunk
bounds; the local database's rows seen as those objects; row by row for Postgres, with the operators' query), and an outage
(`kill`) and its end (`revive`): the local directory swapped for a file, moto
SIGKILLed and restored from its recorded requests, Postgres cut at a
`TcpProxy`; for S3 and Postgres, a backup by the store's own means
(`backup`, `lose`, `restore`: every object copied out and put back; `pg_dump`
and `psql`), as docs/operations.md tells an operator. Must not: reach into the node's process, use anything but
loopback, or hold fixtures (the test module builds the backend it needs).
"""

import contextlib
import io
import json
import os
import sqlite3
import subprocess

import psycopg2

from starcite.adapters import chunks
from starcite.adapters.chunks import decode_session_id
from starcite.adapters.local import DB_NAME
from tests.adapters.services import S3_KEY, S3_SECRET, MotoServer, check_postgres, postgres_schema
from tests.private_postgres import server_bin_dir
from tests.tcp_proxy import TcpProxy

S3_PREFIX = "e2e/archive"
EVENT_COLUMNS = ("seq", "type", "payload", "actor", "producer_id", "producer_seq", "source", "metadata", "refs",
                 "idempotency_key")


class ObjectStore:
    """What the local and S3 archives share: the S3 layout under ``prefix``, read key by key."""

    prefix = ""

    def project(self, event):
        return event  # stored exactly as the API serves it

    def stored(self, session_ids):
        """``({session: [events]}, {session: record})`` read object by object, checking the layout."""
        prefix = self.prefix
        events = {session_id: [] for session_id in session_ids}
        records = {}
        for key in sorted(self.keys()):
            assert key.startswith(prefix), key
            parts = key[len(prefix):].split("/")
            if parts[:2] == ["sessions", "v1"]:
                session_id = chunks.session_id_from_name("".join(parts[2:]))
                assert session_id is not None and key == prefix + chunks.session_key(session_id), key
                records[session_id] = json.loads(self.read(key))
                continue
            assert parts[:2] == ["events", "v1"] and parts[-1].endswith(".ndjson"), key
            session_id = decode_session_id("".join(parts[2:-1]))
            start = int(parts[-1][:-len(".ndjson")])
            assert key == prefix + chunks.chunk_key(session_id, start), key
            chunk = [json.loads(line) for line in self.read(key).decode().splitlines()]
            assert [e["seq"] for e in chunk] == list(range(start, start + len(chunk))), key  # ordered, gap-free
            assert chunk and len(chunk) <= chunks.CHUNK_SIZE and (start - 1) % chunks.CHUNK_SIZE == 0, key
            events.setdefault(session_id, []).extend(chunk)
        return events, records


class LocalBackend(ObjectStore):
    """The node's archive directory, its database read row by row as the S3 layout's keys; an outage
    swaps the directory for a plain file."""

    kind = "local"

    def __init__(self, tmp_path):
        self.root = str(tmp_path / "archive")
        self.env = {"STARCITE_ARCHIVE_ADAPTER": "local", "STARCITE_ARCHIVE_DIR": self.root}

    def _objects(self):
        """``{key: bytes}``: each chunk row under its chunk key, each record under its session key."""
        uri = f"file:{os.path.join(self.root, DB_NAME)}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            objects = {chunks.chunk_key(session_id, start): bytes(data)
                       for session_id, start, data in db.execute("SELECT session_id, start, data FROM chunks")}
            objects.update({chunks.session_key(session_id): record.encode()
                            for session_id, record in db.execute("SELECT id, record FROM sessions")})
        return objects

    def keys(self):
        return list(self._objects())

    def read(self, key):
        return self._objects()[key]

    def kill(self):
        os.rename(self.root, self.root + ".offline")
        with open(self.root, "wb"):
            pass

    def revive(self):
        os.unlink(self.root)
        os.rename(self.root + ".offline", self.root)

    def close(self):
        pass


class S3Backend(ObjectStore):
    """A moto S3 server behind a proxy; an outage SIGKILLs the server, revival replays its requests."""

    kind = "s3"
    prefix = S3_PREFIX + "/"

    def __init__(self, tmp_path):
        self.recording = str(tmp_path / "moto-requests.jsonl")
        self.moto = MotoServer(self.recording)
        self.bucket = self.moto.make_bucket()
        self.proxy = TcpProxy(self.moto.port)
        self.env = {"STARCITE_ARCHIVE_ADAPTER": "s3", "STARCITE_S3_BUCKET": self.bucket,
                    "STARCITE_S3_ENDPOINT": f"http://127.0.0.1:{self.proxy.port}", "STARCITE_S3_PREFIX": S3_PREFIX,
                    "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET, "STARCITE_S3_REGION": "us-east-1"}

    def keys(self):
        return [obj.object_name for obj in self.moto.client().list_objects(self.bucket, recursive=True)]

    def read(self, key):
        return self.moto.read_object(self.bucket, key)


    def backup(self, tmp_path):
        """The bucket's backup (a copy of every object): {key: bytes}."""
        return {key: self.read(key) for key in self.keys()}

    def lose(self):
        client = self.moto.client()
        for key in self.keys():
            client.remove_object(self.bucket, key)

    def restore(self, saved):
        client = self.moto.client()
        for key, data in saved.items():
            client.put_object(self.bucket, key, io.BytesIO(data), len(data))

    def kill(self):
        self.moto.kill()

    def revive(self):
        self.moto = MotoServer.restore_from_recording(self.recording)
        self.proxy.restore(self.moto.port)

    def close(self):
        self.proxy.close()
        self.moto.stop()


class PostgresBackend:
    """The tests' Postgres, a schema of its own, reached through a proxy the test cuts."""

    kind = "postgres"

    def __init__(self, tmp_path):
        self.admin_url = check_postgres()
        dsn = psycopg2.extensions.parse_dsn(self.admin_url)
        self.proxy = TcpProxy(int(dsn.get("port") or 5432))
        self.resources = contextlib.ExitStack()
        self.resources.callback(self.proxy.close)
        self.schema = self.resources.enter_context(postgres_schema(self.admin_url))
        url = (f"postgresql://{dsn.get('user', 'postgres')}@127.0.0.1:{self.proxy.port}/{dsn.get('dbname', 'test')}"
               f"?options=-csearch_path%3D{self.schema}")
        self.env = {"STARCITE_ARCHIVE_ADAPTER": "postgres", "DATABASE_URL": url, "DB_POOL_SIZE": "6"}

    def query(self, sql, params=()):
        conn = psycopg2.connect(self.admin_url, connect_timeout=5, options=f"-c search_path={self.schema}")
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                columns = [d.name for d in cur.description]
                return [dict(zip(columns, row)) for row in cur.fetchall()]
        finally:
            conn.close()

    def stored(self, session_ids):
        events = {}
        for session_id in session_ids:  # the operators' query of the seed
            rows = self.query("SELECT * FROM events WHERE session_id = %s ORDER BY seq", (session_id,))
            events[session_id] = [self.project(row) for row in rows]
        records = {row["id"]: row["record"] for row in self.query("SELECT id, record FROM sessions")}
        return events, records

    def backup(self, tmp_path):
        """`pg_dump` of the node's schema: the dump file."""
        dump = str(tmp_path / "archive.sql")
        subprocess.run([os.path.join(server_bin_dir(), "pg_dump"), "--no-owner", "-n", self.schema, "-f", dump,
                        self.admin_url], check=True, capture_output=True, timeout=120)
        return dump

    def lose(self):
        conn = psycopg2.connect(self.admin_url, connect_timeout=5)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA {self.schema} CASCADE")
        conn.close()

    def restore(self, dump):
        subprocess.run([os.path.join(server_bin_dir(), "psql"), "-v", "ON_ERROR_STOP=1", "-q", "-f", dump,
                        self.admin_url], check=True, capture_output=True, timeout=120)

    def kill(self):
        self.proxy.cut()

    def revive(self):
        self.proxy.restore()

    def project(self, event):
        return {key: event[key] for key in EVENT_COLUMNS}

    def close(self):
        self.resources.close()


BACKENDS = {"local": LocalBackend, "s3": S3Backend, "postgres": PostgresBackend}
