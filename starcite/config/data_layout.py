"""The data directory's layout record: settings that must never change under existing data.

Owns: `<raft_data_dir>/layout.json`, written on first start, checked on every
start. Sessions hash to groups, so changing `num_groups` on an existing data
directory would silently misplace every session; refusing to start is the
only safe answer. It also records `data_format`, the version of what this
code writes under the data directory (Raft journal, snapshot contents, the
archive layout `v1`): a node refuses data written in a format it does not
know (a newer release's, after a rollback), and a release that changes a
format bumps `DATA_FORMAT` and says how to upgrade. A record without it
predates it: format 1. Format 2 changed only the local archive (one SQLite
database instead of a file per chunk and per record): a format 1 directory
is accepted and its record rewritten as 2, and the local archive imports its
old files itself on first use (`starcite.adapters.local_files`), so an
older release refuses the directory from then on rather than read an
archive it cannot see. Must not: migrate anything.
"""

import json
import os

from starcite.config.settings import ConfigError

FIXED = ("num_groups",)
DATA_FORMAT = 2
UPGRADED_FORMATS = (1,)  # older formats this release takes over (what changed is read by its new owner)


def check_data_layout(config):
    os.makedirs(config.raft_data_dir, exist_ok=True)
    path = os.path.join(config.raft_data_dir, "layout.json")
    wanted = {key: getattr(config, key) for key in FIXED}
    wanted["data_format"] = DATA_FORMAT
    try:
        with open(path) as fh:
            recorded = json.load(fh)
    except FileNotFoundError:
        _write(path, wanted)
        return
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable layout record: {exc}") from None
    if recorded.get("data_format", 1) in UPGRADED_FORMATS:
        _check_fixed(config, recorded, wanted)
        _write(path, {**recorded, "data_format": DATA_FORMAT})
        return
    if recorded.get("data_format", 1) != DATA_FORMAT:
        raise ConfigError(f"{path}: the data in {config.raft_data_dir} is in data format "
                          f"{recorded.get('data_format')}, and this version of Starcite reads format {DATA_FORMAT}: "
                          "run the release that wrote it, or restore the backup taken before the upgrade")
    _check_fixed(config, recorded, wanted)


def _check_fixed(config, recorded, wanted):
    for key in FIXED:
        if key in recorded and recorded[key] != wanted[key]:
            raise ConfigError(f"STARCITE_NUM_GROUPS (raft.num_groups): data in {config.raft_data_dir} was "
                              f"written with {recorded[key]}, not {wanted[key]}; it cannot change")


def _write(path, record):
    with open(path + ".tmp", "w") as fh:
        json.dump(record, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(path + ".tmp", path)
