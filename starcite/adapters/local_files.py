"""The local archive's first layout (a file per chunk and per session record), read once to import it.

Owns: finding and reading that layout under an archive directory —
``events/v1/<b64 id>/<chunk_start>.ndjson`` and ``sessions/v1/<b64 id>.json``
(the S3 layout, `chunks`; a path component longer than `NAME_MAX` split
into directories of that many characters), with ``.locks/`` (its per-stripe
``flock`` files and the shared ``index.log``) beside them — handing what it
holds to the importer in batches, and removing it all once imported.
`starcite.adapters.local.LocalArchiveAdapter` imports it on first use, so an
archive written by an older release is read on upgrade. Must not: write
this layout, or remove a file before the batch holding it was imported.
"""

import os
import shutil

from starcite.adapters import chunks
from starcite.adapters.base import ArchiveUnavailable

NAME_MAX = 240  # the longest path component the layout wrote (file systems allow 255 bytes)
OLD_DIRS = (chunks.EVENTS_DIR.split("/")[0], chunks.SESSIONS_DIR.split("/")[0], ".locks")
_BATCH_FILES = 500  # files imported per transaction


def file_path(directory, key):
    """Where the layout kept the archive key ``key`` (each too-long component split into directories)."""
    parts = []
    for part in key.split("/"):
        while len(part) > NAME_MAX:
            parts.append(part[:NAME_MAX])
            part = part[NAME_MAX:]
        parts.append(part)
    return os.path.join(directory, *parts)


def import_old_layout(directory, import_batch) -> int:
    """Hand every chunk and record of the layout under ``directory`` to ``import_batch(lines by
    session, records)``, a few hundred files a call, then remove the layout. Returns the files
    imported (0 when there is no such layout). Idempotent: an import cut short is done again whole."""
    if not any(os.path.isdir(os.path.join(directory, name)) for name in OLD_DIRS[:2]):
        return 0
    imported, lines, records = 0, {}, []
    for kind, session_id, start, path in _stored_files(directory):
        data = _read(path)
        if data is None:
            continue  # removed meanwhile (another process finished the import)
        if kind == "chunk":
            try:
                lines.setdefault(session_id, []).extend(chunks.decode_chunk(start, data))
            except chunks.CorruptChunk as exc:
                raise ArchiveUnavailable(f"local archive: cannot import {path}: {exc}") from None
        else:
            try:
                records.append(chunks.decode_json(data))
            except ValueError as exc:
                raise ArchiveUnavailable(f"local archive: cannot import {path}: {exc}") from None
        imported += 1
        if imported % _BATCH_FILES == 0:
            import_batch(lines, records)
            lines, records = {}, []
    import_batch(lines, records)
    for name in OLD_DIRS:
        shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    return imported


def _stored_files(directory):
    """``(kind, session_id, chunk_start or None, path)`` of every chunk and record file, in walk order."""
    for root, kind, suffix in ((chunks.EVENTS_DIR, "chunk", chunks.CHUNK_SUFFIX),
                               (chunks.SESSIONS_DIR, "record", chunks.SESSION_SUFFIX)):
        top = os.path.join(directory, *root.split("/"))
        for folder, _dirs, files in os.walk(top, onerror=_raise):
            joined = "".join(os.path.relpath(folder, top).split(os.sep)) if folder != top else ""
            for name in files:
                if name.startswith(".") or not name.endswith(suffix):
                    continue  # a temporary file a crash left: never renamed, so never part of the archive
                if kind == "chunk":
                    start, session_id = name[:-len(suffix)], _session_id(joined)
                    if start.isdigit() and session_id:
                        yield kind, session_id, int(start), os.path.join(folder, name)
                else:
                    session_id = chunks.session_id_from_name(joined + name)
                    if session_id is not None:
                        yield kind, session_id, None, os.path.join(folder, name)


def _session_id(encoded):
    try:
        return chunks.decode_session_id(encoded)
    except ValueError:
        return None  # not a name the layout wrote


def _read(path):
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ArchiveUnavailable(f"local archive: cannot import {path}: {exc}") from exc


def _raise(exc):
    if not isinstance(exc, FileNotFoundError):
        raise ArchiveUnavailable(f"local archive: cannot read the old layout: {exc}") from exc
