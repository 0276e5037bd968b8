"""Archive back ends behind one `ArchiveAdapter` interface.

Owns: building the configured adapter (`build_adapter`). Must not: know about
Raft, actors or HTTP; adapters are plain blocking I/O objects that the
archiver and the read path call from greenlets.
"""

from starcite.adapters.base import ArchiveAdapter, ArchiveUnavailable, ArchiveConfigError


def build_adapter(config):
    """Return the adapter named by ``config.archive_adapter`` ("local", "s3", "postgres")."""
    kind = config.archive_adapter
    if kind == "local":
        from starcite.adapters.local import LocalArchiveAdapter
        return LocalArchiveAdapter(config.archive_dir)
    if kind == "s3":
        from starcite.adapters.s3 import S3ArchiveAdapter
        return S3ArchiveAdapter.from_config(config)
    if kind == "postgres":
        from starcite.adapters.postgres import PostgresArchiveAdapter
        return PostgresArchiveAdapter.from_config(config)
    raise ArchiveConfigError(f"archive_adapter: unknown adapter {kind!r} (expected local, s3 or postgres)")


__all__ = ["ArchiveAdapter", "ArchiveUnavailable", "ArchiveConfigError", "build_adapter"]
