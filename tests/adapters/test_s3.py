"""S3-specific behaviour of `S3ArchiveAdapter` against a real (moto) S3 server.

Owns: the exact object key layout, the conditional-PUT conflict path, start-up
checks (missing bucket, bad endpoint), building from `Config`, and failing fast
when the server is gone, deleting a session a page of keys at a time. Must not: repeat
the shared contract (test_contract*.py).
"""

import json
import subprocess
import sys
import textwrap

import pytest

from starcite.adapters import build_adapter
from starcite.adapters import s3 as s3_module
from starcite.adapters.base import ArchiveConfigError, ArchiveUnavailable
from starcite.adapters.chunks import encode_session_id
from starcite.adapters.s3 import S3ArchiveAdapter
from starcite.config.settings import load_config
from tests.adapters.archive_helpers import (assert_fails_fast, make_event, make_events, make_session,
                                           run_threads)


def test_objects_use_the_exact_key_layout(moto, s3_bucket):
    archive = moto.adapter(s3_bucket, prefix="pfx/")
    session_id = "org/ses 1 ✓"
    events = make_events(1, 300)
    archive.write_events(session_id, events)
    archive.upsert_session(make_session(session_id))
    b64 = encode_session_id(session_id)
    keys = sorted(o.object_name for o in moto.client().list_objects(s3_bucket, recursive=True))
    assert keys == sorted([f"pfx/events/v1/{b64}/1.ndjson", f"pfx/events/v1/{b64}/257.ndjson",
                           f"pfx/sessions/v1/{b64}.json"])
    first = moto.read_object(s3_bucket, f"pfx/events/v1/{b64}/1.ndjson").decode().splitlines()
    assert [json.loads(line) for line in first] == events[:256]
    second = moto.read_object(s3_bucket, f"pfx/events/v1/{b64}/257.ndjson").decode().splitlines()
    assert [json.loads(line)["seq"] for line in second] == list(range(257, 301))
    assert json.loads(moto.read_object(s3_bucket, f"pfx/sessions/v1/{b64}.json")) == make_session(session_id)


def test_stale_if_match_is_retried_and_merged(moto, s3_bucket):
    archive, rival = moto.adapter(s3_bucket), moto.adapter(s3_bucket)
    archive.write_events("s", make_events(1, 10))
    original_get = archive._get
    raced = []

    def get_then_lose_the_race(key):
        result = original_get(key)
        if not raced:  # another writer extends the chunk between our GET and our PUT
            raced.append(key)
            rival.write_events("s", make_events(11, 20))
        return result

    archive._get = get_then_lose_the_race
    assert archive.write_events("s", make_events(15, 30)) == 10  # 11..20 came from the rival
    assert archive.write_conflicts == 1
    assert archive.read_events("s", 1, 100) == make_events(1, 30)


def test_concurrent_writers_of_one_chunk_with_default_retry_budget(moto, s3_bucket):
    writers = [moto.adapter(s3_bucket) for _ in range(4)]
    added = []

    def write(n, adapter):
        for first in range(1 + n * 10, 256, 40):  # disjoint slices of the same chunk
            for _attempt in range(10):  # as the archiver does: an unavailable archive is retried later
                try:
                    added.append(adapter.write_events("c", make_events(first, first + 9)))
                    break
                except ArchiveUnavailable:
                    continue

    assert run_threads(write, list(enumerate(writers))) == []
    expected = sorted({seq for n in range(4) for first in range(1 + n * 10, 256, 40)
                       for seq in range(first, first + 10)})
    assert [e["seq"] for e in writers[0].read_events("c", 1, 1000)] == expected
    assert sum(added) == len(expected)


def test_conflicts_beyond_the_retry_budget_are_unavailable(moto, s3_bucket):
    archive, rival = moto.adapter(s3_bucket, max_write_retries=2), moto.adapter(s3_bucket)
    archive.write_events("s", make_events(1, 1))
    original_get = archive._get
    next_seq = [2]

    def always_lose(key):
        result = original_get(key)
        rival.write_events("s", [make_event(next_seq[0])])
        next_seq[0] += 1
        return result

    archive._get = always_lose
    with pytest.raises(ArchiveUnavailable, match="conflict"):
        archive.write_events("s", [make_event(100)])
    assert archive.write_conflicts == 3


def test_missing_bucket_is_a_config_error(moto):
    archive = moto.adapter("no-such-bucket-here")
    with pytest.raises(ArchiveConfigError, match="no-such-bucket-here"):
        archive.check()


