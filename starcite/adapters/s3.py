"""`S3ArchiveAdapter`: the archive in any S3-compatible object store, through minio-py.

Owns: the objects under ``<prefix>/events/v1/...`` and ``<prefix>/sessions/v1/...``
(layout and encoding from `chunks`), idempotent chunk writes by conditional PUT
(``If-None-Match: *`` to create a chunk, ``If-Match: <etag>`` to extend one,
re-read + merge by seq on 412), mapping every network or S3 failure to
`ArchiveUnavailable` and a missing bucket or rejected credentials at start-up
to `ArchiveConfigError`. Must not: cache event data, retry forever, or wait on
the network longer than its short timeouts (an outage must fail fast).

List order is the object-key order (the base64url of the id), not the id's
own order: S3 can only list keys. Pages are still stable.
"""

import concurrent.futures
import contextlib
import json
import random
import ssl
import time
import urllib.parse

import certifi
import urllib3
from minio import Minio
from minio.error import MinioException, S3Error
from minio.helpers import check_bucket_name

from starcite.adapters import chunks
from starcite.adapters.base import ArchiveAdapter, ArchiveConfigError, ArchiveUnavailable

_CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"}
_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
_LIST_MAX_SCAN = 1000


class S3ArchiveAdapter(ArchiveAdapter):
    def __init__(self, bucket, endpoint=None, region="us-east-1", access_key_id=None, secret_access_key=None,
                 session_token=None, prefix="starcite", path_style=True, max_write_retries=4, timeout_s=5.0,
                 workers=8):
        if not bucket:
            raise ArchiveConfigError("STARCITE_S3_BUCKET (s3.bucket): required when archive adapter is s3")
        try:
            check_bucket_name(bucket)
        except ValueError as exc:
            raise ArchiveConfigError(f"STARCITE_S3_BUCKET (s3.bucket): {exc}") from None
        host, secure = _parse_endpoint(endpoint)
        self.bucket = bucket
        self.endpoint = f"{'https' if secure else 'http'}://{host}"
        self.prefix = (prefix or "").strip("/")
        self.max_write_retries = max(0, int(max_write_retries))
        self.write_conflicts = 0  # conditional PUTs that lost a race (observability)
        self.flush_concurrency = workers  # on the hub: minio's urllib3 sockets are gevent's once patched
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
            maxsize=workers + 4,
            # built now, from the ssl module as it is now: once gevent has patched the process this is
            # gevent's SSLContext (urllib3 may have bound the unpatched one at import time, and TLS
            # through it would block the hub)
            ssl_context=ssl.create_default_context(cafile=certifi.where()),
            retries=urllib3.Retry(total=2, connect=2, read=1, backoff_factor=0.1,
                                  status_forcelist=[500, 502, 503, 504]),
        )
        self._client = Minio(host, access_key=access_key_id or None,
                             secret_key=(secret_access_key or "") if access_key_id else None,
                             session_token=session_token or None, secure=secure, region=region or "us-east-1",
                             http_client=self._http)
        if path_style:
            self._client.disable_virtual_style_endpoint()
        else:
            self._client.enable_virtual_style_endpoint()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-archive")

    @classmethod
    def from_config(cls, config):
        return cls(bucket=config.s3_bucket, endpoint=config.s3_endpoint, region=config.s3_region,
                   access_key_id=config.s3_access_key_id, secret_access_key=config.s3_secret_access_key,
                   session_token=config.s3_session_token, prefix=config.s3_prefix,
                   path_style=config.s3_path_style, max_write_retries=config.s3_max_write_retries)

    # -- events ---------------------------------------------------------------

    def write_lines(self, session_id, lines):
        chunks.check_lines(lines)
        return sum(self._write_chunk(session_id, start, group)
                   for start, group in chunks.group_by_chunk(lines).items())

    def _write_chunk(self, session_id, start, group):
        key = self._key(chunks.chunk_key(session_id, start))
        for attempt in range(self.max_write_retries + 1):
            data, etag = self._get(key)
            merged, added = chunks.merge_by_seq(self._decode_chunk(key, start, data), group)
            if not added:
                return 0
            condition = {"If-None-Match": "*"} if etag is None else {"If-Match": etag}
            if self._put(key, chunks.encode_chunk(merged), "application/x-ndjson", condition):
                return added
            self.write_conflicts += 1
            time.sleep(random.uniform(0, min(0.5, 0.02 * 2 ** attempt)))  # full jitter
        raise ArchiveUnavailable(f"s3: {key}: conditional write still conflicting after "
                                 f"{self.max_write_retries} retries")

    @chunks.clamped
    def read_lines(self, session_id, from_seq, to_seq):
        out, start = [], chunks.chunk_start(from_seq)
        while start <= to_seq:
            data = self._read_chunk(session_id, start)
            if data is None:
                break
            out.extend(chunks.in_range(data, from_seq, to_seq))
            start += chunks.CHUNK_SIZE
        if chunks.chunk_end(start) < to_seq:  # a chunk is missing and the range goes on: list what exists
            for later in self._stored_chunk_starts(session_id):
                if start < later <= to_seq:
                    out.extend(chunks.in_range(self._read_chunk(session_id, later) or [], from_seq, to_seq))
        return out

    def _read_chunk(self, session_id, start):
        """The checked ``[(seq, line)]`` of one chunk object, None when it does not exist."""
        key = self._key(chunks.chunk_key(session_id, start))
        data, _etag = self._get(key)
        return None if data is None else self._decode_chunk(key, start, data)

    def _decode_chunk(self, key, start, data):
        if data is None:
            return []
        try:
            return chunks.decode_chunk(start, data)
        except chunks.CorruptChunk as exc:
            raise ArchiveUnavailable(f"s3 {self.endpoint}/{self.bucket}: {key}: {exc}") from None

    def _stored_chunk_starts(self, session_id):
        prefix = self._key(chunks.session_events_dir(session_id)) + "/"
        with self._errors(f"list {prefix}"):
            names = [obj.object_name for obj in self._client.list_objects(self.bucket, prefix=prefix)]
        return chunks.chunk_starts_from_names(names)

    # -- sessions -------------------------------------------------------------

    def upsert_session(self, record):
        session_id = chunks.check_record(record)
        self._put(self._key(chunks.session_key(session_id)), chunks.encode_json(record), "application/json", {})

    def get_session(self, session_id):
        return self._get_json(self._key(chunks.session_key(session_id)))

    def list_sessions(self, limit, cursor=None, tenant_id=None, metadata_filters=None):
        after = chunks.decode_cursor(cursor) if cursor is not None else None
        objects = self._client.list_objects(
            self.bucket, prefix=self._key(chunks.SESSIONS_DIR) + "/", recursive=True,
            start_after=self._key(chunks.session_key(after)) if after is not None else None)
        with self._errors("list sessions"):
            return chunks.take_page(self._records(objects, batch=min(limit + 1, 64)), limit, tenant_id,
                                    metadata_filters, max_scan=max(_LIST_MAX_SCAN, limit + 1))

    def delete_session(self, session_id):
        prefix = self._key(chunks.session_events_dir(session_id)) + "/"
        with self._errors(f"delete {prefix}"):
            keys = [obj.object_name for obj in self._client.list_objects(self.bucket, prefix=prefix, recursive=True)]
            for key in keys:
                self._client.remove_object(self.bucket, key)
            # the record last: while any event is left, a retry still finds the session to finish
            self._client.remove_object(self.bucket, self._key(chunks.session_key(session_id)))

    def _records(self, objects, batch):
        """Session records for listed objects, in listing order, fetched ``batch`` at a time in parallel."""
        keys = []
        for obj in objects:
            if chunks.session_id_from_name(obj.object_name) is not None:
                keys.append(obj.object_name)
            if len(keys) >= batch:
                yield from filter(None, self._pool.map(self._get_json, keys))
                keys = []
        yield from filter(None, self._pool.map(self._get_json, keys))

    # -- S3 calls ---------------------------------------------------------------

    def _key(self, relative):
        return f"{self.prefix}/{relative}" if self.prefix else relative

    @contextlib.contextmanager
    def _errors(self, what):
        try:
            yield
        except (MinioException, urllib3.exceptions.HTTPError, OSError, json.JSONDecodeError,
                UnicodeDecodeError) as exc:  # a corrupt object reads as an unusable archive, not a bug
            raise ArchiveUnavailable(f"s3 {self.endpoint}/{self.bucket}: {what}: {exc}") from exc

    def _get(self, key):
        """``(bytes, etag)`` of an object, ``(None, None)`` when it does not exist."""
        with self._errors(f"GET {key}"):
            response = None
            try:
                response = self._client.get_object(self.bucket, key)
                return response.read(), response.headers.get("ETag")
            except S3Error as exc:
                if exc.code == "NoSuchKey":
                    return None, None
                raise
            finally:
                if response is not None:
                    response.close()
                    response.release_conn()

    def _get_json(self, key):
        data, _etag = self._get(key)
        if data is None:
            return None
        with self._errors(f"decode {key}"):
            return chunks.decode_json(data)

    def _put(self, key, data, content_type, condition):
        """PUT with raw (conditional) headers; False when the condition failed."""
        headers = {"Content-Type": content_type, **condition}
        with self._errors(f"PUT {key}"):
            try:
                self._client._put_object(self.bucket, key, data, headers=headers)  # raw headers, see NOTES
                return True
            except S3Error as exc:
                if condition and exc.code in _CONFLICT_CODES:
                    return False
                raise

    def check(self):
        try:
            exists = self._client.bucket_exists(self.bucket)
        except S3Error as exc:
            if exc.code in _AUTH_CODES:
                raise ArchiveConfigError(f"s3 {self.endpoint}: credentials rejected for bucket "
                                         f"{self.bucket!r} ({exc.code})") from exc
            raise ArchiveUnavailable(f"s3 {self.endpoint}/{self.bucket}: {exc}") from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise ArchiveUnavailable(f"s3 {self.endpoint}: unreachable: {exc}") from exc
        if not exists:
            raise ArchiveConfigError(f"STARCITE_S3_BUCKET (s3.bucket): bucket {self.bucket!r} does not exist "
                                     f"at {self.endpoint}")

    def close(self):
        self._pool.shutdown(wait=False)
        self._http.clear()


def _parse_endpoint(endpoint):
    """``"http://127.0.0.1:9000"`` -> ``("127.0.0.1:9000", False)``; None -> AWS over https."""
    if not endpoint:
        return "s3.amazonaws.com", True
    parts = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") or parts.query:
        raise ArchiveConfigError(f"STARCITE_S3_ENDPOINT (s3.endpoint): expected a URL like "
                                 f"https://host[:port], got {endpoint!r}")
    return parts.netloc, parts.scheme == "https"