def test_bad_settings_are_config_errors():
    with pytest.raises(ArchiveConfigError, match="s3.bucket"):
        S3ArchiveAdapter("ab", endpoint="http://127.0.0.1:9")
    with pytest.raises(ArchiveConfigError, match="s3.endpoint"):
        S3ArchiveAdapter("bucket", endpoint="ftp://127.0.0.1:9")
    with pytest.raises(ArchiveConfigError, match="s3.bucket"):
        S3ArchiveAdapter(None)


def test_built_from_config(moto, s3_bucket):
    config = load_config(environ={
        "STARCITE_ARCHIVE_ADAPTER": "s3", "STARCITE_S3_BUCKET": s3_bucket, "STARCITE_S3_ENDPOINT": moto.endpoint,
        "STARCITE_S3_ACCESS_KEY_ID": "testing", "STARCITE_S3_SECRET_ACCESS_KEY": "testing",
        "STARCITE_S3_PREFIX": "cfg", "STARCITE_S3_MAX_WRITE_RETRIES": "7"})
    archive = build_adapter(config)
    try:
        assert isinstance(archive, S3ArchiveAdapter) and archive.max_write_retries == 7
        archive.check()
        archive.write_events("s", make_events(1, 3))
        keys = [o.object_name for o in moto.client().list_objects(s3_bucket, recursive=True)]
        assert keys == [f"cfg/events/v1/{encode_session_id('s')}/1.ndjson"]
    finally:
        archive.close()


def test_stopped_server_fails_fast(private_moto):
    server = private_moto()
    try:
        bucket = server.make_bucket()
        archive = server.adapter(bucket)
        archive.write_events("s", make_events(1, 5))
        assert archive.read_events("s", 1, 5) == make_events(1, 5)  # pooled keep-alive connection exists
    finally:
        server.stop()
    calls = [lambda: archive.write_events("s", make_events(6, 7)), lambda: archive.read_events("s", 1, 5),
             lambda: archive.get_session("s"), lambda: archive.list_sessions(10),
             lambda: archive.upsert_session(make_session("s")), archive.check]
    for call in calls:
        assert_fails_fast(call, ArchiveUnavailable)
    archive.close()


def test_works_under_gevent(moto, s3_bucket):
    script = textwrap.dedent(f"""
        from gevent import monkey; monkey.patch_all()
        import gevent
        from starcite.adapters.s3 import S3ArchiveAdapter
        archive = S3ArchiveAdapter({s3_bucket!r}, endpoint={moto.endpoint!r}, access_key_id="testing",
                                   secret_access_key="testing")
        archive.check()
        def work(n):
            events = [{{"seq": s, "type": "t", "payload": {{"n": n}}}} for s in range(1, 301)]
            assert archive.write_events(f"g{{n}}", events) == 300
            archive.upsert_session({{"id": f"g{{n}}", "metadata": {{"tenant_id": "t"}}}})
            assert archive.read_events(f"g{{n}}", 1, 300) == events
        gevent.joinall([gevent.spawn(work, n) for n in range(8)], raise_error=True, timeout=30)
        records, cursor = archive.list_sessions(100, tenant_id="t")
        assert sorted(r["id"] for r in records) == [f"g{{n}}" for n in range(8)] and cursor is None
        print("OK")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "OK", done.stderr[-3000:]


def test_tls_under_gevent_uses_gevent_ssl_even_if_urllib3_came_first():
    # `starcite serve` checks the archive before gunicorn's worker patches the process, so urllib3
    # (which binds ssl.SSLContext at import) is imported unpatched: TLS through that would block the hub
    script = textwrap.dedent("""
        import warnings; warnings.simplefilter("ignore")
        import urllib3, minio
        from gevent import monkey; monkey.patch_all()
        import gevent.ssl
        from starcite.adapters.s3 import S3ArchiveAdapter
        archive = S3ArchiveAdapter("bucket", endpoint="https://s3.example.test")
        context = archive._http.connection_pool_kw["ssl_context"]
        assert isinstance(context, gevent.ssl.SSLContext), type(context)
        assert context.verify_mode.name == "CERT_REQUIRED" and context.check_hostname
        print("OK")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "OK", done.stderr[-3000:]


def test_delete_removes_every_object_under_the_session_a_page_at_a_time(moto, s3_bucket, monkeypatch):
    monkeypatch.setattr(s3_module, "_DELETE_PAGE", 2)  # five chunk objects: three DeleteObjects pages
    archive = moto.adapter(s3_bucket, prefix="p")
    try:
        archive.write_events("gone", make_events(1, 1100))
        archive.upsert_session(make_session("gone"))
        archive.write_events("gone-too-not", make_events(1, 3))  # shares the id's prefix as a string only
        archive.delete_session("gone")
        keys = [o.object_name for o in moto.client().list_objects(s3_bucket, recursive=True)]
        assert keys == [f"p/events/v1/{encode_session_id('gone-too-not')}/1.ndjson"]
    finally:
        archive.close()
